using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Learners count in neither check-quorum nor the leadership lease (thesis §4.2.1 with §6.2 and §6.4).</summary>
[TestFixture]
public sealed class LearnerQuorumTests
{
    /// <summary>Voters a, b, c led by a, and d a learner with the whole log; then b and c are cut off.</summary>
    private static RaftTestCluster LeaderWithOnlyTheLearner()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "d", out _), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        cluster.Isolate("b");
        cluster.Isolate("c");
        return cluster;
    }

    // §6.2: a leader that hears from no majority of the voters steps down; the learner's answers do not help.
    [Test]
    public void A_leader_hearing_only_from_a_learner_steps_down()
    {
        var cluster = LeaderWithOnlyTheLearner();
        int ticks = cluster.AdvanceUntil(() => cluster.Role("a") != RaftRole.Leader, maxTicks: 3 * cluster.Options.ElectionTicksMin);

        Assert.That(ticks, Is.LessThanOrEqualTo(cluster.Options.ElectionTicksMin + 1), "check-quorum counts voters only");
        Assert.That(cluster.CountSent(m => m.From == "d" && m.Type == MessageType.HeartbeatResponse), Is.GreaterThan(0), "the learner kept answering");
    }

    // §6.4: the leadership lease rests on heartbeat rounds answered by a majority of the voters.
    [Test]
    public void A_learner_answering_heartbeats_gives_the_leader_no_lease()
    {
        var cluster = LeaderWithOnlyTheLearner();
        var a = cluster["a"];
        long before = a.QuorumAckedHeartbeatRound;
        cluster.Advance(3 * cluster.Options.HeartbeatTicks);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(a.Role, Is.EqualTo(RaftRole.Leader));
            Assert.That(a.HeartbeatRound, Is.GreaterThan(before + 1));
            Assert.That(a.QuorumAckedHeartbeatRound, Is.EqualTo(before), "rounds answered by the learner alone are not acknowledged by a quorum");
        }
    }
}
