using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// One simulated server: a <see cref="RaftCore"/> while it is up, its durable storage (hard state
/// and log, written exactly as the Ready contract says) and its state machine (the applied entries).
/// A crash loses the core and everything volatile; a restart rebuilds the core from storage.
/// </summary>
internal sealed class SimulatedNode(string id)
{
    private readonly List<LogEntry> _log = [];

    public string Id { get; } = id;

    public RaftCore? Core { get; private set; }

    public bool IsUp => Core is not null;

    /// <summary>The persisted hard state.</summary>
    public HardState HardState { get; private set; } = HardState.Empty;

    /// <summary>The persisted log (position i holds index i + 1).</summary>
    public IReadOnlyList<LogEntry> Log => _log;

    /// <summary>The state machine: every entry applied, in order (position i holds index i + 1).</summary>
    public List<LogEntry> Applied { get; } = [];

    /// <summary>The highest commit index this node has reported (it must never go down).</summary>
    public long Commit { get; set; }

    /// <summary>The term in which this node was last checked as a leader, and how far that check got.</summary>
    public long LeaderTerm { get; set; } = -1;

    public long LeaderCheckedUpTo { get; set; }

    public int Restarts { get; private set; }

    /// <summary>
    /// Starts (or restarts) the core from storage. A durable state machine resumes where it was; a
    /// volatile one starts empty and has the committed log replayed into it.
    /// </summary>
    public void Start(RaftConfig config, bool durableStateMachine)
    {
        if (Restarts > 0 && !durableStateMachine)
        {
            Applied.Clear();
        }

        Core = new RaftCore(config, HardState, _log.ToArray(), Applied.Count);
        Restarts++;
        LeaderTerm = -1;
        LeaderCheckedUpTo = 0;
    }

    public void Crash() => Core = null;

    /// <summary>
    /// Persists what the Ready hands out, in the documented order: drop the log from the first new
    /// entry's index on, append, replace the hard state. Each written entry is shown to the checker.
    /// </summary>
    public void Persist(Ready ready, SafetyChecker checker)
    {
        var entries = ready.EntriesToPersist;
        if (entries.Count > 0)
        {
            long first = entries[0].Index;
            if (first < 1 || first > _log.Count + 1)
            {
                throw new SafetyViolationException($"{Id} was handed entries from index {first} but its stored log ends at {_log.Count}");
            }

            if (first <= HardState.Commit)
            {
                throw new SafetyViolationException(
                    $"{Id} was told to overwrite its log from index {first}, at or below its persisted commit index {HardState.Commit}");
            }

            _log.RemoveRange((int)first - 1, _log.Count - (int)first + 1);
            foreach (var entry in entries)
            {
                if (entry.Index != _log.Count + 1)
                {
                    throw new SafetyViolationException($"{Id} was handed non-contiguous entries: {entry.Index} after {_log.Count}");
                }

                checker.ObserveLogged(Id, entry, _log.Count == 0 ? 0 : _log[^1].Term);
                _log.Add(entry);
            }
        }

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

            HardState = hardState;
        }
    }

    /// <summary>Applies committed entries to the state machine, after persisting (the Ready contract).</summary>
    public void Apply(IReadOnlyList<LogEntry> committed, SafetyChecker checker)
    {
        foreach (var entry in committed)
        {
            checker.ObserveApplied(Id, Applied.Count, entry);
            if (entry.Index > HardState.Commit || entry.Index > _log.Count)
            {
                throw new SafetyViolationException($"{Id} applies index {entry.Index} beyond its persisted commit index {HardState.Commit} or log end {_log.Count}");
            }

            if (!SafetyChecker.SameContent(_log[(int)entry.Index - 1], entry))
            {
                throw new SafetyViolationException(
                    $"{Id} applies {SafetyChecker.Describe(entry)} but stores {SafetyChecker.Describe(_log[(int)entry.Index - 1])} at that index");
            }

            Applied.Add(entry);
        }
    }
}
