using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>When a joining node asks whoever leads to add it.</summary>
[TestFixture]
public sealed class JoinAnnounceTests
{
    private const int RetryTicks = 5;

    /// <summary>
    /// Found by the simulation (autopilot seed 186): a deposed leader had logged n4's addition and sent
    /// it to n4 only; the next leader's configuration lacks n4 and never replicates to it, so n4, which
    /// saw itself a member, waited for good. Its addition counts once committed.
    /// </summary>
    [TestCase(0, ExpectedResult = true, Description = "its addition is in its log, not committed: it still asks")]
    [TestCase(1, ExpectedResult = false, Description = "its addition is committed: it is a member")]
    public bool A_joining_node_announces_itself_until_its_addition_commits(long commit)
    {
        var added = new ClusterConfig(["n1", "n2", "n3"], ["n4"]);
        var driver = new NodeDriver(
            new NodeDriverSettings
            {
                Raft = new RaftConfig { Id = "n4", Members = ["n1", "n2", "n3"], Joining = true, HeartbeatTicks = 1, ElectionTicksMin = 5, ElectionTicksMax = 10, Random = new Random(7) },
                Incarnation = 1,
                RetryTicks = RetryTicks,
                LeadershipLeaseUs = 40_000,
                Fingerprint = 42,
            },
            new PersistedState(new HardState(1, null, commit), [new LogEntry(1, 1, EntryKind.Configuration, added.Encode())]),
            new SequenceCounter());
        Assert.That(driver.Core.Configuration.IsLearner("n4"), Is.True);

        bool announced = false;
        for (int tick = 1; tick <= 2 * RetryTicks; tick++)
        {
            driver.Tick(tick * 10_000L);
            while (driver.TakeReady(tick * 10_000L) is { } ready)
            {
                announced |= ready.Messages.Any(m => m.Message is JoinAnnounce { Fingerprint: 42 });
                driver.Advance();
            }
        }

        return announced;
    }
}
