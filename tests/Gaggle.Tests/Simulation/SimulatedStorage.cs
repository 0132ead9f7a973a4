using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The durable storage of one simulated server: hard state, the latest snapshot and the log entries
/// after it, written exactly as <see cref="Gaggle.Storage.InMemoryRaftStorage"/> documents
/// <c>SaveAsync</c> and <c>SaveSnapshotAsync</c>.
/// </summary>
/// <remarks>
/// With <see cref="Buffered"/> set it models a store that does not flush each write (FlushPolicy.None):
/// every batch records how to undo it until <see cref="Flush"/>, and a crash may lose the newest
/// unflushed batches (<see cref="LoseNewest"/>), leaving what an append-only file cut short holds.
/// </remarks>
internal sealed class SimulatedStorage
{
    /// <summary>Older unflushed batches than this are taken as written out by the OS in the meantime.</summary>
    private const int MaxUnflushed = 8;

    private readonly List<LogEntry> _entries = [];
    private readonly List<Undo> _unflushed = [];
    private Undo? _batch;

    public HardState HardState { get; private set; } = HardState.Empty;

    public RaftSnapshot? Snapshot { get; private set; }

    /// <summary>The stored entries, contiguous from <see cref="SnapshotIndex"/> + 1.</summary>
    public IReadOnlyList<LogEntry> Entries => _entries;

    public long SnapshotIndex => Snapshot?.Index ?? 0;

    public long LastIndex => SnapshotIndex + _entries.Count;

    public long LastTerm => _entries.Count > 0 ? _entries[^1].Term : Snapshot?.Term ?? 0;

    /// <summary>Writes are held back (FlushPolicy.None) and can be lost by a crash until flushed.</summary>
    public bool Buffered { get; set; }

    public int UnflushedBatches => _unflushed.Count;

    /// <summary>The stored entry at <paramref name="index"/>, if the log (not the snapshot) holds it.</summary>
    public bool TryGet(long index, out LogEntry entry)
    {
        if (index <= SnapshotIndex || index > LastIndex)
        {
            entry = default;
            return false;
        }

        entry = _entries[(int)(index - SnapshotIndex - 1)];
        return true;
    }

    /// <summary>Starts a batch of writes that a crash loses or keeps as a whole.</summary>
    public void BeginBatch()
    {
        if (Buffered)
        {
            _batch = new Undo(HardState, Snapshot);
        }
    }

    public void EndBatch()
    {
        if (_batch is null)
        {
            return;
        }

        _unflushed.Add(_batch);
        _batch = null;
        if (_unflushed.Count > MaxUnflushed)
        {
            _unflushed.RemoveAt(0);
        }
    }

    public void Flush() => _unflushed.Clear();

    /// <summary>
    /// SaveSnapshotAsync: keep the snapshot, discard the entries it covers; keep the entries after it
    /// only when the stored entry at its index has its term (otherwise the log diverged: drop all).
    /// </summary>
    public void SaveSnapshot(RaftSnapshot snapshot)
    {
        if (snapshot.Index < SnapshotIndex)
        {
            throw new SafetyViolationException($"storage was handed snapshot {snapshot.Index}, older than the stored snapshot {SnapshotIndex}");
        }

        int covered = (int)Math.Clamp(snapshot.Index - SnapshotIndex, 0, _entries.Count);
        bool keepsSuffix = covered > 0 && _entries[covered - 1].Index == snapshot.Index && _entries[covered - 1].Term == snapshot.Term;
        int removed = keepsSuffix ? covered : _entries.Count;
        _batch?.RemovedPrefix.AddRange(_entries.GetRange(0, removed));
        _entries.RemoveRange(0, removed);
        Snapshot = snapshot;
    }

    /// <summary>SaveAsync's entries: drop the stored log from the first entry's index on, then append.</summary>
    public void Append(IReadOnlyList<LogEntry> entries)
    {
        int from = (int)(entries[0].Index - SnapshotIndex - 1);
        int truncated = _entries.Count - from;
        if (_batch is not null)
        {
            _batch.TruncatedSuffix.AddRange(_entries.GetRange(from, truncated));
            _batch.Appended += entries.Count;
        }

        _entries.RemoveRange(from, truncated);
        _entries.AddRange(entries);
    }

    public void SaveHardState(HardState hardState) => HardState = hardState;

    /// <summary>A crash loses the newest <paramref name="batches"/> unflushed batches; the rest reach the disk.</summary>
    public void LoseNewest(int batches)
    {
        for (int i = 0; i < batches && _unflushed.Count > 0; i++)
        {
            var undo = _unflushed[^1];
            _unflushed.RemoveAt(_unflushed.Count - 1);
            _entries.RemoveRange(_entries.Count - undo.Appended, undo.Appended);
            _entries.AddRange(undo.TruncatedSuffix);
            _entries.InsertRange(0, undo.RemovedPrefix);
            Snapshot = undo.Snapshot;
            HardState = undo.HardState;
        }

        _unflushed.Clear();
    }

    /// <summary>Everything is gone (a deleted data directory, a new disk).</summary>
    public void Wipe()
    {
        _entries.Clear();
        _unflushed.Clear();
        Snapshot = null;
        HardState = HardState.Empty;
    }

    /// <summary>How to put the storage back as it was before one batch.</summary>
    private sealed class Undo(HardState hardState, RaftSnapshot? snapshot)
    {
        public HardState HardState { get; } = hardState;

        public RaftSnapshot? Snapshot { get; } = snapshot;

        /// <summary>Entries a snapshot save discarded from the front (all of them when the log diverged).</summary>
        public List<LogEntry> RemovedPrefix { get; } = [];

        /// <summary>Entries an append cut off (a conflicting suffix).</summary>
        public List<LogEntry> TruncatedSuffix { get; } = [];

        public int Appended { get; set; }
    }
}
