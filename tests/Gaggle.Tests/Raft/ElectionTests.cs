using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Leader election (Raft §5.2, §5.4.1) as scripts of a cluster's life.</summary>
[TestFixture]
public sealed class ElectionTests
{
    private static readonly ClusterOptions NoPreVote = new() { PreVote = false };

    // Raft §5.2: a follower that hears nothing for an election timeout campaigns; a majority of votes
    // makes it leader. Raft §8: the new leader's first entry of its term is a no-op.
    [Test]
    public void A_node_that_times_out_is_elected_by_a_majority_and_opens_its_term_with_a_noop()
    {
        var cluster = new RaftTestCluster(3);

        cluster.StartCampaign("a");
        Assert.That(cluster.Role("a"), Is.EqualTo(RaftRole.PreCandidate), "pre-vote comes first (thesis §9.6)");
        Assert.That(cluster.Term("a"), Is.Zero, "a pre-candidate does not bump its term");

        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(cluster.Term("a"), Is.EqualTo(1));
            Assert.That(cluster.Log("a"), Has.Count.EqualTo(1));
            Assert.That(cluster.Log("a")[0], Is.EqualTo(new LogEntry(1, 1, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty)));
            foreach (var id in cluster.Ids)
            {
                Assert.That(cluster[id].LeaderId, Is.EqualTo("a"), id);
                Assert.That(cluster[id].Term, Is.EqualTo(1), id);
                Assert.That(cluster.LogTerms(id), Is.EqualTo(new long[] { 1 }), id);
                Assert.That(cluster[id].CommitIndex, Is.EqualTo(1), id);
            }
        }
    }

    // Raft §5.2: without pre-vote, a timed-out follower increments its term, votes for itself and asks the others.
    [Test]
    public void Without_pre_vote_a_timed_out_follower_becomes_candidate_of_the_next_term_and_votes_for_itself()
    {
        var cluster = new RaftTestCluster(3, NoPreVote);

        cluster.StartCampaign("a");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Role("a"), Is.EqualTo(RaftRole.Candidate));
            Assert.That(cluster.Term("a"), Is.EqualTo(1));
            Assert.That(cluster["a"].VotedFor, Is.EqualTo("a"));
            Assert.That(cluster.Persisted("a").HardState, Is.EqualTo(new HardState(1, "a", 0)), "the vote is persisted before it is asked for");
            Assert.That(cluster.InFlight.Select(m => (m.Type, m.To, m.Term)),
                Is.EquivalentTo(new (MessageType, string?, long)[] { (MessageType.Vote, "b", 1), (MessageType.Vote, "c", 1) }));
        }

        cluster.Stabilize();
        Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
    }

    // Raft §5.2 Election Safety: with every node on its own randomized clock, exactly one leader emerges
    // and stays (the harness also checks that no term ever has two leaders).
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void Randomized_timeouts_elect_exactly_one_leader(int seed)
    {
        var cluster = new RaftTestCluster(5, new ClusterOptions { Seed = seed });

        cluster.AdvanceUntil(() => cluster.Leaders().Count > 0, maxTicks: 200);
        var leader = cluster.Leaders().Single();
        long term = cluster.Term(leader);
        cluster.Advance(200);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { leader }), "a healthy leader keeps its place");
            Assert.That(cluster.Ids.Select(cluster.Term), Is.All.EqualTo(term), "no term churn in a healthy cluster");
            Assert.That(cluster.Ids.Select(id => cluster[id].LeaderId), Is.All.EqualTo(leader));
        }
    }

    // Raft §5.2: each server votes for at most one candidate in a term, first come first served.
    [Test]
    public void A_node_votes_for_one_candidate_per_term()
    {
        var cluster = new RaftTestCluster(3, NoPreVote);

        var toB = cluster.Send(Msg.Vote("b", "a", term: 1, lastIndex: 0, lastTerm: 0)).Single();
        var toC = cluster.Send(Msg.Vote("c", "a", term: 1, lastIndex: 0, lastTerm: 0)).Single();
        var toBAgain = cluster.Send(Msg.Vote("b", "a", term: 1, lastIndex: 0, lastTerm: 0)).Single();

        using (Assert.EnterMultipleScope())
        {
            Assert.That((toB.Type, toB.To, toB.Reject), Is.EqualTo((MessageType.VoteResponse, "b", false)));
            Assert.That((toC.Type, toC.To, toC.Reject), Is.EqualTo((MessageType.VoteResponse, "c", true)), "second candidate of the term");
            Assert.That(toBAgain.Reject, Is.False, "a repeated request from the same candidate gets the same answer");
            Assert.That(cluster.Persisted("a").HardState, Is.EqualTo(new HardState(1, "b", 0)));
        }

        // A new term frees the vote.
        var next = cluster.Send(Msg.Vote("c", "a", term: 2, lastIndex: 0, lastTerm: 0)).Single();
        Assert.That((next.Reject, next.Term, cluster["a"].VotedFor), Is.EqualTo((false, 2L, "c")));
    }

    // Raft §5.1: a request from a stale term is refused; the node keeps its term.
    [Test]
    public void Votes_are_refused_to_candidates_of_stale_terms()
    {
        var cluster = new RaftTestCluster(3, NoPreVote);
        cluster.Preload("a", new HardState(3, null, 0));

        var replies = cluster.Send(Msg.Vote("b", "a", term: 2, lastIndex: 5, lastTerm: 2));
        var preVoteReplies = cluster.Send(Msg.PreVote("c", "a", term: 2, lastIndex: 5, lastTerm: 2));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(replies.Where(m => !m.Reject), Is.Empty, "no vote for a stale term");
            Assert.That(cluster["a"].VotedFor, Is.Null);
            Assert.That(cluster.Term("a"), Is.EqualTo(3));
            var preVote = preVoteReplies.Single();
            Assert.That((preVote.Type, preVote.Reject, preVote.Term), Is.EqualTo((MessageType.PreVoteResponse, true, 3L)),
                "a stale pre-vote is refused with our term, so the pre-candidate catches up");
        }
    }

    // Raft §5.4.1: a vote goes only to a candidate whose log is at least as up to date: a higher last
    // term wins, and with equal last terms the longer log wins.
    [Test]
    public void A_candidate_with_a_less_up_to_date_log_is_refused()
    {
        var cluster = new RaftTestCluster(3, NoPreVote);
        cluster.Preload("a", new HardState(2, null, 0), 1, 1, 2); // last entry: index 3, term 2

        static bool Granted(IReadOnlyList<RaftMessage> replies) => !replies.Single().Reject;

        using (Assert.EnterMultipleScope())
        {
            Assert.That(Granted(cluster.Send(Msg.Vote("b", "a", term: 3, lastIndex: 9, lastTerm: 1))), Is.False, "lower last term, longer log");
            Assert.That(Granted(cluster.Send(Msg.Vote("c", "a", term: 4, lastIndex: 2, lastTerm: 2))), Is.False, "same last term, shorter log");
            Assert.That(Granted(cluster.Send(Msg.Vote("b", "a", term: 5, lastIndex: 3, lastTerm: 2))), Is.True, "same last term, same length");
            Assert.That(Granted(cluster.Send(Msg.Vote("c", "a", term: 6, lastIndex: 1, lastTerm: 3))), Is.True, "higher last term, shorter log");
        }
    }

    // Raft §5.4.1 in a cluster: a node missing an entry the others hold cannot become leader; one that has it can.
    [TestCase(true)]
    [TestCase(false)]
    public void A_node_with_a_stale_log_loses_and_an_up_to_date_one_wins(bool preVote)
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { PreVote = preVote });
        cluster.Preload("a", new HardState(2, null, 2), 1, 2, 2);
        cluster.Preload("b", new HardState(2, null, 2), 1, 2, 2);
        cluster.Preload("c", new HardState(2, null, 2), 1, 2);

        cluster.Campaign("c");
        Assert.That(cluster.Leaders(), Is.Empty);

        cluster.Campaign("b");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "b" }));
            Assert.That(cluster.LogTerms("c"), Is.EqualTo(cluster.LogTerms("b")));
            Assert.That(cluster.AppliedIndex("c"), Is.EqualTo(4), "entry 3 and the no-op commit under the new leader");
        }
    }

    // Raft Figure 2 (persistent state): a node restarted from its persisted hard state remembers its
    // vote and does not vote twice in one term.
    [Test]
    public void A_restarted_node_does_not_vote_twice_in_one_term()
    {
        var cluster = new RaftTestCluster(3, NoPreVote);
        var granted = cluster.Send(Msg.Vote("b", "a", term: 1, lastIndex: 0, lastTerm: 0)).Single();
        Assert.That(granted.Reject, Is.False);

        cluster.Stop("a");
        cluster.Restart("a");
        var second = cluster.Send(Msg.Vote("c", "a", term: 1, lastIndex: 0, lastTerm: 0)).Single();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(second.Reject, Is.True);
            Assert.That(cluster["a"].VotedFor, Is.EqualTo("b"));
            Assert.That(cluster.Term("a"), Is.EqualTo(1));
        }
    }

    // Raft §5.2, §5.6: a 3-node cluster tolerates one crashed node: it still elects a leader and commits.
    [Test]
    public void A_three_node_cluster_with_one_node_stopped_elects_and_commits()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Stop("c");

        cluster.Elect("a");
        long index = cluster.Propose("a", "order-1");
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(index, Is.EqualTo(2));
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(2));
            Assert.That(cluster.AppliedData("a"), Is.EqualTo(new[] { "order-1" }));
            Assert.That(cluster.AppliedData("b"), Is.EqualTo(new[] { "order-1" }));
        }

        cluster.Restart("c");
        cluster.Advance(cluster.Options.HeartbeatTicks);
        Assert.That(cluster.AppliedData("c"), Is.EqualTo(new[] { "order-1" }), "the restarted node catches up");
    }

    // Raft §5.2: two candidates in one term; the loser returns to follower when the winner's
    // AppendEntries reaches it.
    [Test]
    public void A_candidate_that_hears_from_the_leader_of_its_term_becomes_its_follower()
    {
        var cluster = new RaftTestCluster(3, NoPreVote);
        cluster.StartCampaign("a");
        cluster.StartCampaign("c"); // both ask for votes in term 1; a's requests go first

        using (cluster.Drop(m => m.Type == MessageType.VoteResponse && m.To == "c"))
        {
            cluster.Stabilize();
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(cluster.Role("c"), Is.EqualTo(RaftRole.Follower));
            Assert.That((cluster.Term("c"), cluster["c"].LeaderId), Is.EqualTo((1L, "a")));
            Assert.That(cluster["b"].VotedFor, Is.EqualTo("a"), "first come, first served");
        }
    }
}
