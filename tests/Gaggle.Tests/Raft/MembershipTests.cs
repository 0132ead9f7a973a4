using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// Single-server membership changes (Raft thesis §4): learners, promotion, removal, one change at a
/// time, and the rule that every node uses the latest configuration in its log, committed or not.
/// </summary>
[TestFixture]
public sealed class MembershipTests
{
    private static readonly ClusterConfig ThreeVotersAndLearnerD = new(["a", "b", "c"], ["d"]);

    /// <summary>Voters a, b, c led by a, and d added as a learner that has the whole log.</summary>
    private static RaftTestCluster ClusterWithLearnerD(out long learnerIndex)
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "d", out learnerIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        Assert.That(cluster["a"].CommitIndex, Is.EqualTo(learnerIndex), "the learner's entry commits with the voters");
        return cluster;
    }

    private static bool NeverCampaigned(RaftTestCluster cluster, string id)
        => cluster.CountSent(m => m.From == id && m.Type is MessageType.Vote or MessageType.PreVote) == 0;

    // §4.2.1: a learner receives the log like any follower (here it catches up from nothing).
    [Test]
    public void A_learner_receives_the_whole_log()
    {
        var cluster = ClusterWithLearnerD(out long learnerIndex);
        cluster.Propose("a", "v1");
        cluster.Stabilize();

        var d = cluster["d"];
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.LogTerms("d"), Is.EqualTo(cluster.LogTerms("a")));
            Assert.That(cluster.AppliedData("d"), Is.EqualTo(new[] { "v1" }));
            Assert.That(d.Configuration, Is.EqualTo(ThreeVotersAndLearnerD));
            Assert.That(d.ConfigurationIndex, Is.EqualTo(learnerIndex));
            Assert.That(d.IsVoter, Is.False);
            Assert.That(d.LeaderId, Is.EqualTo("a"));
        }
    }

    // §4.2.1: a learner's acknowledgement never counts. Voters a, b, c with b and c cut off: a and the
    // learner d hold the entry, which would be 2 of 3 if d were counted as a voter.
    [Test]
    public void A_learner_is_never_counted_in_the_commit_quorum()
    {
        var cluster = ClusterWithLearnerD(out _);
        cluster.Isolate("b");
        cluster.Isolate("c");

        long index = cluster.Propose("a", "held-by-a-and-d");
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["d"].LastIndex, Is.EqualTo(index), "the learner holds the entry");
            Assert.That(cluster.CountSent(m => m.From == "d" && m.Type == MessageType.AppendResponse && m.Index == index && !m.Reject), Is.EqualTo(1));
            Assert.That(cluster["a"].CommitIndex, Is.LessThan(index), "a and a learner are not a majority of a, b, c");
        }

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster["a"].CommitIndex >= index, maxTicks: 3 * cluster.Options.HeartbeatTicks);
        Assert.That(cluster.AppliedData("b"), Is.EqualTo(new[] { "held-by-a-and-d" }));
    }

    // §4.2.1: the voters commit without the learner: 2 of the 3 voters suffice.
    [Test]
    public void The_voters_commit_without_the_learner()
    {
        var cluster = ClusterWithLearnerD(out _);
        cluster.Isolate("d");
        cluster.Isolate("c");

        long index = cluster.Propose("a", "v");
        cluster.Stabilize();

        Assert.That(cluster["a"].CommitIndex, Is.EqualTo(index));
    }

    // §4.2.1: a learner never campaigns, however long it hears nothing; it then catches up again.
    [Test]
    public void A_learner_never_campaigns_even_after_a_long_isolation()
    {
        var cluster = ClusterWithLearnerD(out _);
        long term = cluster.Term("d");
        cluster.Isolate("d");
        cluster.Advance(10 * cluster.Options.ElectionTicksMax);
        long index = cluster.Propose("a", "while-away");
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Role("d"), Is.EqualTo(RaftRole.Follower));
            Assert.That(cluster.Term("d"), Is.EqualTo(term));
            Assert.That(NeverCampaigned(cluster, "d"), Is.True);
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }), "the voters carried on");
        }

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster["d"].CommitIndex >= index, maxTicks: 3 * cluster.Options.HeartbeatTicks);
        Assert.That(cluster.AppliedData("d"), Is.EqualTo(new[] { "while-away" }));
    }

    // §4.2.1: a learner is promoted only once it has caught up; from then on it is a voter whose
    // acknowledgement counts: in {a, b, c, d} with b cut off, a and c alone (2 of 4) could not commit.
    [Test]
    public void A_learner_is_promoted_once_caught_up_and_then_counts()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        using (cluster.Drop(m => m.To == "d"))
        {
            Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "d", out long learnerIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
            cluster.ProposeMany("a", 3);
            cluster.Stabilize();
            Assert.That(cluster["a"].CommitIndex, Is.GreaterThan(learnerIndex));

            var refused = cluster["a"].ProposeConfigChange(new ConfigChange(ConfigChangeType.Promote, "d"), -1, out _, out string? error);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(refused, Is.EqualTo(ConfigChangeOutcome.NotCaughtUp));
                Assert.That(error, Does.Contain("'d'"));
                Assert.That(cluster["a"].Configuration, Is.EqualTo(ThreeVotersAndLearnerD), "nothing was logged");
            }
        }

        cluster.AdvanceUntil(() => cluster["d"].CommitIndex == cluster["a"].CommitIndex, maxTicks: 5 * cluster.Options.HeartbeatTicks);
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.Promote, "d", out long promoteIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();

        var fourVoters = new ClusterConfig(["a", "b", "c", "d"], []);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(promoteIndex));
            foreach (var id in new[] { "a", "b", "c", "d" })
            {
                Assert.That(cluster[id].Configuration, Is.EqualTo(fourVoters), id);
            }

            Assert.That(cluster["d"].IsVoter, Is.True);
        }

        cluster.Isolate("b");
        long index = cluster.Propose("a", "needs-d");
        cluster.Stabilize();
        Assert.That(cluster["a"].CommitIndex, Is.EqualTo(index), "a, c and d are 3 of 4");
    }

    // §4.1: a removal takes effect as soon as it is in the leader's log, so it (and everything before
    // it) commits with a majority of the new configuration only: a and b of {a, b, c}, where 2 of the
    // old {a, b, c, d} could not commit anything.
    [Test]
    public void After_removing_a_follower_a_majority_of_the_new_configuration_commits()
    {
        var cluster = new RaftTestCluster(4);
        cluster.Elect("a");
        cluster.Isolate("c");
        cluster.Isolate("d");

        long before = cluster.Propose("a", "before");
        cluster.Stabilize();
        Assert.That(cluster["a"].CommitIndex, Is.LessThan(before), "a and b are 2 of 4");

        Assert.That(cluster.ProposeChange("a", ConfigChangeType.Remove, "d", out long removeIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(removeIndex), "a and b are 2 of a, b, c");
            Assert.That(cluster["a"].Configuration, Is.EqualTo(new ClusterConfig(["a", "b", "c"], [])));
            Assert.That(cluster["a"].ProgressOf("d"), Is.Null, "the leader no longer replicates to d");
        }

        long after = cluster.Propose("a", "after");
        cluster.Stabilize();
        Assert.That(cluster["a"].CommitIndex, Is.EqualTo(after));

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster["c"].CommitIndex == after, maxTicks: 5 * cluster.Options.HeartbeatTicks);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.AppliedData("c"), Is.EqualTo(new[] { "before", "after" }));
            Assert.That(cluster["d"].LastIndex, Is.LessThan(removeIndex), "the removed node was never sent its removal");
        }
    }

    // §4.1: "a server always uses the latest configuration in its log, regardless of whether that
    // entry is committed". A leader cut off with the learner d promotes d: its change cannot commit
    // (a and d are 2 of {a, b, c, d}), the majority side elects b, and b's log truncates the change on
    // a and d, whose configuration rolls back to the one logged before it.
    [Test]
    public void A_change_made_on_the_minority_side_never_commits_and_is_rolled_back_when_truncated()
    {
        var cluster = ClusterWithLearnerD(out long learnerIndex);
        cluster.Partition(["a", "d"], ["b", "c"]);

        Assert.That(cluster.ProposeChange("a", ConfigChangeType.Promote, "d", out long promoteIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["d"].LastIndex, Is.EqualTo(promoteIndex));
            Assert.That(cluster["d"].IsVoter, Is.True, "the uncommitted configuration is in force on d");
            Assert.That(cluster["a"].Configuration.Voters, Is.EqualTo(new[] { "a", "b", "c", "d" }));
        }

        cluster.AdvanceUntil(() => cluster.Leaders().Contains("b") || cluster.Leaders().Contains("c"));
        string leader = cluster.Leaders().Single(id => id is "b" or "c");
        cluster.Advance(cluster.Options.ElectionTicksMax);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(learnerIndex), "the minority side never commits the change");
            Assert.That(cluster["d"].CommitIndex, Is.EqualTo(learnerIndex));
            Assert.That(cluster.Role("a"), Is.Not.EqualTo(RaftRole.Leader), "check-quorum: a stepped down");
            Assert.That(cluster.Term("a"), Is.EqualTo(cluster.Term("d")).And.LessThan(cluster.Term(leader)), "a and d never won an election");
        }

        cluster.Heal();
        long index = cluster.Propose(leader, "after-heal");
        cluster.AdvanceUntil(() => cluster["a"].CommitIndex >= index && cluster["d"].CommitIndex >= index, maxTicks: 5 * cluster.Options.HeartbeatTicks);

        using (Assert.EnterMultipleScope())
        {
            foreach (var id in new[] { "a", "d" })
            {
                Assert.That(cluster[id].TermAt(promoteIndex), Is.EqualTo(cluster.Term(leader)), $"{id}: the new leader's entry replaced the change");
                Assert.That(cluster[id].Configuration, Is.EqualTo(ThreeVotersAndLearnerD), id);
                Assert.That(cluster[id].ConfigurationIndex, Is.EqualTo(learnerIndex), id);
            }

            Assert.That(cluster["d"].IsVoter, Is.False);
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { leader }));
        }
    }

    // §4.1: one change at a time. A second change is refused while the first is uncommitted (here the
    // learner's entry waits for b or c), and the caller's expected configuration index is a
    // compare-and-set: a stale one is refused, the current one accepted.
    [Test]
    public void A_second_change_waits_for_the_first_and_the_expected_index_must_be_current()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        cluster.AddNode("e");
        cluster.Isolate("b");
        cluster.Isolate("c");

        Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "d", out long firstIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        var second = cluster["a"].ProposeConfigChange(new ConfigChange(ConfigChangeType.AddLearner, "e"), -1, out _, out string? error);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(second, Is.EqualTo(ConfigChangeOutcome.InProgress));
            Assert.That(error, Does.Contain($"{firstIndex}"));
            Assert.That(cluster.ProposeChange("a", ConfigChangeType.Remove, "c", out _), Is.EqualTo(ConfigChangeOutcome.InProgress));
            Assert.That(cluster["a"].LastIndex, Is.EqualTo(firstIndex), "nothing more was logged");
        }

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster["a"].CommitIndex >= firstIndex, maxTicks: 3 * cluster.Options.HeartbeatTicks);

        var stale = cluster["a"].ProposeConfigChange(new ConfigChange(ConfigChangeType.AddLearner, "e"), 0, out _, out error);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(stale, Is.EqualTo(ConfigChangeOutcome.Stale), "the configuration moved on from the seed (index 0)");
            Assert.That(error, Does.Contain($"{firstIndex}"));
            Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "e", out long secondIndex, expectedIndex: firstIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
            Assert.That(cluster["a"].ConfigurationIndex, Is.EqualTo(secondIndex));
        }

        cluster.Stabilize();
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.Remove, "e", out _, expectedIndex: firstIndex), Is.EqualTo(ConfigChangeOutcome.Stale));
        Assert.That(cluster["e"].Configuration, Is.EqualTo(new ClusterConfig(["a", "b", "c"], ["d", "e"])));
    }

    // The 2015 correction to §4.1 (Ongaro, raft-dev "bug in single-server membership changes"): a new
    // leader proposes a change only after an entry of its own term (its no-op) has committed.
    [Test]
    public void A_new_leader_changes_the_configuration_only_after_its_no_op_commits()
    {
        var cluster = new RaftTestCluster(3);
        cluster.AddNode("d");
        using (cluster.Drop(m => m.Type == MessageType.AppendResponse))
        {
            cluster.Elect("a");
            var outcome = cluster["a"].ProposeConfigChange(new ConfigChange(ConfigChangeType.AddLearner, "d"), -1, out _, out string? error);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(cluster["a"].CommitIndex, Is.Zero, "the no-op is not committed");
                Assert.That(outcome, Is.EqualTo(ConfigChangeOutcome.InProgress));
                Assert.That(error, Does.Contain("no-op"));
            }
        }

        cluster.AdvanceUntil(() => cluster["a"].CommitIndex >= 1, maxTicks: 3 * cluster.Options.HeartbeatTicks);
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "d", out _), Is.EqualTo(ConfigChangeOutcome.Proposed));
    }

    // etcd/raft's reason to let learners vote, and §4.1's "servers process incoming RequestVote and
    // AppendEntries without checking whether the sender is in their configuration": voters a, b and
    // the learner c; a promotes c and the entry reaches b but not c, then a dies. b's configuration
    // counts c, and b can only win with c's vote, which c must grant by the Raft rules even though its
    // own log still says it is a learner (and it last heard from a leader long ago).
    [Test]
    public void A_promoted_learner_that_has_not_seen_its_promotion_still_votes()
    {
        var cluster = new RaftTestCluster(2);
        cluster.Elect("a");
        cluster.AddNode("c");
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "c", out _), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();

        long promoteIndex;
        using (cluster.Drop(m => m.IsAppendTo("c")))
        {
            Assert.That(cluster.ProposeChange("a", ConfigChangeType.Promote, "c", out promoteIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
            cluster.Advance(2 * cluster.Options.HeartbeatTicks);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(cluster["b"].CommitIndex, Is.EqualTo(promoteIndex), "a and b are 2 of a, b, c");
                Assert.That(cluster["b"].Configuration.Voters, Is.EqualTo(new[] { "a", "b", "c" }));
                Assert.That(cluster["c"].IsVoter, Is.False, "c has not seen its promotion");
                Assert.That(cluster["c"].LeaderId, Is.EqualTo("a"), "c hears a's heartbeats");
            }

            cluster.Stop("a");
        }

        cluster.AdvanceUntil(() => cluster.Leaders().Count == 1, maxTicks: 10 * cluster.Options.ElectionTicksMax);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "b" }));
            Assert.That(cluster.CountSent(m => m.From == "c" && m.To == "b" && m.Type == MessageType.VoteResponse && !m.Reject), Is.EqualTo(1));
        }

        cluster.Stabilize();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["c"].TermAt(promoteIndex), Is.EqualTo(cluster["b"].TermAt(promoteIndex)), "c received its promotion from b");
            Assert.That(cluster["c"].IsVoter, Is.True);
            Assert.That(NeverCampaigned(cluster, "c"), Is.True);
        }
    }
}
