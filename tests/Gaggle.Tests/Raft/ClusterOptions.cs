namespace Gaggle.Tests.Raft;

/// <summary>Settings shared by every node of a <see cref="RaftTestCluster"/>; small tick counts keep scenarios short.</summary>
internal sealed record ClusterOptions
{
    public int ElectionTicksMin { get; init; } = 10;

    public int ElectionTicksMax { get; init; } = 20;

    public int HeartbeatTicks { get; init; } = 2;

    public bool PreVote { get; init; } = true;

    public bool CheckQuorum { get; init; } = true;

    public bool AccelerateCommit { get; init; } = true;

    public bool FollowerCommit { get; init; }

    /// <summary>Off here: these scenarios script messages per follower; the simulations run with it on.</summary>
    public bool BroadcastAppends { get; init; }

    public int MaxInflightMessages { get; init; } = 64;

    public int MaxEntriesPerMessage { get; init; } = 512;

    public long MaxBytesPerMessage { get; init; } = 512 * 1024;

    /// <summary>Discovery mode: nodes get no member list, only the cluster size.</summary>
    public bool Discovery { get; init; }

    public int Seed { get; init; } = 1;
}
