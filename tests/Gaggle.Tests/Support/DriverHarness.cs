using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using NUnit.Framework;

namespace Gaggle.Tests.Support;

/// <summary>
/// Node drivers on their own, driven by ticks and inputs as a node's loop drives them, with time
/// passed in. Readies are "persisted" by dropping them (nothing reads storage back); a snapshot a
/// driver asks to save is taken at once.
/// </summary>
internal sealed class DriverHarness
{
    public const long TickUs = 10_000;

    /// <summary>The drivers' clock, in microseconds.</summary>
    public long NowUs { get; set; } = 1_000_000;

    public SequenceCounter Sequences { get; } = new();

    /// <summary>Fast settings: a heartbeat every tick, elections after 5 to 10 ticks, a seeded jitter.</summary>
    public static NodeDriverSettings Settings(string id, string[] members, ulong incarnation = 1) => new()
    {
        Raft = new RaftConfig { Id = id, Members = members, HeartbeatTicks = 1, ElectionTicksMin = 5, ElectionTicksMax = 10, Random = new Random(7) },
        Incarnation = incarnation,
        RetryTicks = 5,
        LeadershipLeaseUs = 45_000,
    };

    /// <summary>A driver of <paramref name="id"/> alone, ticked until it leads, its events cleared.</summary>
    public NodeDriver StartLeader(string id)
    {
        var driver = new NodeDriver(Settings(id, [id]), new PersistedState(HardState.Empty, []), Sequences);
        for (int i = 0; i < 100 && driver.Core.Role != RaftRole.Leader; i++)
        {
            Tick(driver, 1);
        }

        Assert.That(driver.Core.Role, Is.EqualTo(RaftRole.Leader));
        Pump(driver);
        driver.Events.Clear();
        return driver;
    }

    public void Tick(NodeDriver driver, int ticks)
    {
        for (int i = 0; i < ticks; i++)
        {
            NowUs += TickUs;
            driver.Tick(NowUs);
            Pump(driver);
        }
    }

    /// <summary>Takes and advances readies until the driver has none.</summary>
    public void Pump(NodeDriver driver)
    {
        while (driver.TakeReady(NowUs) is not null)
        {
            driver.Advance();
            if (driver.Events.SnapshotToSave is { } snapshot)
            {
                driver.Events.SnapshotToSave = null;
                driver.CompactTo(snapshot);
            }
        }
    }
}
