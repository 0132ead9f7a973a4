using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// One simulated server: a <see cref="RaftCore"/> while it is up, its durable storage (hard state,
/// snapshot and log, written exactly as the Ready contract says) and its state machine (the applied
/// entries). A crash loses the core and everything volatile, and may lose unflushed writes or the
/// whole storage; a restart rebuilds the core from storage.
/// </summary>
internal sealed class SimulatedNode(string id)
{
    private RaftSnapshot? _decodedFor;
    private List<LogEntry> _decoded = [];

    public string Id { get; } = id;

    public RaftCore? Core { get; private set; }

    public bool IsUp => Core is not null;

    public SimulatedStorage Storage { get; } = new();

    /// <summary>The persisted hard state.</summary>
    public HardState HardState => Storage.HardState;

    /// <summary>The state machine: every entry applied, in order (position i holds index i + 1).</summary>
    public List<LogEntry> Applied { get; } = [];

    /// <summary>The highest commit index this node has reported (it never goes down, unless storage lost it).</summary>
    public long Commit { get; set; }

    /// <summary>The term in which this node was last checked as a leader, and how far that check got.</summary>
    public long LeaderTerm { get; set; } = -1;

    public long LeaderCheckedUpTo { get; set; }

    public int Restarts { get; private set; }

    /// <summary>A crash lost written state since the node last started (it restarts as one whose storage lost data).</summary>
    public bool LostData { get; set; }

    /// <summary>Lost state and is not yet known to be whole again (see <see cref="LossModel"/>); set with <see cref="LostData"/>.</summary>
    public bool Unhealed { get; set; }

    /// <summary>Whether the core was rejoining when last processed (to report the changes).</summary>
    public bool ReportedRejoining { get; set; }

    /// <summary>Lost state and has not yet proven it may vote again: at most N - majority nodes may be so at once.</summary>
    public bool IsDamaged => Unhealed || (Core?.Rejoining ?? HardState.Rejoining);

    /// <summary>
    /// Starts (or restarts) the core from storage. A durable state machine resumes where it was; a
    /// volatile one (always so after lost storage) is restored from the stored snapshot and has the
    /// committed log after it replayed into it.
    /// </summary>
    public void Start(RaftConfig config, bool durableStateMachine, bool claimZeroApplied, SafetyChecker checker)
    {
        var snapshot = Storage.Snapshot;
        long applied;
        if (Restarts > 0 && (!durableStateMachine || LostData))
        {
            Applied.Clear();
            if (snapshot is not null)
            {
                RestoreStateMachine(snapshot, checker);
            }

            // RaftCore starts applying after its snapshot whatever it is told; both forms are legal.
            applied = claimZeroApplied ? 0 : snapshot?.Index ?? 0;
        }
        else
        {
            applied = Applied.Count;
        }

        Core = new RaftCore(config, HardState, Storage.Entries.ToArray(), applied, snapshot);
        if (LostData)
        {
            Commit = Core.CommitIndex;
            LostData = false;
        }

        Restarts++;
        LeaderTerm = -1;
        LeaderCheckedUpTo = 0;
    }

    public void Crash() => Core = null;

    /// <summary>
    /// Persists what the Ready hands out, in the documented order: the snapshot (and the state
    /// machine restored from it), then the log from the first new entry's index on, then the hard
    /// state. Each written entry is shown to the checker.
    /// </summary>
    public void Persist(Ready ready, SafetyChecker checker)
    {
        if (ready.Snapshot is null && ready.HardState is null && ready.EntriesToPersist.Count == 0)
        {
            return;
        }

        Storage.BeginBatch();
        if (ready.Snapshot is { } snapshot)
        {
            if (snapshot.Index <= Applied.Count)
            {
                throw new SafetyViolationException($"{Id} was handed snapshot {snapshot.Index}/t{snapshot.Term} to install but has applied up to {Applied.Count}");
            }

            Storage.SaveSnapshot(snapshot);
            RestoreStateMachine(snapshot, checker);
        }

        PersistEntries(ready.EntriesToPersist, checker);
        if (ready.HardState is { } hardState)
        {
            if (hardState.Term < HardState.Term)
            {
                throw new SafetyViolationException($"{Id}'s persisted term went down from {HardState.Term} to {hardState.Term}");
            }

            if (hardState.Term == HardState.Term && HardState.VotedFor is not null && hardState.VotedFor != HardState.VotedFor)
            {
                throw new SafetyViolationException(
                    $"{Id} changed its vote in term {hardState.Term} from {HardState.VotedFor} to {hardState.VotedFor ?? "nobody"}");
            }

            Storage.SaveHardState(hardState);
        }

        Storage.EndBatch();
    }

    /// <summary>Applies committed entries to the state machine, after persisting (the Ready contract).</summary>
    public void Apply(IReadOnlyList<LogEntry> committed, SafetyChecker checker)
    {
        foreach (var entry in committed)
        {
            checker.ObserveApplied(Id, Applied.Count, entry);
            if (entry.Index > HardState.Commit || !Storage.TryGet(entry.Index, out var stored))
            {
                throw new SafetyViolationException(
                    $"{Id} applies index {entry.Index} beyond its persisted commit index {HardState.Commit}, or outside its stored log {Storage.SnapshotIndex + 1}..{Storage.LastIndex}");
            }

            if (!SafetyChecker.SameContent(stored, entry))
            {
                throw new SafetyViolationException($"{Id} applies {SafetyChecker.Describe(entry)} but stores {SafetyChecker.Describe(stored)} at that index");
            }

            Applied.Add(entry);
        }
    }

    /// <summary>Snapshots the state machine as of its last applied entry and saves it (before the core compacts).</summary>
    public RaftSnapshot SaveLocalSnapshot(long term)
    {
        var snapshot = new RaftSnapshot(Applied.Count, term, SnapshotCodec.Encode(Applied));
        Storage.BeginBatch();
        Storage.SaveSnapshot(snapshot);
        Storage.EndBatch();
        _decodedFor = snapshot;
        _decoded = [.. Applied];
        return snapshot;
    }

    /// <summary>The term of the entry at <paramref name="index"/> as the core holds it: in its log, or in its snapshot when compacted.</summary>
    public long TermAt(long index)
    {
        var core = Core!;
        long term = core.TermAt(index);
        if (term >= 0 || core.Snapshot is not { } snapshot || index < 1 || index > snapshot.Index)
        {
            return term;
        }

        return SnapshotContent(snapshot)[(int)index - 1].Term;
    }

    /// <summary>The applied sequence a snapshot carries (decoded once per snapshot).</summary>
    public List<LogEntry> SnapshotContent(RaftSnapshot snapshot)
    {
        if (!ReferenceEquals(_decodedFor, snapshot))
        {
            _decoded = SnapshotCodec.Decode(snapshot);
            _decodedFor = snapshot;
        }

        return _decoded;
    }

    private void RestoreStateMachine(RaftSnapshot snapshot, SafetyChecker checker)
    {
        var content = SnapshotContent(snapshot);
        checker.ObserveRestored(Id, content);
        Applied.Clear();
        Applied.AddRange(content);
    }

    private void PersistEntries(IReadOnlyList<LogEntry> entries, SafetyChecker checker)
    {
        if (entries.Count == 0)
        {
            return;
        }

        long first = entries[0].Index;
        if (first <= Storage.SnapshotIndex || first > Storage.LastIndex + 1)
        {
            throw new SafetyViolationException(
                $"{Id} was handed entries from index {first} but its storage holds {Storage.SnapshotIndex + 1}..{Storage.LastIndex} after a snapshot at {Storage.SnapshotIndex}");
        }

        if (first <= HardState.Commit)
        {
            throw new SafetyViolationException(
                $"{Id} was told to overwrite its log from index {first}, at or below its persisted commit index {HardState.Commit}");
        }

        long previousTerm = first - 1 == Storage.SnapshotIndex ? Storage.Snapshot?.Term ?? 0 : Storage.TryGet(first - 1, out var before) ? before.Term : 0;
        for (int i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (entry.Index != first + i)
            {
                throw new SafetyViolationException($"{Id} was handed non-contiguous entries: {entry.Index} after {first + i - 1}");
            }

            checker.ObserveLogged(Id, entry, previousTerm);
            previousTerm = entry.Term;
        }

        Storage.Append(entries);
    }
}
