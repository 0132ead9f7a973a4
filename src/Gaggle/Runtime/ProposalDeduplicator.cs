namespace Gaggle.Runtime;

/// <summary>
/// Remembers which (origin, incarnation, sequence) entries were applied, so an append that was
/// retried and landed in the log twice is applied once. Decisions depend only on the order of
/// the committed log, so every replica decides alike. Per origin incarnation it keeps the
/// sequences above a sliding floor; a retry older than <see cref="Window"/> sequences is not expected.
/// </summary>
internal sealed class ProposalDeduplicator
{
    public const long Window = 1 << 16;

    private readonly Dictionary<(string Origin, ulong Incarnation), Seen> _seen = [];

    /// <summary>True the first time an entry id is seen; false for a duplicate.</summary>
    public bool FirstTime(string origin, ulong incarnation, long sequence)
    {
        if (!_seen.TryGetValue((origin, incarnation), out var seen))
        {
            seen = new Seen();
            _seen[(origin, incarnation)] = seen;
        }

        if (sequence <= seen.Floor || !seen.Sequences.Add(sequence))
        {
            return false;
        }

        if (sequence > seen.Max)
        {
            seen.Max = sequence;
        }

        if (seen.Sequences.Count > Window)
        {
            seen.Floor = seen.Max - Window;
            seen.Sequences.RemoveWhere(s => s <= seen.Floor);
        }

        return true;
    }

    private sealed class Seen
    {
        public HashSet<long> Sequences { get; } = [];

        public long Floor { get; set; }

        public long Max { get; set; }
    }
}
