using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>The shape of a simulated cluster: how many nodes and how they know each other.</summary>
/// <param name="Size">The number of voting members (with <paramref name="Membership"/>: at the start).</param>
/// <param name="Discovery">True for discovery mode (ClusterSize only, ids learned from traffic); false for explicit Members.</param>
/// <param name="Membership">
/// The leader adds learners, promotes, removes and hands over leadership during the chaos phases
/// (see Simulator.Membership.cs): the cluster grows from its <paramref name="Size"/> initial voters up
/// to <see cref="MaxMembers"/> members and shrinks back, new nodes joining with fresh ids.
/// </param>
/// <param name="Autopilot">
/// With <paramref name="Membership"/>: the leaders' autopilot (<see cref="NodeDriverSettings.Autopilot"/>)
/// changes the configuration instead of calls made on the leader, as nodes join, stop for good and pause
/// (see Simulator.Autopilot.cs).
/// </param>
/// <param name="Elastic">
/// With <paramref name="Membership"/> and <paramref name="Autopilot"/>: elastic mode (no member list):
/// <paramref name="Size"/> instances start at random times, each a new member id knowing no cluster,
/// and form cluster generations through a shared generation store (see Simulator.Elastic.cs).
/// </param>
/// <param name="UnheardGenerations">
/// With <paramref name="Elastic"/>: the adversary may keep a live generation unheard by newcomers for
/// longer than the founding wait: anyone pauses past the member timeout, and cuts from the hub last
/// until healed; the generation fence must keep the generations founded meanwhile from acting at once.
/// Without it, only a node whose generation keeps a leader without it pauses that long, and a cut heals
/// within two election timeouts. With it the store may also lose its value while instances run (see
/// Simulator.LoseGeneration); without it, only while none does.
/// </param>
internal readonly record struct ClusterShape(int Size, bool Discovery, bool Membership = false, bool Autopilot = false, bool Elastic = false, bool UnheardGenerations = false)
{
    /// <summary>The most members (voters and learners) a membership run lets a configuration hold.</summary>
    public const int MaxMembers = 7;

    /// <summary>
    /// The shape of seed <paramref name="seed"/> in a test of <paramref name="size"/> static voters: one
    /// seed in three instead runs membership changes from 1 to 5 initial voters (decided from the seed
    /// alone, so the other seeds run exactly as they did before membership changes were simulated); half
    /// of those leave the changes to the autopilot, and one in four (half the autopilot ones: seeds
    /// with seed / 3 % 4 == 2) runs elastic mode instead, from 1 to 5 instances.
    /// </summary>
    public static ClusterShape ForSeed(int seed, int size)
        => seed % 3 != 0 ? new ClusterShape(size, Discovery: false)
            : (seed / 3) % 4 == 2 ? ElasticOf(1 + ((seed / 3) + size) % 5)
            : new ClusterShape(1 + ((seed / 3) + size) % 5, Discovery: false, Membership: true, Autopilot: (seed / 3) % 2 == 0);

    /// <summary>An elastic run of <paramref name="instances"/> instances at the start.</summary>
    public static ClusterShape ElasticOf(int instances, bool unheardGenerations = false)
        => new(instances, Discovery: false, Membership: true, Autopilot: true, Elastic: true, UnheardGenerations: unheardGenerations);

    public override string ToString()
        => Discovery ? $"{Size} nodes, discovery" : Elastic ? $"{Size} instances, elastic{(UnheardGenerations ? ", unheard generations" : "")}" : Autopilot ? $"{Size} initial voters, autopilot"
            : Membership ? $"{Size} initial voters, membership changes" : $"{Size} nodes";
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
/// Everything a seed decides before the run starts: the Raft and node settings every node uses, the
/// lease, the clients and how hostile the schedule is. Drawing them from the seed ("swarm testing")
/// lets some seeds be calm and others lossy, crash-prone or partitioned, and covers the option combinations.
/// </summary>
internal sealed partial record SimulationSettings
{
    /// <summary>Milliseconds of a node's own clock per Raft tick (GaggleNode: HeartbeatInterval / 5).</summary>
    public const int TickMs = 10;

    /// <summary>The largest clock-rate error of a node, in parts per million (the lock handle's 10% margin covers about 5%).</summary>
    public const int MaxDriftPpm = 40_000;

    public required int HeartbeatTicks { get; init; }

    public required int ElectionTicksMin { get; init; }

    public required int ElectionTicksMax { get; init; }

    public required bool PreVote { get; init; }

    public required bool CheckQuorum { get; init; }

    public required bool AccelerateCommit { get; init; }

    /// <summary>
    /// Followers commit on their own what they see a majority of the voters stored (RaftConfig.FollowerCommit,
    /// as every node ships; off in a quarter of the static runs, so the leader-only path keeps its
    /// coverage). Elastic runs always have it, as shipped.
    /// </summary>
    public bool FollowerCommit { get; init; } = true;

    public required int MaxInflightMessages { get; init; }

    public required long MaxInflightBytes { get; init; }

    public required int MaxEntriesPerMessage { get; init; }

    public required int MaxBytesPerMessage { get; init; }

    /// <summary>Entries applied since the last snapshot that make a node snapshot and compact (0: never).</summary>
    public required int SnapshotThreshold { get; init; }

    /// <summary>Entries a snapshot keeps before its index in the log.</summary>
    public required int SnapshotRetain { get; init; }

    /// <summary>Relative weights of the chaos phase's actions.</summary>
    public required ActionWeights Weights { get; init; }

    public required Durability Durability { get; init; }

    /// <summary>FlushPolicyNone: the chance (percent) that a batch is flushed right after it is written.</summary>
    public required int FlushPercent { get; init; }

    /// <summary>FlushPolicyNone: the chance (percent) that a crash loses some of the unflushed batches.</summary>
    public required int LoseTailPercent { get; init; }

    /// <summary>LockLeaseDuration, in milliseconds.</summary>
    public required long LeaseMs { get; init; }

    /// <summary>Simulated lock users per node process.</summary>
    public required int ClientsPerNode { get; init; }

    /// <summary>The semaphore's slot count.</summary>
    public required int SemaphoreSlots { get; init; }

    /// <summary>
    /// Lock clients also use a reader-writer lock, for reading and for writing, and now and then ask for a
    /// mutex's name as a reader-writer lock (see SimulatedLockClient.PickLock). The lock workload's runs
    /// only: the mixed runs' lock use stays as it was, so the seeds replayed for old bugs replay the same runs.
    /// </summary>
    public bool ReaderWriterLocks { get; init; }

    /// <summary>
    /// Lock clients now and then take a set of two or three locks at once (AcquireAll; see
    /// SimulatedLockClient.PickLocks). The lock workload's runs only, as <see cref="ReaderWriterLocks"/>.
    /// </summary>
    public bool MultiLocks { get; init; }

    /// <summary>The autopilot every node runs (autopilot runs only), with the fingerprint every node announces.</summary>
    public AutopilotSettings? Autopilot { get; init; }

    /// <summary>Ticks between retries of stalled appends (GaggleNode: ElectionTimeoutMin in ticks).</summary>
    public int RetryTicks => ElectionTicksMin;

    public static SimulationSettings Draw(Random random, Workload workload)
    {
        int heartbeat = random.Next(1, 4);
        int electionMin = random.Next(8, 21);
        var settings = new SimulationSettings
        {
            HeartbeatTicks = heartbeat,
            ElectionTicksMin = electionMin,
            ElectionTicksMax = electionMin + random.Next(5, 16),
            PreVote = random.Next(4) != 0,
            CheckQuorum = random.Next(4) != 0,
            AccelerateCommit = random.Next(2) == 0,
            MaxInflightMessages = random.Next(1, 9),
            MaxInflightBytes = random.Next(3) == 0 ? random.Next(1, 400) : 4 * 1024 * 1024,
            MaxEntriesPerMessage = random.Next(1, 9),
            // Small limits force one entry per message, and snapshots (a few kilobytes) into tens to thousands of chunks.
            MaxBytesPerMessage = random.Next(3) switch { 0 => random.Next(1, 60), 1 => random.Next(60, 600), _ => 512 * 1024 },
            SnapshotThreshold = new[] { 0, 3, 10, 40 }[random.Next(4)],
            SnapshotRetain = new[] { 0, 3, 20 }[random.Next(3)],
            Weights = ActionWeights.Draw(random, workload),
            Durability = random.Next(2) == 0 ? Durability.Exact : Durability.FlushPolicyNone,
            FlushPercent = random.Next(5, 80),
            LoseTailPercent = random.Next(2) == 0 ? 50 : 100,
            // From shorter than an election (holds lost while leaderless) to many elections long.
            LeaseMs = TickMs * new[] { 12, 25, 50, 100 }[random.Next(4)],
            ClientsPerNode = random.Next(1, 4),
            SemaphoreSlots = random.Next(2, 4),
        };

        // From a value drawn already (no new draw, so every other setting of a seed stays as it was).
        return settings with { FollowerCommit = settings.FlushPercent % 4 != 0, ReaderWriterLocks = workload == Workload.Locks, MultiLocks = workload == Workload.Locks };
    }

    /// <summary>
    /// The settings of a membership run: these drawn ones, with exact durability and no lost storage. A
    /// configuration lives in the log, so a node whose storage lost its tail or all of it would come
    /// back with an older configuration, or the seed one (the initial voters), and could campaign and
    /// count votes as a voter it no longer is; Gaggle requires durable storage for membership changes
    /// (a process without its storage joins as a new member). Drawn after everything else, from the
    /// same random source, so that <see cref="Draw"/> stays as it was for the other runs.
    /// </summary>
    public SimulationSettings ForMembership(Random random) => this with
    {
        Durability = Durability.Exact,
        Weights = Weights with
        {
            LoseStorage = 0,
            Restart = Weights.Crash == 0 ? 0 : Weights.Restart,
            Membership = new[] { 30, 80, 200 }[random.Next(3)],
            Retire = new[] { 2, 6 }[random.Next(2)],
        },
    };

    /// <summary>
    /// The settings of an autopilot run (drawn after <see cref="ForMembership"/>, so the other membership
    /// runs draw as before): no changes requested on the leader; nodes join, stop for good and pause
    /// instead. The member timeout is a few election timeouts (a pause outlasts it), a learner must stay
    /// caught up for two election timeouts before its promotion, and every node has the same fingerprint.
    /// </summary>
    public SimulationSettings ForAutopilot(Random random)
    {
        long electionUs = ElectionTicksMax * TickMs * 1000L;
        return this with
        {
            Autopilot = new AutopilotSettings(new[] { 1, 3, 5 }[random.Next(3)], random.Next(3, 7) * electionUs, 2 * electionUs, 0x67616767_6c65_0001UL) { PauseUs = electionUs },
            Weights = Weights with
            {
                Membership = 0,
                Join = new[] { 4, 12 }[random.Next(2)],
                Stop = new[] { 1, 3 }[random.Next(2)],
                Pause = new[] { 1, 3 }[random.Next(2)],
            },
        };
    }

    /// <summary>The driver settings of node <paramref name="id"/> (its own incarnation and seeded random source).</summary>
    /// <param name="joining">A node new to the running cluster: <paramref name="ids"/> (the initial voters) without it is its seed configuration.</param>
    public NodeDriverSettings CreateDriverSettings(
        string id, ClusterShape shape, IReadOnlyList<string> ids, Random random, ulong incarnation, bool startRejoining, bool joining, IGaggleStateMachine history) => new()
    {
        Raft = new RaftConfig
        {
            Id = id,
            Members = shape.Discovery ? null : ids,
            Joining = joining,
            ClusterSize = shape.Discovery ? shape.Size : 0,
            HeartbeatTicks = HeartbeatTicks,
            ElectionTicksMin = ElectionTicksMin,
            ElectionTicksMax = ElectionTicksMax,
            PreVote = PreVote,
            CheckQuorum = CheckQuorum,
            AccelerateCommit = AccelerateCommit,
            FollowerCommit = FollowerCommit || shape.Elastic,
            MaxInflightMessages = MaxInflightMessages,
            MaxInflightBytes = MaxInflightBytes,
            MaxEntriesPerMessage = MaxEntriesPerMessage,
            MaxBytesPerMessage = MaxBytesPerMessage,
            StartRejoining = startRejoining,
            Incarnation = incarnation,
            Random = random,
        },
        Incarnation = incarnation,
        RetryTicks = RetryTicks,
        LeadershipLeaseUs = ElectionTicksMin * TickMs * 900L,
        LockSettleUs = Math.Min(LeaseMs, 4L * ElectionTicksMax * TickMs) * 1000,
        MaxMessageBytes = MaxBytesPerMessage,
        SnapshotThresholdEntries = SnapshotThreshold,
        SnapshotRetainEntries = SnapshotRetain,
        StateMachines = new Dictionary<string, IGaggleStateMachine> { [HistoryMachine.Name] = history },
        Autopilot = Autopilot,
        Fingerprint = Autopilot?.Fingerprint ?? 0,
    };

    public override string ToString()
        => $"heartbeat={HeartbeatTicks} election={ElectionTicksMin}..{ElectionTicksMax} ticks of {TickMs} ms preVote={PreVote} checkQuorum={CheckQuorum} "
            + $"accelerateCommit={AccelerateCommit} followerCommit={FollowerCommit} inflight={MaxInflightMessages} msgs/{MaxInflightBytes} bytes entries/msg={MaxEntriesPerMessage} "
            + $"bytes/msg={MaxBytesPerMessage} snapshot every {SnapshotThreshold} retaining {SnapshotRetain} durability={Durability}"
            + (Durability == Durability.FlushPolicyNone ? $" (flush {FlushPercent}%, crash loses tail {LoseTailPercent}%)" : "")
            + $" lease={LeaseMs} ms clients/node={ClientsPerNode} semaphore={SemaphoreSlots} weights=[{Weights}]"
            + (Autopilot is { } autopilot ? $" autopilot: {autopilot.TargetVoters} voters, member timeout {autopilot.MemberTimeoutUs} us, stabilization {autopilot.StabilizationUs} us" : "")
            + (Elastic is { } elastic ? $" elastic: {elastic}" : "");
}

/// <summary>What the simulated clients mostly do.</summary>
internal enum Workload
{
    /// <summary>Appends and lock use alike; storage may be lost.</summary>
    Mixed,

    /// <summary>Mostly locks and semaphores, with drifting clocks and quiet spells; no lost storage.</summary>
    Locks,
}

/// <summary>Relative weights of the chaos phase's actions (zero disables one).</summary>
/// <param name="Membership">A configuration change on the leader (membership runs only).</param>
/// <param name="Retire">A node whose removal was applied stops for good (membership runs only).</param>
/// <param name="Join">A new node starts and asks to join (autopilot runs only).</param>
/// <param name="Stop">A node stops for good, removed or not (autopilot runs only).</param>
/// <param name="Pause">A node neither ticks nor receives for longer than the member timeout (autopilot runs only).</param>
/// <param name="Redeploy">An instance stops for good and a new one starts in its place (elastic runs only).</param>
/// <param name="LoseGeneration">The generation store loses its value (elastic runs only).</param>
/// <param name="Outage">Every instance stops; new ones start later (elastic runs only).</param>
internal sealed record ActionWeights(
    int Tick, int Batch, int Deliver, int Drop, int Duplicate, int Append, int Lock, int Quiet, int Transfer, int Partition, int Heal, int Crash, int Restart,
    int LoseStorage, int Membership = 0, int Retire = 0, int Join = 0, int Stop = 0, int Pause = 0, int Redeploy = 0, int LoseGeneration = 0, int Outage = 0)
{
    public int Total => Tick + Batch + Deliver + Drop + Duplicate + Append + Lock + Quiet + Transfer + Partition + Heal + Crash + Restart + LoseStorage + Membership + Retire
        + Join + Stop + Pause + Redeploy + LoseGeneration + Outage;

    public static ActionWeights Draw(Random random, Workload workload)
    {
        int Pick(params int[] choices) => choices[random.Next(choices.Length)];
        // The lock workload keeps crashes rarer than restarts (as the lock simulation always had), so that
        // no seed spends its whole run with too few nodes up to grant anything.
        int crash = workload == Workload.Mixed ? Pick(0, 4, 12) : Pick(0, 3, 8);
        int partition = Pick(0, 4, 12);
        int loseStorage = workload == Workload.Mixed ? Pick(0, 0, 2, 6) : 0;
        return new ActionWeights(
            // Many ticks per delivery means slow networks: more timeouts, competing candidates, term churn.
            Tick: Pick(150, 350, 700),
            // A loop pass that handles a tick, several messages and a client call at once, as a busy node's does.
            Batch: Pick(0, 60, 200),
            Deliver: 450,
            Drop: Pick(0, 15, 60),
            Duplicate: Pick(0, 10, 40),
            Append: workload == Workload.Mixed ? Pick(30, 90) : Pick(0, 10),
            Lock: workload == Workload.Mixed ? Pick(0, 20, 60) : Pick(40, 120),
            // Clients fall quiet for a while (and wake up again): the table's time stalls while leaders' clocks run.
            Quiet: Pick(0, 1, 3),
            Transfer: Pick(0, 3),
            Partition: partition,
            Heal: partition == 0 ? 0 : Pick(4, 12),
            Crash: crash,
            Restart: crash + loseStorage == 0 ? 0 : Pick(8, 20),
            LoseStorage: loseStorage);
    }
}
