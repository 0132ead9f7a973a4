using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// An elastic learner that hears no voter for the member timeout starts over (every voter is gone, or
/// it was removed and is never told so: a learner does not campaign). Silence counts only while it
/// listens, and a leader's announcement alone is no voter replicating to it. Learner "x" of voter "y"
/// (ticks of 10 ms, election timeout 100..150 ms, member timeout 1 s).
/// </summary>
[TestFixture]
public sealed class OrphanedLearnerTests
{
    private const long TickUs = 10_000;
    private const long MemberTimeoutUs = 1_000_000;

    private static NodeDriver Learner()
    {
        LogEntry[] log =
        [
            new(1, 2, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty),
            new(2, 2, EntryKind.Configuration, new ClusterConfig(["y"], ["x"]).Encode()),
        ];
        var driver = NotAMemberTests.Member(new HardState(2, null, 2), log);
        Assert.That(driver.Core.Configuration.IsLearner("x"), Is.True);
        return driver;
    }

    /// <summary>Ticks from <paramref name="fromUs"/> to <paramref name="toUs"/>, delivering <paramref name="each"/> after each tick; the time the node said it was orphaned, or null.</summary>
    private static long? Run(NodeDriver driver, long fromUs, long toUs, Action? each = null)
    {
        for (long now = fromUs; now <= toUs; now += TickUs)
        {
            driver.Tick(now);
            each?.Invoke();
            bool orphaned = driver.Events.Orphaned;
            driver.Events.Clear();
            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }

            if (orphaned)
            {
                return now;
            }
        }

        return null;
    }

    private static void Heartbeat(NodeDriver driver)
        => driver.Receive("y", new RaftWireMessage(new RaftMessage { Type = MessageType.Heartbeat, From = "y", To = "x", Term = 2, LogTerm = 2, Index = 2, Commit = 2 }), generation: 1);

    /// <summary>Found by the simulation (unheard seed 2852): a learner promoted while it was paused dropped its copy the moment it resumed.</summary>
    [Test]
    public void A_learner_resuming_from_a_pause_longer_than_the_member_timeout_waits_a_member_timeout_of_listening()
    {
        var driver = Learner();
        Assert.That(Run(driver, TickUs, 100_000, () => Heartbeat(driver)), Is.Null);
        long resumedAt = 100_000 + (2 * MemberTimeoutUs);
        Assert.That(Run(driver, resumedAt, resumedAt + MemberTimeoutUs - TickUs), Is.Null, "paused for two member timeouts: silence counts from the first tick after it");
        Assert.That(Run(driver, resumedAt + MemberTimeoutUs, resumedAt + MemberTimeoutUs + TickUs), Is.Not.Null, "then a member timeout of silence: every voter is gone");
    }

    [Test]
    public void A_leaders_announcements_alone_do_not_keep_a_learner_it_no_longer_replicates_to()
    {
        var driver = Learner();
        Assert.That(Run(driver, TickUs, 100_000, () => Heartbeat(driver)), Is.Null);
        long? orphanedAt = Run(driver, 110_000, 100_000 + (2 * MemberTimeoutUs), () => driver.Receive("y", new VoterAnnounce(2, Leads: true), generation: 1));
        Assert.That(orphanedAt, Is.EqualTo(100_000 + MemberTimeoutUs).Within(TickUs), "removed and never told: it starts over a member timeout after the last replication");

        var kept = Learner();
        Assert.That(Run(kept, TickUs, 3 * MemberTimeoutUs, () => Heartbeat(kept)), Is.Null, "replicated to: it stays");
        var leaderless = Learner();
        Assert.That(Run(leaderless, TickUs, 3 * MemberTimeoutUs, () => leaderless.Receive("y", new VoterAnnounce(2, Leads: false), generation: 1)), Is.Null, "a leaderless voter announcing itself lives: it stays");
    }
}
