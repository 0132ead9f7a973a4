using Gaggle.Raft;

namespace Gaggle.Tests.LockSimulation;

/// <summary>
/// Everything a seed decides before a lock simulation starts: Raft timing, lease length, clock drift,
/// how busy the clients are and how hostile the schedule is. Drawn from the seed, so some seeds are
/// calm and others lossy, partitioned or crash-prone.
/// </summary>
internal sealed class LockSimSettings
{
    /// <summary>Milliseconds of a node's own clock per Raft tick (GaggleNode: HeartbeatInterval / 5).</summary>
    public const int TickMs = 10;

    /// <summary>The largest clock-rate error of a node, in parts per million (the handle's 10% margin covers about 5%).</summary>
    public const int MaxDriftPpm = 40_000;

    public required int HeartbeatTicks { get; init; }

    public required int ElectionTicksMin { get; init; }

    public required int ElectionTicksMax { get; init; }

    public required bool PreVote { get; init; }

    public required bool CheckQuorum { get; init; }

    public required int MaxInflightMessages { get; init; }

    public required int MaxEntriesPerMessage { get; init; }

    /// <summary>LockLeaseDuration, in milliseconds.</summary>
    public required long LeaseMs { get; init; }

    public required int ClientsPerNode { get; init; }

    /// <summary>The semaphore's slot count.</summary>
    public required int SemaphoreSlots { get; init; }

    public required LockSimWeights Weights { get; init; }

    /// <summary>Ticks between retries of stalled appends (GaggleNode: ElectionTimeoutMin in ticks).</summary>
    public int RetryTicks => ElectionTicksMin;

    public static LockSimSettings Draw(Random random)
    {
        int heartbeat = random.Next(1, 4);
        int electionMin = random.Next(8, 21);
        return new LockSimSettings
        {
            HeartbeatTicks = heartbeat,
            ElectionTicksMin = electionMin,
            ElectionTicksMax = electionMin + random.Next(5, 16),
            PreVote = random.Next(4) != 0,
            CheckQuorum = random.Next(4) != 0,
            MaxInflightMessages = random.Next(1, 9),
            MaxEntriesPerMessage = random.Next(1, 9),
            // From shorter than an election (holds lost while leaderless) to many elections long.
            LeaseMs = TickMs * new[] { 12, 25, 50, 100 }[random.Next(4)],
            ClientsPerNode = random.Next(1, 4),
            SemaphoreSlots = random.Next(2, 4),
            Weights = LockSimWeights.Draw(random),
        };
    }

    public RaftConfig CreateConfig(string id, IReadOnlyList<string> ids, Random random) => new()
    {
        Id = id,
        Members = ids,
        HeartbeatTicks = HeartbeatTicks,
        ElectionTicksMin = ElectionTicksMin,
        ElectionTicksMax = ElectionTicksMax,
        PreVote = PreVote,
        CheckQuorum = CheckQuorum,
        MaxInflightMessages = MaxInflightMessages,
        MaxEntriesPerMessage = MaxEntriesPerMessage,
        Random = random,
    };

    public override string ToString()
        => $"heartbeat={HeartbeatTicks} election={ElectionTicksMin}..{ElectionTicksMax} ticks of {TickMs} ms preVote={PreVote} checkQuorum={CheckQuorum} "
            + $"inflight={MaxInflightMessages} entries/msg={MaxEntriesPerMessage} lease={LeaseMs} ms clients/node={ClientsPerNode} "
            + $"semaphore={SemaphoreSlots} weights=[{Weights}]";
}

/// <summary>Relative weights of the chaos phase's actions (zero disables one).</summary>
internal sealed record LockSimWeights(int Tick, int Batch, int Deliver, int Drop, int Duplicate, int Client, int Quiet, int Transfer, int Partition, int Heal, int Crash, int Restart)
{
    public int Total => Tick + Batch + Deliver + Drop + Duplicate + Client + Quiet + Transfer + Partition + Heal + Crash + Restart;

    public static LockSimWeights Draw(Random random)
    {
        int Pick(params int[] choices) => choices[random.Next(choices.Length)];
        int crash = Pick(0, 3, 8);
        int partition = Pick(0, 3, 8);
        return new LockSimWeights(
            Tick: Pick(200, 400, 700),
            // A loop pass that handles a tick, several messages and a client call at once, as a busy node's does.
            Batch: Pick(0, 60, 200),
            Deliver: 450,
            Drop: Pick(0, 10, 40),
            Duplicate: Pick(0, 10, 30),
            Client: Pick(40, 120),
            // Clients fall quiet for a while (and wake up again): the table's time stalls while leaders' clocks run.
            Quiet: Pick(0, 1, 3),
            Transfer: Pick(0, 2),
            Partition: partition,
            Heal: partition == 0 ? 0 : Pick(4, 12),
            Crash: crash,
            Restart: crash == 0 ? 0 : Pick(8, 20));
    }
}

/// <summary>
/// A node's monotonic clock (microseconds): it started long before the simulation (a machine's uptime,
/// which a restarted process keeps) and runs at its own rate, within <see cref="LockSimSettings.MaxDriftPpm"/>
/// of real time. Simulated real time is the simulator's global clock.
/// </summary>
internal readonly record struct NodeClock(long OffsetUs, int DriftPpm)
{
    public static NodeClock Draw(Random random)
        => new(random.NextInt64(1_000_000_000, 100_000_000_000), random.Next(-LockSimSettings.MaxDriftPpm, LockSimSettings.MaxDriftPpm + 1));

    /// <summary>The local reading at real time <paramref name="realUs"/>; non-decreasing in it.</summary>
    public long Local(long realUs) => OffsetUs + realUs + (realUs * DriftPpm / 1_000_000);

    /// <summary>The first real time at which the local clock reads at least <paramref name="localUs"/>.</summary>
    public long RealAt(long localUs)
    {
        long real = Math.Max(0, (long)((localUs - OffsetUs) * 1_000_000.0 / (1_000_000 + DriftPpm)));
        while (real > 0 && Local(real - 1) >= localUs)
        {
            real--;
        }

        while (Local(real) < localUs)
        {
            real++;
        }

        return real;
    }

    /// <summary>Real microseconds for <paramref name="localUs"/> of this clock.</summary>
    public long RealSpan(long localUs) => Math.Max(1, localUs * 1_000_000 / (1_000_000 + DriftPpm));
}
