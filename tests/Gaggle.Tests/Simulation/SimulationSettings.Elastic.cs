using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>What an elastic run adds to its settings.</summary>
/// <param name="MemberTimeoutUs">GaggleOptions.MemberTimeout: the autopilot's, and the founding wait of any generation after the first.</param>
/// <param name="StoreDelayMaxUs">The longest a generation store operation takes to reach the store, and its result the node.</param>
/// <param name="StoreFailurePercent">The chance that a store operation fails (as when the store is unreachable).</param>
/// <param name="Cuts">The ways a partition cuts nodes from the hub.</param>
internal sealed record ElasticSimSettings(long MemberTimeoutUs, long StoreDelayMaxUs, int StoreFailurePercent, IReadOnlyList<HubCut> Cuts)
{
    /// <summary>Nodes hear their own broadcasts come back, as on Redis (see Channels.IEchoingChannel); a node cut from the hub's deliveries does not.</summary>
    public bool Echoes { get; init; } = true;

    public override string ToString()
        => $"member timeout {MemberTimeoutUs} us, store delay up to {StoreDelayMaxUs} us, store failures {StoreFailurePercent}%, cuts {string.Join("/", Cuts)}";
}

internal sealed partial record SimulationSettings
{
    /// <summary>Elastic runs: the store, the member timeout and the hub's cuts (null otherwise).</summary>
    public ElasticSimSettings? Elastic { get; init; }

    /// <summary>
    /// The settings of an elastic run (drawn after <see cref="ForMembership"/>, so the other runs draw as
    /// before): no changes requested on the leader and no restart with the same identity (an elastic
    /// instance keeps its state in memory: one that dies is gone, and a new one has a new id); instances
    /// start, stop, are redeployed, die, pause past the member timeout, and all go at once now and then;
    /// the generation store is slow, fails now and then and may lose its value. The node settings come
    /// from GaggleOptions through <see cref="NodeDriverSettings.From"/>, as GaggleNode makes them (the
    /// autopilot with its default target of 3 voters among them).
    /// </summary>
    public SimulationSettings ForElastic(Random random)
    {
        int Pick(params int[] choices) => choices[random.Next(choices.Length)];
        long electionUs = ElectionTicksMax * TickMs * 1000L;
        long memberTimeoutUs = random.Next(4, 9) * electionUs;
        var elastic = new ElasticSimSettings(
            memberTimeoutUs,
            Pick(1, 2, 3) switch { 1 => TickMs * 500L, 2 => ElectionTicksMin * TickMs * 1000L, _ => 3 * electionUs },
            Pick(0, 5, 25),
            Pick(0, 1, 2) switch { 0 => [HubCut.Isolated], 1 => [HubCut.Isolated, HubCut.Mute], _ => [HubCut.Isolated, HubCut.Mute, HubCut.Deaf] });
        var settings = this with
        {
            Elastic = elastic,
            Weights = Weights with
            {
                Membership = 0,
                Restart = 0,
                LoseStorage = 0,
                // The lock history across generations is the point: every elastic run uses locks.
                Lock = Math.Max(Weights.Lock, Pick(20, 60)),
                Join = Pick(4, 12),
                Stop = Pick(1, 3),
                Pause = Pick(1, 3),
                Redeploy = Pick(0, 2, 6),
                LoseGeneration = Pick(0, 1, 3),
                Outage = Pick(0, 1),
            },
        };
        return settings with { Autopilot = settings.CreateElasticDriverSettings("probe.0", 0, 0, new HistoryMachine("probe", new AppendChecker(), () => 0)).Autopilot };
    }

    /// <summary>The driver settings of elastic instance <paramref name="id"/>: GaggleOptions without Members or ClusterSize, made into driver settings as GaggleNode does.</summary>
    public NodeDriverSettings CreateElasticDriverSettings(string id, int randomSeed, ulong incarnation, IGaggleStateMachine history)
    {
        var options = new GaggleOptions
        {
            NodeId = id,
            HeartbeatInterval = TimeSpan.FromMilliseconds(HeartbeatTicks * TickMs),
            ElectionTimeoutMin = TimeSpan.FromMilliseconds(ElectionTicksMin * TickMs),
            ElectionTimeoutMax = TimeSpan.FromMilliseconds(ElectionTicksMax * TickMs),
            PreVote = PreVote,
            CheckQuorum = CheckQuorum,
            AccelerateHeartbeats = AccelerateCommit,
            MaxInflightMessages = MaxInflightMessages,
            MaxInflightBytes = (int)MaxInflightBytes,
            MaxEntriesPerMessage = MaxEntriesPerMessage,
            MaxMessageBytes = MaxBytesPerMessage,
            SnapshotThresholdEntries = SnapshotThreshold,
            SnapshotRetainEntries = SnapshotRetain,
            LockLeaseDuration = TimeSpan.FromMilliseconds(LeaseMs),
            MemberTimeout = TimeSpan.FromMicroseconds(Elastic!.MemberTimeoutUs),
            RandomSeed = randomSeed,
        };
        options.StateMachines[HistoryMachine.Name] = history;
        return NodeDriverSettings.From(options, incarnation, TimeSpan.FromMilliseconds(TickMs), Elastic.Echoes);
    }
}
