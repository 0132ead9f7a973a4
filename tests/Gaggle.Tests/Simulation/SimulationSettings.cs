using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>The shape of a simulated cluster: how many nodes and how they know each other.</summary>
/// <param name="Size">The number of voting members.</param>
/// <param name="Discovery">True for discovery mode (ClusterSize only, ids learned from traffic); false for explicit Members.</param>
internal readonly record struct ClusterShape(int Size, bool Discovery)
{
    public override string ToString() => Discovery ? $"{Size} nodes, discovery" : $"{Size} nodes";
}

/// <summary>How a simulated server's storage survives a crash.</summary>
internal enum Durability
{
    /// <summary>Every batch is durable before the Ready's messages go out (FlushPolicy.Always): a crash loses nothing.</summary>
    Exact,

    /// <summary>
    /// Batches are written but not flushed (FlushPolicy.None): a crash may lose the newest unflushed
    /// ones, and the node then restarts as one whose storage lost data (StartRejoining).
    /// </summary>
    FlushPolicyNone,
}

/// <summary>What a node that lost storage is told when it restarts.</summary>
internal enum LostStorageRestart
{
    /// <summary>The documented procedure: it restarts with RaftConfig.StartRejoining.</summary>
    StartRejoining,

    /// <summary>Nobody tells it; it must notice from a leader's heartbeat (automatic detection only).</summary>
    AutomaticDetection,
}

/// <summary>
/// How lost storage is handled, and what the adversary may do around it.
/// </summary>
/// <param name="Restart">What a node whose storage lost data is told when it restarts.</param>
/// <param name="Races">
/// False (the default) assumes what Gaggle's channels give and the rejoin procedure relies on: a node
/// restarted after losing data receives nothing addressed to its previous incarnation, and nothing its
/// previous incarnation sent is delivered after the new one starts; and a node that lost data counts as
/// whole again only once a stabilization has replicated a fresh entry to every node (so a leader no
/// longer counts acknowledgements it lost) — until then no other node may lose data beyond N - majority.
/// True drops both assumptions: the full asynchronous adversary, which breaks the rejoin procedure
/// (messages and a leader's match from before the loss are not tied to the storage that made them).
/// </param>
internal sealed record LossModel(LostStorageRestart Restart = LostStorageRestart.StartRejoining, bool Races = false)
{
    public static LossModel Default { get; } = new();

    public override string ToString() => $"{Restart}{(Races ? ", loss races" : "")}";
}

/// <summary>
/// Everything a seed decides before the run starts: the Raft settings every node uses and how hostile
/// the schedule is. Drawing them from the seed ("swarm testing") lets some seeds be calm and others
/// lossy, crash-prone or partitioned, and covers the core's option combinations.
/// </summary>
internal sealed class SimulationSettings
{
    public required int HeartbeatTicks { get; init; }

    public required int ElectionTicksMin { get; init; }

    public required int ElectionTicksMax { get; init; }

    public required bool PreVote { get; init; }

    public required bool CheckQuorum { get; init; }

    public required bool AccelerateCommit { get; init; }

    public required int MaxInflightMessages { get; init; }

    public required long MaxInflightBytes { get; init; }

    public required int MaxEntriesPerMessage { get; init; }

    public required long MaxBytesPerMessage { get; init; }

    /// <summary>Relative weights of the chaos phase's actions.</summary>
    public required ActionWeights Weights { get; init; }

    public required Durability Durability { get; init; }

    /// <summary>FlushPolicyNone: the chance (percent) that a batch is flushed right after it is written.</summary>
    public required int FlushPercent { get; init; }

    /// <summary>FlushPolicyNone: the chance (percent) that a crash loses some of the unflushed batches.</summary>
    public required int LoseTailPercent { get; init; }

    /// <summary>A snapshot keeps a random 0..this many entries before its index in the in-memory log.</summary>
    public required int SnapshotRetainMax { get; init; }

    public static SimulationSettings Draw(Random random)
    {
        int heartbeat = random.Next(1, 4);
        int electionMin = random.Next(8, 16);
        return new SimulationSettings
        {
            HeartbeatTicks = heartbeat,
            ElectionTicksMin = electionMin,
            ElectionTicksMax = electionMin + random.Next(5, 16),
            PreVote = random.Next(4) != 0,
            CheckQuorum = random.Next(4) != 0,
            AccelerateCommit = random.Next(2) == 0,
            MaxInflightMessages = random.Next(1, 9),
            MaxInflightBytes = random.Next(3) == 0 ? random.Next(1, 100) : 4 * 1024 * 1024,
            MaxEntriesPerMessage = random.Next(1, 9),
            // Entries weigh their payload plus 16 bytes; small limits force one entry per message.
            // ... and snapshots (a few kilobytes) go in tens to thousands of chunks.
            MaxBytesPerMessage = random.Next(3) switch { 0 => random.Next(1, 40), 1 => random.Next(40, 600), _ => 512 * 1024 },
            Weights = ActionWeights.Draw(random),
            Durability = random.Next(2) == 0 ? Durability.Exact : Durability.FlushPolicyNone,
            FlushPercent = random.Next(5, 80),
            LoseTailPercent = random.Next(2) == 0 ? 50 : 100,
            SnapshotRetainMax = random.Next(3) switch { 0 => 0, 1 => 3, _ => 20 },
        };
    }

    public RaftConfig CreateConfig(string id, ClusterShape shape, IReadOnlyList<string> ids, Random random, bool startRejoining = false) => new()
    {
        Id = id,
        Members = shape.Discovery ? null : ids,
        ClusterSize = shape.Discovery ? shape.Size : 0,
        HeartbeatTicks = HeartbeatTicks,
        ElectionTicksMin = ElectionTicksMin,
        ElectionTicksMax = ElectionTicksMax,
        PreVote = PreVote,
        CheckQuorum = CheckQuorum,
        AccelerateCommit = AccelerateCommit,
        MaxInflightMessages = MaxInflightMessages,
        MaxInflightBytes = MaxInflightBytes,
        MaxEntriesPerMessage = MaxEntriesPerMessage,
        MaxBytesPerMessage = MaxBytesPerMessage,
        StartRejoining = startRejoining,
        Random = random,
    };

    public override string ToString()
        => $"heartbeat={HeartbeatTicks} election={ElectionTicksMin}..{ElectionTicksMax} preVote={PreVote} checkQuorum={CheckQuorum} "
            + $"accelerateCommit={AccelerateCommit} inflight={MaxInflightMessages} msgs/{MaxInflightBytes} bytes entries/msg={MaxEntriesPerMessage} "
            + $"bytes/msg={MaxBytesPerMessage} durability={Durability}"
            + (Durability == Durability.FlushPolicyNone ? $" (flush {FlushPercent}%, crash loses tail {LoseTailPercent}%)" : "")
            + $" retain<={SnapshotRetainMax} weights=[{Weights}]";
}

/// <summary>Relative weights of the chaos phase's actions (zero disables one).</summary>
internal sealed record ActionWeights(
    int Tick, int Deliver, int Drop, int Duplicate, int Propose, int Transfer, int Partition, int Heal, int Crash, int Restart,
    int Snapshot, int LoseStorage)
{
    public int Total => Tick + Deliver + Drop + Duplicate + Propose + Transfer + Partition + Heal + Crash + Restart + Snapshot + LoseStorage;

    public static ActionWeights Draw(Random random)
    {
        int Pick(params int[] choices) => choices[random.Next(choices.Length)];
        int crash = Pick(0, 4, 12);
        int partition = Pick(0, 4, 12);
        int loseStorage = Pick(0, 0, 2, 6);
        return new ActionWeights(
            // Many ticks per delivery means slow networks: more timeouts, competing candidates, term churn.
            Tick: Pick(150, 350, 700),
            Deliver: 450,
            Drop: Pick(0, 15, 60),
            Duplicate: Pick(0, 10, 40),
            Propose: Pick(30, 90),
            Transfer: Pick(0, 3),
            Partition: partition,
            Heal: partition == 0 ? 0 : Pick(4, 12),
            Crash: crash,
            Restart: crash + loseStorage == 0 ? 0 : Pick(8, 20),
            Snapshot: Pick(0, 4, 15),
            LoseStorage: loseStorage);
    }
}
