using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>
/// Remembers which (origin, incarnation, sequence) entries were applied, so an append that was
/// retried and landed in the log twice is applied once. Decisions depend only on the order of the
/// committed log, so every replica decides alike, and the table is part of snapshots. Per origin
/// incarnation it keeps a floor (every sequence up to it counts as seen: it follows contiguous
/// sequences, and jumps over a gap once 2 × <see cref="Window"/> sequences wait above it, since a retry
/// that old is not expected) and the sequences seen above the floor; per origin the
/// <see cref="IncarnationsPerOrigin"/> most recently used incarnations.
/// </summary>
internal sealed class ProposalDeduplicator
{
    public const long Window = 1 << 16;
    public const int IncarnationsPerOrigin = 8;

    private readonly Dictionary<string, List<Seen>> _origins = new(StringComparer.Ordinal);

    /// <summary>True the first time an entry id is seen; false for a duplicate.</summary>
    public bool FirstTime(string origin, ulong incarnation, long sequence, long logIndex)
    {
        if (!_origins.TryGetValue(origin, out var incarnations))
        {
            incarnations = [];
            _origins[origin] = incarnations;
        }

        var seen = Find(incarnations, incarnation);
        if (seen is null)
        {
            if (incarnations.Count >= IncarnationsPerOrigin)
            {
                incarnations.Remove(incarnations.MinBy(s => s.LastIndex)!);
            }

            seen = new Seen(incarnation);
            incarnations.Add(seen);
        }

        seen.LastIndex = logIndex;
        if (sequence <= seen.Floor || seen.Sequences.Contains(sequence))
        {
            return false;
        }

        seen.Max = Math.Max(seen.Max, sequence);
        if (sequence == seen.Floor + 1)
        {
            // Sequences are numbered from 1 and mostly applied in order: the floor follows them and
            // the set holds only what arrived above a gap.
            seen.Floor = sequence;
            while (seen.Sequences.Remove(seen.Floor + 1))
            {
                seen.Floor++;
            }

            return true;
        }

        seen.Sequences.Add(sequence);
        if (seen.Sequences.Count > 2 * Window)
        {
            // Pruned in batches: a scan per Window entries keeps FirstTime O(1) amortized.
            seen.Floor = seen.Max - Window;
            seen.Sequences.RemoveWhere(s => s <= seen.Floor);
            while (seen.Sequences.Remove(seen.Floor + 1))
            {
                seen.Floor++; // contiguous again above the jump: follow it, so the set empties
            }
        }

        return true;
    }

    /// <summary>
    /// Forgets every origin that is not a member of <paramref name="config"/>, applied at its index:
    /// none of them can have an entry applied after it under the sessions forgotten. A leader proposes
    /// a node's entries only while its configuration lists the node under the admission the node sent
    /// them under (see <c>ForwardAppend.Admission</c>), and a node never sends an entry under two
    /// admissions; so every entry a removed member sent lies before its removal in the committed log,
    /// and what it sends once added again is new. Every replica applies the same configurations in
    /// the same order: all forget alike, snapshot or not.
    /// </summary>
    /// <returns>How many origins were forgotten.</returns>
    public int ForgetNonMembers(Raft.ClusterConfig config)
    {
        List<string>? gone = null;
        foreach (var origin in _origins.Keys)
        {
            if (!config.Contains(origin))
            {
                (gone ??= []).Add(origin);
            }
        }

        foreach (var origin in gone ?? [])
        {
            _origins.Remove(origin);
        }

        return gone?.Count ?? 0;
    }

    /// <summary>The origins remembered (memory held).</summary>
    public int Origins => _origins.Count;

    /// <summary>Whether an entry id was applied (within the window).</summary>
    public bool Contains(string origin, ulong incarnation, long sequence)
        => _origins.TryGetValue(origin, out var incarnations)
            && Find(incarnations, incarnation) is { } seen
            && (sequence <= seen.Floor || seen.Sequences.Contains(sequence));

    /// <summary>How many sequences of an origin incarnation are remembered above its floor (memory held).</summary>
    public int PendingAboveFloor(string origin, ulong incarnation)
        => _origins.TryGetValue(origin, out var incarnations) && Find(incarnations, incarnation) is { } seen ? seen.Sequences.Count : 0;

    private static Seen? Find(List<Seen> incarnations, ulong incarnation)
    {
        foreach (var seen in incarnations)
        {
            if (seen.Incarnation == incarnation)
            {
                return seen;
            }
        }

        return null;
    }

    public void Write(WireWriter writer)
    {
        writer.VarUInt((ulong)_origins.Count);
        foreach (var (origin, incarnations) in _origins.OrderBy(o => o.Key, StringComparer.Ordinal))
        {
            writer.String(origin);
            writer.VarUInt((ulong)incarnations.Count);
            foreach (var seen in incarnations)
            {
                writer.VarUInt(seen.Incarnation);
                writer.VarLong(seen.Floor);
                writer.VarLong(seen.Max);
                writer.VarLong(seen.LastIndex);
                writer.VarUInt((ulong)seen.Sequences.Count);
                foreach (var sequence in seen.Sequences.Order())
                {
                    writer.VarLong(sequence);
                }
            }
        }
    }

    public void Read(ref WireReader reader)
    {
        _origins.Clear();
        ulong origins = reader.VarUInt();
        for (ulong i = 0; i < origins; i++)
        {
            string origin = reader.String();
            var incarnations = new List<Seen>();
            ulong count = reader.VarUInt();
            for (ulong j = 0; j < count; j++)
            {
                var seen = new Seen(reader.VarUInt()) { Floor = reader.VarLong(), Max = reader.VarLong(), LastIndex = reader.VarLong() };
                ulong sequences = reader.VarUInt();
                for (ulong k = 0; k < sequences; k++)
                {
                    seen.Sequences.Add(reader.VarLong());
                }

                incarnations.Add(seen);
            }

            _origins[origin] = incarnations;
        }
    }

    private sealed class Seen(ulong incarnation)
    {
        public ulong Incarnation { get; } = incarnation;

        public HashSet<long> Sequences { get; } = [];

        public long Floor { get; set; }

        public long Max { get; set; }

        public long LastIndex { get; set; }
    }
}
