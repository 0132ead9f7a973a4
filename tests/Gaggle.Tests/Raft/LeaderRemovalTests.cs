using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// Removing the leader (Raft thesis §4.2.2), removed servers that do not know it (§4.2.3), and
/// handing leadership to a chosen voter (§3.10) in a cluster whose membership changes.
/// </summary>
[TestFixture]
public sealed class LeaderRemovalTests
{
    private static int CampaignMessagesFrom(RaftTestCluster cluster, string id, int sentFrom = 0)
        => cluster.Sent.Skip(sentFrom).Count(m => m.From == id && m.Type is MessageType.Vote or MessageType.PreVote);

    // §4.2.2: a leader removing itself "manages a cluster that does not include itself": it replicates
    // the entry but does not count itself. In {a, b, c} leader a removes itself, so {b, c} must both
    // hold the entry: with c cut off, a and b (2 of the old 3) do not commit it. Once it commits, a
    // hands leadership to an up-to-date voter with TimeoutNow and steps down, and never campaigns again.
    [Test]
    public void A_removed_leader_does_not_count_itself_then_hands_over_and_never_campaigns()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        long term = cluster.Term("a");
        cluster.Isolate("c");

        Assert.That(cluster.ProposeChange("a", ConfigChangeType.Remove, "a", out long removeIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["b"].LastIndex, Is.EqualTo(removeIndex), "b holds the removal");
            Assert.That(cluster["a"].CommitIndex, Is.LessThan(removeIndex), "a does not count itself, and b alone is not a majority of b, c");
            Assert.That(cluster.Role("a"), Is.EqualTo(RaftRole.Leader), "it leads until the removal commits");
            Assert.That(cluster["a"].IsVoter, Is.False);
            Assert.That(cluster.CountSent(m => m.Type == MessageType.TimeoutNow), Is.Zero);
        }

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster.Leaders() is [not "a"], maxTicks: 5 * cluster.Options.HeartbeatTicks);
        string successor = cluster.Leaders()[0];
        var timeoutNow = cluster.Sent.Where(m => m.Type == MessageType.TimeoutNow).ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].CommitIndex, Is.GreaterThanOrEqualTo(removeIndex), "a saw its removal commit before handing over");
            Assert.That(timeoutNow, Has.Count.EqualTo(1));
            Assert.That(timeoutNow[0].From, Is.EqualTo("a"));
            Assert.That(timeoutNow[0].To, Is.EqualTo(successor));
            Assert.That(cluster.Term(successor), Is.EqualTo(term + 1), "elected at once, without pre-vote or timeout");
            Assert.That(cluster.Role("a"), Is.EqualTo(RaftRole.Follower));
            Assert.That(cluster[successor].Configuration, Is.EqualTo(new ClusterConfig(["b", "c"], [])));
        }

        int sentBefore = cluster.Sent.Count;
        long index = cluster.Propose(successor, "after");
        cluster.Advance(10 * cluster.Options.ElectionTicksMax);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { successor }));
            Assert.That(cluster.Role("a"), Is.EqualTo(RaftRole.Follower));
            Assert.That(CampaignMessagesFrom(cluster, "a", sentBefore), Is.Zero);
            Assert.That(cluster["b"].CommitIndex, Is.GreaterThanOrEqualTo(index));
            Assert.That(cluster["c"].CommitIndex, Is.GreaterThanOrEqualTo(index));
        }
    }

    /// <summary>{a, b, c, d} led by a, which removed d while d was cut off: d never learned of it.</summary>
    private static RaftTestCluster ClusterThatRemovedDBehindItsBack(ClusterOptions? options = null)
    {
        var cluster = new RaftTestCluster(4, options);
        cluster.Elect("a");
        cluster.Isolate("d");
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.Remove, "d", out long removeIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        Assert.That(cluster["a"].CommitIndex, Is.EqualTo(removeIndex));
        cluster.Heal();
        Assert.That(cluster["d"].IsVoter, Is.True, "d still believes it votes");
        return cluster;
    }

    // §4.2.3: a removed server that does not know it times out and campaigns. Without pre-vote its
    // RequestVotes carry ever higher terms, but every member that heard from the leader within the
    // minimum election timeout ignores them, so no term moves and the leader stays.
    [Test]
    public void A_removed_nodes_vote_requests_are_ignored_while_the_members_hear_from_their_leader()
    {
        var cluster = ClusterThatRemovedDBehindItsBack(new ClusterOptions { PreVote = false });
        long term = cluster.Term("a");
        cluster.Advance(10 * cluster.Options.ElectionTicksMax);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.CountSent(m => m.From == "d" && m.Type == MessageType.Vote), Is.Positive, "d campaigned");
            Assert.That(cluster.Term("d"), Is.GreaterThan(term));
            Assert.That(cluster.CountSent(m => m.To == "d" && m.Type == MessageType.VoteResponse), Is.Zero, "ignored, not even refused");
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(new[] { "a", "b", "c" }.Select(cluster.Term), Is.All.EqualTo(term));
        }

        // The lease, not the log check, is what stops it: a request with a log ahead of everyone's is ignored too.
        var replies = cluster.Send(Msg.Vote("d", "b", cluster.Term("d") + 1, cluster["b"].LastIndex + 100, term));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(replies, Is.Empty);
            Assert.That(cluster.Term("b"), Is.EqualTo(term));
        }
    }

    // §4.2.3 with pre-vote (§9.6): the removed node's pre-votes are ignored (lease) or refused (its log
    // lacks its removal), so it never even moves its own term; the cluster's term never moves.
    [Test]
    public void Pre_vote_keeps_a_removed_node_from_moving_any_term()
    {
        var cluster = ClusterThatRemovedDBehindItsBack();
        long term = cluster.Term("a");
        long index = cluster.Propose("a", "v");
        cluster.Advance(10 * cluster.Options.ElectionTicksMax);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.CountSent(m => m.From == "d" && m.Type == MessageType.PreVote), Is.Positive, "d tried");
            Assert.That(cluster.CountSent(m => m.From == "d" && m.Type == MessageType.Vote), Is.Zero);
            Assert.That(cluster.Ids.Select(cluster.Term), Is.All.EqualTo(term));
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(cluster["c"].CommitIndex, Is.GreaterThanOrEqualTo(index));
        }
    }

    // §3.10 with learners: leadership goes only to a voter of the leader's configuration.
    [Test]
    public void Leadership_is_transferred_to_a_chosen_voter_never_to_a_learner_or_a_stranger()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "d", out _), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].TransferLeadership("d"), Is.False, "d is a learner");
            Assert.That(cluster["a"].TransferLeadership("zz"), Is.False, "zz is not a member");
            Assert.That(cluster["a"].IsTransferringLeadership, Is.False);
            Assert.That(cluster.CountSent(m => m.Type == MessageType.TimeoutNow), Is.Zero);
        }

        Assert.That(cluster["a"].TransferLeadership("c"), Is.True);
        cluster.Stabilize();
        cluster.Advance(cluster.Options.HeartbeatTicks);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "c" }));
            Assert.That(cluster["d"].LeaderId, Is.EqualTo("c"), "the learner follows the new leader");
            Assert.That(cluster["c"].Configuration, Is.EqualTo(new ClusterConfig(["a", "b", "c"], ["d"])));
        }
    }

    // §3.10 and the leadership lease (§6.4): once TimeoutNow is out, the target may be elected without
    // waiting out anyone's lease, so the old leader's lease is over for the rest of its term even while
    // the followers keep answering its heartbeats; a transfer that produces no new leader within an
    // election timeout makes it step down rather than lead on without a lease.
    [Test]
    public void After_TimeoutNow_the_lease_is_over_for_the_term_and_a_failed_transfer_steps_the_leader_down()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        long term = cluster.Term("a");
        cluster.Advance(2 * cluster.Options.HeartbeatTicks);
        Assert.That(cluster["a"].QuorumAckedHeartbeatRound, Is.Positive, "a holds a lease before the transfer");

        // c gets TimeoutNow and campaigns, but nothing it says arrives anywhere.
        using var fromC = cluster.Drop(m => m.From == "c");
        Assert.That(cluster["a"].TransferLeadership("c"), Is.True);
        cluster.Stabilize();
        Assert.That(cluster.CountSent(m => m.Type == MessageType.TimeoutNow && m.To == "c"), Is.EqualTo(1));
        Assert.That(cluster.Role("c"), Is.EqualTo(RaftRole.Candidate));

        int ticks = 0;
        long acked = cluster["a"].HeartbeatRound;
        while (cluster.Role("a") == RaftRole.Leader)
        {
            Assert.That(cluster["a"].QuorumAckedHeartbeatRound, Is.Zero, $"tick {ticks}: the lease came back");
            cluster.Advance(1);
            ticks++;
            Assert.That(ticks, Is.LessThanOrEqualTo(cluster.Options.ElectionTicksMin), "a leads on past the election timeout");
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(ticks, Is.EqualTo(cluster.Options.ElectionTicksMin));
            Assert.That(cluster["a"].HeartbeatRound, Is.GreaterThan(acked), "a kept heartbeating while it led");
            Assert.That(cluster.Term("a"), Is.EqualTo(term), "it stepped down on its own, not because of a higher term");
            Assert.That(cluster.Term("b"), Is.EqualTo(term));
            Assert.That(cluster.Leaders(), Is.Empty);
        }

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster.Leaders().Count == 1);
    }
}
