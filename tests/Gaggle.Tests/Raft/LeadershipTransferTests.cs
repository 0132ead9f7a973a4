using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Leadership transfer (thesis §3.10): the leader brings the target up to date, then tells it to campaign at once.</summary>
[TestFixture]
public sealed class LeadershipTransferTests
{
    [Test]
    public void TransferLeadership_makes_an_up_to_date_target_leader_without_waiting_for_a_timeout()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.Propose("a", "v1");
        cluster.Stabilize();

        bool started = cluster["a"].TransferLeadership("c");
        cluster.Stabilize(); // no tick passes

        using (Assert.EnterMultipleScope())
        {
            Assert.That(started, Is.True);
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "c" }));
            Assert.That(cluster.Ids.Select(cluster.Term), Is.All.EqualTo(2));
            Assert.That(cluster.Ids.Select(id => cluster[id].LeaderId), Is.All.EqualTo("c"));
            Assert.That(cluster.CountSent(m => m.Type == MessageType.TimeoutNow), Is.EqualTo(1));
        }

        cluster.Propose("c", "v2");
        cluster.Stabilize();
        Assert.That(cluster.AppliedData("a"), Is.EqualTo(new[] { "v1", "v2" }));
    }

    // The target is first caught up; proposals are refused meanwhile so that the log stops moving.
    [Test]
    public void A_lagging_target_is_caught_up_before_it_is_told_to_campaign()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        using (cluster.Drop(m => m.IsAppendTo("c")))
        {
            cluster.ProposeMany("a", 5);
            cluster.Stabilize();
        }

        Assert.That(cluster["a"].TransferLeadership("c"), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Propose("a", "during"), Is.EqualTo(-1), "no proposals while handing over");
            Assert.That(cluster.InFlight.Where(m => m.Type == MessageType.TimeoutNow), Is.Empty, "c is not up to date yet");
        }

        cluster.Advance(2 * cluster.Options.HeartbeatTicks);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "c" }));
            Assert.That(cluster.AppliedData("c"), Has.Count.EqualTo(5));
        }
    }

    [Test]
    public void TransferLeadership_is_refused_by_a_follower_and_for_self_or_an_unknown_node()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["b"].TransferLeadership("c"), Is.False, "b does not lead");
            Assert.That(cluster["a"].TransferLeadership("a"), Is.False, "already the leader");
            Assert.That(cluster["a"].TransferLeadership("zz"), Is.False, "not a member");
            Assert.That(cluster.Propose("a", "v"), Is.EqualTo(2), "nothing started");
        }
    }

    // A transfer to a node that never answers is abandoned after an election timeout; the leader carries on.
    [Test]
    public void A_transfer_to_an_unreachable_target_is_abandoned_after_an_election_timeout()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.Stop("c");
        cluster.Propose("a", "v");
        cluster.Stabilize();

        Assert.That(cluster["a"].TransferLeadership("c"), Is.True);
        cluster.Advance(cluster.Options.ElectionTicksMin);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(cluster.Propose("a", "again"), Is.GreaterThan(0), "proposals are accepted again");
        }
    }
}
