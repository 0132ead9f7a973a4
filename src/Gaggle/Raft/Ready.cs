namespace Gaggle.Raft;

/// <summary>The role a node plays in its current term.</summary>
public enum RaftRole
{
    /// <summary>Follows a leader (or waits for one).</summary>
    Follower,

    /// <summary>Asks for pre-votes before starting a real election (Raft thesis §9.6).</summary>
    PreCandidate,

    /// <summary>Asks for votes in a new term.</summary>
    Candidate,

    /// <summary>Accepts proposals and replicates the log.</summary>
    Leader,
}

/// <summary>
/// A batch of work produced by <see cref="RaftCore"/> for its driver.
/// </summary>
/// <remarks>
/// Ordering contract: the driver must persist <see cref="HardState"/> and <see cref="EntriesToPersist"/>
/// (durably, as far as its storage promises) BEFORE it sends <see cref="Messages"/>, and must apply
/// <see cref="CommittedEntries"/> in order, after persisting. <see cref="EntriesToPersist"/> may start at
/// an index already in storage: storage then drops its entries from that index on (a truncated
/// conflicting suffix) before appending.
/// </remarks>
internal sealed class Ready
{
    public HardState? HardState { get; init; }

    /// <summary>
    /// A snapshot received from the leader: persist it (before the entries and hard state of this
    /// ready), then restore the state machines from it before applying <see cref="CommittedEntries"/>.
    /// </summary>
    public RaftSnapshot? Snapshot { get; init; }

    public IReadOnlyList<LogEntry> EntriesToPersist { get; init; } = [];

    public IReadOnlyList<RaftMessage> Messages { get; init; } = [];

    public IReadOnlyList<LogEntry> CommittedEntries { get; init; } = [];

    /// <summary>Set when the role, term or known leader changed since the previous ready.</summary>
    public SoftState? SoftState { get; init; }
}

/// <summary>Volatile state worth telling the application about.</summary>
/// <param name="Role">The node's role.</param>
/// <param name="Term">The node's current term.</param>
/// <param name="LeaderId">The leader the node knows in <paramref name="Term"/>, or null.</param>
internal readonly record struct SoftState(RaftRole Role, long Term, string? LeaderId);
