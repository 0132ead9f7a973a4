using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// Discovery mode (Members null, ClusterSize set): member ids are learned from traffic until the
/// cluster is full; later ids are refused. Quorums are still majorities of ClusterSize.
/// </summary>
[TestFixture]
public sealed class DiscoveryTests
{
    private static readonly ClusterOptions Discovery = new() { Discovery = true };

    [Test]
    public void A_discovered_cluster_elects_a_leader_and_commits()
    {
        var cluster = new RaftTestCluster(3, Discovery);

        cluster.StartCampaign("a");
        Assert.That(cluster.InFlight.Select(m => m.To), Is.All.Null, "a knows nobody yet: it broadcasts");
        cluster.Stabilize();
        cluster.Propose("a", "hello");
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(cluster["a"].Members.Peers, Is.EquivalentTo(new[] { "b", "c" }));
            foreach (var id in cluster.Ids)
            {
                Assert.That(cluster.AppliedData(id), Is.EqualTo(new[] { "hello" }), id);
            }
        }
    }

    // The cluster size bounds the membership: once a node knows three ids, a fourth is refused and counted.
    [Test]
    public void A_fourth_unknown_node_is_refused_once_the_cluster_is_full()
    {
        var cluster = new RaftTestCluster(3, Discovery);
        foreach (var id in cluster.Ids)
        {
            cluster.StartCampaign(id); // every node broadcasts once, so every node hears every other
        }

        cluster.Stabilize();
        cluster.AdvanceUntil(() => cluster.Leaders().Count == 1);
        string leader = cluster.Leaders()[0];
        Assert.That(cluster.Ids.Select(id => cluster[id].Members.Complete), Is.All.True);

        using (Assert.EnterMultipleScope())
        {
            foreach (var id in cluster.Ids)
            {
                long dropped = cluster[id].DroppedMessages;
                var voteReplies = cluster.Send(Msg.Vote("d", id, term: 9, lastIndex: 99, lastTerm: 9));
                var heartbeatReplies = cluster.Send(Msg.Heartbeat("d", id, term: 9, commit: 0));

                Assert.That(voteReplies.Concat(heartbeatReplies), Is.Empty, id);
                Assert.That(cluster[id].DroppedMessages, Is.EqualTo(dropped + 2), id);
                Assert.That(cluster[id].Members.Peers, Does.Not.Contain("d"), id);
                Assert.That(cluster.Term(id), Is.LessThan(9), $"{id}: d's term did not leak in");
            }

            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { leader }));
        }
    }

    // A majority of ClusterSize suffices to elect; the member heard from later is learned by the leader
    // and caught up without waiting for a new proposal.
    [Test]
    public void A_member_first_heard_after_the_election_is_learned_and_caught_up()
    {
        var cluster = new RaftTestCluster(3, Discovery);
        cluster.Isolate("c");
        cluster.Elect("a");
        cluster.Propose("a", "before c");
        cluster.Stabilize();
        Assert.That(cluster["a"].Members.Peers, Is.EqualTo(new[] { "b" }));

        cluster.Heal();
        cluster.Advance(cluster.Options.ElectionTicksMax);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(cluster["a"].Members.Peers, Is.EquivalentTo(new[] { "b", "c" }));
            Assert.That(cluster.AppliedData("c"), Is.EqualTo(new[] { "before c" }));
        }
    }
}
