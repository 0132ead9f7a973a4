namespace Gaggle.Raft;

/// <summary>Settings of one <see cref="RaftCore"/>. Time is counted in ticks of the driver's clock.</summary>
internal sealed class RaftConfig
{
    /// <summary>This node's id.</summary>
    public required string Id { get; init; }

    /// <summary>
    /// Every voting member, this node included. Null selects discovery mode: the cluster has
    /// <see cref="ClusterSize"/> members whose ids are learned from the messages they send.
    /// </summary>
    public IReadOnlyList<string>? Members { get; init; }

    /// <summary>
    /// This node is new to a running cluster whose initial voters are <see cref="Members"/> (with or
    /// without this node's id): it is not a voter of its seed configuration, so it neither votes for
    /// itself nor campaigns until a configuration entry makes it one.
    /// </summary>
    public bool Joining { get; init; }

    /// <summary>The number of voting members in discovery mode (ignored when <see cref="Members"/> is set).</summary>
    public int ClusterSize { get; init; }

    /// <summary>The lower bound of the randomized election timeout, in ticks; also the check-quorum window: a leader steps down once it has not heard from a majority for this many ticks.</summary>
    public int ElectionTicksMin { get; init; } = 30;

    /// <summary>The upper bound (inclusive) of the randomized election timeout, in ticks.</summary>
    public int ElectionTicksMax { get; init; } = 50;

    /// <summary>Ticks between leader heartbeats.</summary>
    public int HeartbeatTicks { get; init; } = 5;

    public bool PreVote { get; init; } = true;

    public bool CheckQuorum { get; init; } = true;

    /// <summary>Tell followers about a new commit index at once rather than with the next heartbeat.</summary>
    public bool AccelerateCommit { get; init; } = true;

    /// <summary>
    /// Followers and learners commit the leader's current-term entries once they see a majority of
    /// the voters has stored them (a voter of three on storing them; see RaftCore.FollowerCommit.cs),
    /// without waiting for the leader's commit notice. A node that rejoins after losing its storage
    /// then catches up to every entry the leader sent it, not merely to the commit index the leader
    /// knows, which may lag behind a commit a follower decided (see RaftCore.Rejoin.cs).
    /// </summary>
    public bool FollowerCommit { get; init; }

    /// <summary>
    /// With <see cref="FollowerCommit"/>, voters broadcast their acknowledgements where others can
    /// count them (learners, more than three voters), so a learner's append commits one hop sooner.
    /// Off: every node in one process on two cores, the benchmark showed no gain for a learner and
    /// a leader slower by ~25 us (each acknowledgement handled by every node); it needs a
    /// measurement across machines before it is turned on.
    /// </summary>
    public bool BroadcastAcknowledgements { get; init; }

    /// <summary>
    /// When every follower is replicating from the same index, new entries go out as one broadcast
    /// AppendEntries (one PUBLISH fanned out by Redis) instead of one message per follower.
    /// </summary>
    public bool BroadcastAppends { get; init; } = true;

    /// <summary>AppendEntries messages in flight per follower.</summary>
    public int MaxInflightMessages { get; init; } = 64;

    /// <summary>Payload bytes in flight per follower (at least one message is always allowed).</summary>
    public long MaxInflightBytes { get; init; } = 4 * 1024 * 1024;

    public int MaxEntriesPerMessage { get; init; } = 512;

    public long MaxBytesPerMessage { get; init; } = 512 * 1024;

    /// <summary>Start in rejoin mode (see RaftCore.Rejoin.cs): for a node restarted after losing its storage.</summary>
    public bool StartRejoining { get; init; }

    /// <summary>
    /// This run of the node (0 when unknown): every later run of the same id has a higher one. Its
    /// acknowledgements carry it, and a leader counts none of an earlier run once it heard from a later
    /// one (see RaftCore.Rejoin.cs: what a run that lost its storage acknowledged is not tied to the storage otherwise).
    /// </summary>
    public ulong Incarnation { get; init; }

    /// <summary>The seeded source of election timeout jitter.</summary>
    public required Random Random { get; init; }

    public void Validate()
    {
        if (string.IsNullOrEmpty(Id))
        {
            throw new ArgumentException("Id must be a non-empty node id.", nameof(Id));
        }

        if (Joining && Members is null)
        {
            throw new ArgumentException("Joining needs Members: the voters of the cluster this node joins.", nameof(Joining));
        }

        if (Members is null && ClusterSize < 1)
        {
            throw new ArgumentException($"ClusterSize is {ClusterSize}; it must be at least 1 when Members is not set.", nameof(ClusterSize));
        }

        if (Members is not null && !Joining && !Members.Contains(Id))
        {
            throw new ArgumentException($"Members ({string.Join(", ", Members)}) must include this node's id '{Id}'.", nameof(Members));
        }

        if (HeartbeatTicks < 1 || ElectionTicksMin <= HeartbeatTicks || ElectionTicksMax < ElectionTicksMin)
        {
            throw new ArgumentException(
                $"Ticks must satisfy 1 <= heartbeat ({HeartbeatTicks}) < election min ({ElectionTicksMin}) <= election max ({ElectionTicksMax}).");
        }

        if (MaxInflightMessages < 1 || MaxEntriesPerMessage < 1 || MaxBytesPerMessage < 1 || MaxInflightBytes < 1)
        {
            throw new ArgumentException("MaxInflightMessages, MaxInflightBytes, MaxEntriesPerMessage and MaxBytesPerMessage must be positive.");
        }
    }
}
