using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Partitions and rejoins: pre-vote (thesis §9.6), check-quorum (thesis §6.2) and the leader lease (thesis §4.2.3).</summary>
[TestFixture]
public sealed class DisruptionTests
{
    // Thesis §9.6: with pre-vote, a partitioned node cannot win a pre-vote, so its term does not grow,
    // and when it rejoins it neither bumps the cluster's term nor unseats the leader.
    [Test]
    public void A_partitioned_node_that_rejoins_does_not_disrupt_the_leader_with_pre_vote()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.Advance(5);

        cluster.Isolate("c");
        for (int i = 0; i < 10; i++)
        {
            cluster.Propose("a", $"v{i}");
            cluster.Advance(cluster.Options.ElectionTicksMax);
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Term("c"), Is.EqualTo(1), "10 election timeouts alone, still term 1");
            Assert.That(cluster.Role("c"), Is.EqualTo(RaftRole.PreCandidate));
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }), "a and b are a majority");
        }

        cluster.Heal();
        cluster.Advance(3 * cluster.Options.ElectionTicksMax);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            Assert.That(cluster.Ids.Select(cluster.Term), Is.All.EqualTo(1));
            Assert.That((cluster.Role("c"), cluster["c"].LeaderId), Is.EqualTo((RaftRole.Follower, "a")));
            Assert.That(cluster.AppliedData("c"), Has.Count.EqualTo(10), "and it catches up");
        }
    }

    // The control experiment: without pre-vote the partitioned node's term races ahead, and when it
    // rejoins its higher term deposes the healthy leader (Raft §5.1), which pre-vote exists to avoid.
    [Test]
    public void Without_pre_vote_a_rejoining_node_forces_a_new_election()
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { PreVote = false });
        cluster.Elect("a");
        cluster.Isolate("c");
        cluster.Advance(5 * cluster.Options.ElectionTicksMax);
        long cTerm = cluster.Term("c");
        Assert.That(cTerm, Is.GreaterThan(3));

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster.Leaders().Count == 1 && cluster.Term(cluster.Leaders()[0]) > cTerm);

        Assert.That(cluster.Term("a"), Is.GreaterThan(cTerm), "the cluster had to move past c's term");
    }

    // Thesis §6.2 (check-quorum): a leader that has not heard from a majority for an election timeout
    // steps down. It does so within ElectionTicksMin ticks of losing the majority, whatever the moment,
    // so before any follower can have timed out and elected someone else: at no tick do two nodes
    // believe they lead.
    [Test]
    public void A_leader_cut_off_from_the_majority_steps_down_within_an_election_timeout(
        [Values(10, 30)] int electionTicksMin, [Range(0, 30, 3)] int offset)
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions
        {
            ElectionTicksMin = electionTicksMin, ElectionTicksMax = electionTicksMin * 5 / 3, HeartbeatTicks = 2,
        });
        cluster.Elect("a");
        cluster.Advance(offset);
        cluster.Propose("a", "uncommitted");
        cluster.Isolate("a");

        int ticks = 0;
        while (!cluster.Leaders().Any(id => id != "a"))
        {
            cluster.Advance(1);
            ticks++;
            Assert.That(cluster.Leaders(), Has.Count.LessThanOrEqualTo(1), $"tick {ticks}");
            Assert.That(ticks, Is.LessThanOrEqualTo(10 * cluster.Options.ElectionTicksMax), "the majority elects a new leader");
            if (cluster.Role("a") == RaftRole.Leader)
            {
                Assert.That(ticks, Is.LessThan(cluster.Options.ElectionTicksMin), "a still leads");
            }
        }

        string leader = cluster.Leaders().Single();
        cluster.Propose(leader, "after");
        cluster.Stabilize();
        cluster.Heal();
        cluster.Advance(cluster.Options.ElectionTicksMax);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { leader }));
            Assert.That(cluster.AppliedData("a"), Is.EqualTo(new[] { "after" }), "a's uncommitted entry is gone");
        }
    }

    // Without check-quorum nothing tells an isolated leader that it lost the majority (the option's cost).
    [Test]
    public void Without_check_quorum_an_isolated_leader_keeps_believing_it_leads()
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { CheckQuorum = false });
        cluster.Elect("a");
        cluster.Isolate("a");
        cluster.Advance(5 * cluster.Options.ElectionTicksMax);

        Assert.That(cluster.Leaders(), Has.Count.EqualTo(2).And.Contains("a"));
    }

    // Thesis §4.2.3 (leader lease): a follower that heard from its leader less than the minimum election
    // timeout ago ignores vote requests, even of higher terms; a transfer's forced campaign is honoured.
    [Test]
    public void A_follower_in_a_leader_lease_ignores_vote_requests_but_not_a_forced_one()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");

        var ignored = cluster.Send(Msg.Vote("c", "b", term: 5, lastIndex: 9, lastTerm: 1));
        var preVoteIgnored = cluster.Send(Msg.PreVote("c", "b", term: 5, lastIndex: 9, lastTerm: 1));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ignored, Is.Empty);
            Assert.That(preVoteIgnored, Is.Empty);
            Assert.That((cluster.Term("b"), cluster["b"].LeaderId), Is.EqualTo((1L, "a")));
        }

        var forced = new RaftMessage { Type = MessageType.Vote, From = "c", To = "b", Term = 5, Index = 9, LogTerm = 1, Force = true };
        var granted = cluster.Send(forced).Single();
        Assert.That((granted.Reject, cluster.Term("b"), cluster["b"].VotedFor), Is.EqualTo((false, 5L, "c")));
    }

    // Thesis §9.6: a pre-candidate with a stale log cannot pass the pre-vote, and the pre-vote itself
    // moves nobody's term.
    [Test]
    public void A_pre_vote_neither_records_a_vote_nor_changes_terms()
    {
        var cluster = new RaftTestCluster(3);
        var reply = cluster.Send(Msg.PreVote("c", "a", term: 4, lastIndex: 0, lastTerm: 0)).Single();

        using (Assert.EnterMultipleScope())
        {
            Assert.That((reply.Type, reply.Reject, reply.Term), Is.EqualTo((MessageType.PreVoteResponse, false, 4L)));
            Assert.That(cluster.Term("a"), Is.Zero);
            Assert.That(cluster["a"].VotedFor, Is.Null);
            Assert.That(cluster.Persisted("a").HardState, Is.EqualTo(HardState.Empty));
        }
    }
}
