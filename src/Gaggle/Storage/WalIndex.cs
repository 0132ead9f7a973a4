using Gaggle.Raft;

namespace Gaggle.Storage;

/// <summary>Where a stored entry's encoding (term, kind, length, data) sits on disk, and its term.</summary>
/// <param name="Term">The entry's term (needed to decide what a snapshot keeps).</param>
/// <param name="Segment">The sequence number of the segment that holds it.</param>
/// <param name="Offset">The byte offset of the encoded entry in that segment.</param>
/// <param name="Length">The encoded entry's length.</param>
internal readonly record struct EntryLocation(long Term, long Segment, long Offset, int Length);

/// <summary>
/// What the storage knows about its log without holding it: the hard state, the snapshot's position
/// and, per stored entry, its term and location (32 bytes an entry; snapshots keep the count bounded).
/// Replay and the write path apply the same operations with the same rules as
/// <see cref="InMemoryRaftStorage"/>. While loading, it can also collect the entries themselves.
/// </summary>
internal sealed class WalIndex
{
    private readonly List<EntryLocation> _locations = [];
    private List<LogEntry>? _entries;

    /// <summary>Creates an empty index; with <paramref name="collectEntries"/>, it also keeps the entries added.</summary>
    public WalIndex(bool collectEntries)
    {
        _entries = collectEntries ? [] : null;
    }

    /// <summary>The last saved hard state.</summary>
    public HardState HardState { get; set; } = HardState.Empty;

    /// <summary>Whether a snapshot was saved.</summary>
    public bool HasSnapshot { get; private set; }

    /// <summary>The saved snapshot's index (0 without one).</summary>
    public long SnapshotIndex { get; private set; }

    /// <summary>The saved snapshot's term (0 without one).</summary>
    public long SnapshotTerm { get; private set; }

    /// <summary>The number of the last complete write (0 before the first).</summary>
    public ulong LastWrite { get; set; }

    /// <summary>The index of the first stored entry (one past the snapshot).</summary>
    public long FirstIndex => SnapshotIndex + 1;

    /// <summary>One past the last stored entry's index.</summary>
    public long NextIndex => FirstIndex + _locations.Count;

    /// <summary>Where each stored entry is, from <see cref="FirstIndex"/> on.</summary>
    public IReadOnlyList<EntryLocation> Locations => _locations;

    /// <summary>The collected entries (empty when not collecting).</summary>
    public IReadOnlyList<LogEntry> Entries => _entries ?? (IReadOnlyList<LogEntry>)[];

    /// <summary>Stops collecting entries and releases those collected.</summary>
    public void StopCollecting() => _entries = null;

    /// <summary>Why entries starting at <paramref name="first"/> cannot be appended, or null when they can.</summary>
    public string? CheckAppend(long first)
        => first < FirstIndex || first > NextIndex
            ? $"The first entry's index is {first}; it must be between {FirstIndex} and {NextIndex} (one past the stored log)."
            : null;

    /// <summary>Discards the stored entries from <paramref name="index"/> on (a conflicting suffix).</summary>
    public void TruncateFrom(long index)
    {
        int at = (int)(index - FirstIndex);
        _locations.RemoveRange(at, _locations.Count - at);
        _entries?.RemoveRange(at, _entries.Count - at);
    }

    /// <summary>Appends the entry after the last stored one.</summary>
    public void Add(EntryLocation location, in LogEntry entry)
    {
        _locations.Add(location);
        _entries?.Add(entry);
    }

    /// <summary>Records a snapshot and discards the entries it covers, as <see cref="IRaftStorage.SaveSnapshotAsync"/> specifies.</summary>
    public void ApplySnapshot(long index, long term)
    {
        int covered = (int)Math.Clamp(index - FirstIndex + 1, 0, _locations.Count);
        bool keepsSuffix = covered > 0 && FirstIndex + covered - 1 == index && _locations[covered - 1].Term == term;
        int removed = keepsSuffix ? covered : _locations.Count;
        _locations.RemoveRange(0, removed);
        _entries?.RemoveRange(0, removed);
        HasSnapshot = true;
        SnapshotIndex = index;
        SnapshotTerm = term;
    }

    /// <summary>Points the stored entries at their copies (after compaction moved them); the count must not change.</summary>
    public void Relocate(IReadOnlyList<EntryLocation> locations)
    {
        if (locations.Count != _locations.Count)
        {
            throw new InvalidOperationException($"Compaction copied {locations.Count} entries but {_locations.Count} are stored.");
        }

        _locations.Clear();
        _locations.AddRange(locations);
    }
}
