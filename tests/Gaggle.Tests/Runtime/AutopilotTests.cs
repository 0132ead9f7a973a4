using Gaggle.Raft;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>The autopilot's choices on a leader's core, one call at a time.</summary>
[TestFixture]
public sealed class AutopilotTests
{
    private const long MemberTimeoutUs = 1_000_000;
    private const long StabilizationUs = 200_000;

    /// <summary>
    /// Found by the simulation (autopilot seed 198): a new leader of five voters, elected by b and c
    /// while d and e were dead, wants one voter. Presuming d and e alive in its first member timeout,
    /// it demoted b: the four voters left needed three of a, c, d, e, and neither that change nor any
    /// later one could ever commit. It demotes a silent voter first, and only while the voters it really
    /// heard from are a majority of the voters left.
    /// </summary>
    [Test]
    public void A_new_leader_demotes_a_silent_voter_before_a_live_one()
    {
        var leader = ElectedLeader();
        var autopilot = new Autopilot(new AutopilotSettings(1, MemberTimeoutUs, StabilizationUs, 1));
        autopilot.Heard("b", 1_000);
        autopilot.Heard("c", 1_000);

        var change = autopilot.Next(leader, 2_000, changePending: false);

        Assert.That(change?.Kind, Is.EqualTo(MembershipRequestKind.Demote));
        Assert.That(change!.NodeId, Is.AnyOf("d", "e"));
    }

    [Test]
    public void A_leader_demotes_nobody_while_the_voters_it_heard_from_would_not_be_a_majority_of_those_left()
    {
        var leader = ElectedLeader();
        var autopilot = new Autopilot(new AutopilotSettings(1, MemberTimeoutUs, StabilizationUs, 1));
        autopilot.Heard("b", 1_000);

        Assert.That(autopilot.Next(leader, 2_000, changePending: false), Is.Null, "a and b are not three of the four voters left");
    }

    /// <summary>
    /// Two voters tolerate no more failures than one, and when the leader of two dies the other voter
    /// lives on, so no new generation forms: the cluster stops for good. A lone voter therefore takes
    /// the step to two only once a second learner is ready to make three at once.
    /// </summary>
    [Test]
    public void One_voter_becomes_two_only_when_a_second_learner_is_ready_to_make_three()
    {
        var cluster = LoneVoterWithLearnersBAndC(out var leader, cutOffC: true);
        Assert.That((leader.IsCaughtUp("b"), leader.IsCaughtUp("c")), Is.EqualTo((true, false)), "b keeps up, c hears nothing");

        var autopilot = new Autopilot(new AutopilotSettings(3, MemberTimeoutUs, StabilizationUs, 1));
        long now = 1_000;
        autopilot.Heard("b", now);
        autopilot.Heard("c", now);
        Assert.That(autopilot.Next(leader, now, changePending: false), Is.Null, "b starts its stabilization");
        now += StabilizationUs;
        Assert.That(autopilot.Next(leader, now, changePending: false), Is.Null, "b is ready, but c is not: two voters would be no safer and more fragile");

        cluster.Heal();
        cluster.Advance(200);
        autopilot.Heard("c", now);
        Assert.That(autopilot.Next(leader, now, changePending: false), Is.Null, "c starts its stabilization");
        now += StabilizationUs;
        var change = autopilot.Next(leader, now, changePending: false);
        Assert.That((change?.Kind, change?.NodeId), Is.EqualTo(((MembershipRequestKind?)MembershipRequestKind.Promote, "b")), "both ready: the first promotion");
    }

    /// <summary>
    /// Found by the simulation (elastic seed 2178): the leader promoted a learner that had died 150 ms
    /// before, still within the election timeout that counts as recently active; the two voters could
    /// then elect nobody. The learner promoted must have answered the last heartbeats.
    /// </summary>
    [Test]
    public void A_learner_that_stopped_answering_heartbeats_is_not_promoted()
    {
        var cluster = LoneVoterWithLearnersBAndC(out var leader, cutOffC: false);
        var autopilot = new Autopilot(new AutopilotSettings(3, MemberTimeoutUs, StabilizationUs, 1));
        long now = 1_000;
        autopilot.Heard("b", now);
        autopilot.Heard("c", now);
        Assert.That(autopilot.Next(leader, now, changePending: false), Is.Null, "both start their stabilization");

        cluster.Isolate("b");
        cluster.Advance(7); // more than two heartbeats (2 ticks each), less than an election timeout (10)
        now += StabilizationUs;
        Assert.That(leader.IsCaughtUp("b"), Is.True, "b still looks caught up");
        var change = autopilot.Next(leader, now, changePending: false);
        Assert.That((change?.Kind, change?.NodeId), Is.EqualTo(((MembershipRequestKind?)MembershipRequestKind.Promote, "c")), "c, which answers, not b");
    }

    /// <summary>
    /// Every member announces itself while a configuration change is uncommitted in its log (a joining
    /// node's addition counts once committed), so a leader hears announcements from its members all
    /// through a rolling deploy. One heard from a member that then leaves must not add it back once it
    /// is removed: found in a rolling deploy while the leader was frozen, the leader re-added an
    /// instance a moment after removing it (its leave done, its process gone), a member that answers
    /// nothing, counted as live for a member timeout. (In elastic mode, where a process's id is its own:
    /// with a member list, see the next test.)
    /// </summary>
    [Test]
    public void A_member_that_left_is_not_added_back_for_an_announcement_it_made_while_a_member()
    {
        var cluster = LoneVoterWithLearnersBAndC(out var leader, cutOffC: false);
        var autopilot = new Autopilot(new AutopilotSettings(1, MemberTimeoutUs, StabilizationUs, 1) { IdsNeverReturn = true });
        long now = 1_000;
        autopilot.Heard("b", now);
        autopilot.Heard("c", now);
        Assert.That(autopilot.Announced("b", 1, now), Is.True, "b announces itself while a change is uncommitted in its log");
        LeaveAndRemoveB(cluster, leader, autopilot, now);

        var next = autopilot.Next(leader, now + 1_000, changePending: false);
        Assert.That(next is { Kind: MembershipRequestKind.AddLearner, NodeId: "b" }, Is.False, () => $"the autopilot adds back b, which left: {next!.Kind} {next.NodeId}");
    }

    /// <summary>
    /// With a member list and voter management, an instance keeps its id across restarts, and a host
    /// stopping leaves the cluster: restarted, it asks to join again under the same id. Once its removal
    /// has committed, its new announcements add it back, as a learner; they must not be ignored until
    /// its leave's deadline.
    /// </summary>
    [Test]
    public void A_member_that_left_and_restarted_under_its_id_is_added_again_once_removed()
    {
        var cluster = LoneVoterWithLearnersBAndC(out var leader, cutOffC: false);
        var autopilot = new Autopilot(new AutopilotSettings(1, MemberTimeoutUs, StabilizationUs, 1));
        long now = 1_000;
        autopilot.Heard("b", now);
        autopilot.Heard("c", now);
        LeaveAndRemoveB(cluster, leader, autopilot, now);

        now += MemberTimeoutUs / 2;
        autopilot.Heard("b", now);
        autopilot.Heard("c", now);
        Assert.That(autopilot.Announced("b", 1, now), Is.True, "b, restarted under its id, asks to join");
        var next = autopilot.Next(leader, now + 1_000, changePending: false);
        Assert.That((next?.Kind, next?.NodeId), Is.EqualTo(((MembershipRequestKind?)MembershipRequestKind.AddLearner, "b")), "b, restarted, is added again");
    }

    /// <summary>
    /// A leader's pauses longer than an election timeout (garbage collections) need not depose it: a
    /// lone voter, or one whose other voters cannot elect anyone without it. A pause must not count
    /// as silence, but the silence before it still counts: pauses every few seconds must not keep a
    /// dead member in the configuration for good.
    /// </summary>
    [Test]
    public void A_leader_pausing_again_and_again_still_removes_a_dead_learner()
    {
        LoneVoterWithLearnersBAndC(out var leader, cutOffC: true);
        const long pauseUs = 100_000;
        var autopilot = new Autopilot(new AutopilotSettings(1, MemberTimeoutUs, StabilizationUs, 1) { PauseUs = pauseUs });
        autopilot.Heard("c", 0);
        long now = 0;
        for (int tick = 1; tick <= 1_000; tick++)
        {
            // Ticks 10 ms apart, and every half a member timeout a pause of one and a half election timeouts.
            now += tick % 50 == 0 ? 3 * pauseUs / 2 : 10_000;
            autopilot.Heard("b", now);
            if (autopilot.Next(leader, now, changePending: false) is { Kind: MembershipRequestKind.Remove, NodeId: "c" })
            {
                Assert.Pass();
            }
        }

        Assert.Fail($"c, unheard for {now / 1_000} ms (the member timeout is {MemberTimeoutUs / 1_000} ms), is never removed");
    }

    /// <summary>a, the sole voter, with learners b (caught up) and c (caught up too, unless cut off since its addition), 200 ticks on.</summary>
    /// <summary>Learner b leaves: the autopilot asks for its removal, which then commits.</summary>
    private static void LeaveAndRemoveB(Gaggle.Tests.Raft.RaftTestCluster cluster, RaftCore leader, Autopilot autopilot, long now)
    {
        autopilot.Leaving("b", now + (10 * MemberTimeoutUs));
        var removal = autopilot.Next(leader, now, changePending: false);
        Assert.That((removal?.Kind, removal?.NodeId), Is.EqualTo(((MembershipRequestKind?)MembershipRequestKind.Remove, "b")), "the learner that leaves is removed");
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.Remove, "b", out _), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        Assert.That(leader.Configuration.Contains("b") || leader.ConfigurationIndex > leader.CommitIndex, Is.False, "b's removal committed");
    }

    private static Gaggle.Tests.Raft.RaftTestCluster LoneVoterWithLearnersBAndC(out RaftCore leader, bool cutOffC)
    {
        var cluster = new Gaggle.Tests.Raft.RaftTestCluster(1);
        leader = cluster.Elect("a");
        cluster.AddNode("b");
        cluster.AddNode("c");
        cluster.ProposeChange("a", ConfigChangeType.AddLearner, "b", out _);
        cluster.Stabilize();
        cluster.ProposeChange("a", ConfigChangeType.AddLearner, "c", out _);
        if (cutOffC)
        {
            cluster.Isolate("c");
        }

        cluster.Advance(200);
        return cluster;
    }

    /// <summary>a, elected in term 1 by b and c (of a, b, c, d, e).</summary>
    private static RaftCore ElectedLeader()
    {
        var core = new RaftCore(
            new RaftConfig { Id = "a", Members = ["a", "b", "c", "d", "e"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, Random = new Random(1) },
            HardState.Empty,
            []);
        for (int i = 0; i < 30 && core.Role == RaftRole.Follower; i++)
        {
            core.Tick();
        }

        if (core.Role == RaftRole.PreCandidate)
        {
            core.Step(new RaftMessage { Type = MessageType.PreVoteResponse, From = "b", To = "a", Term = core.Term + 1 });
            core.Step(new RaftMessage { Type = MessageType.PreVoteResponse, From = "c", To = "a", Term = core.Term + 1 });
        }

        core.Step(new RaftMessage { Type = MessageType.VoteResponse, From = "b", To = "a", Term = core.Term });
        core.Step(new RaftMessage { Type = MessageType.VoteResponse, From = "c", To = "a", Term = core.Term });
        Assert.That(core.Role, Is.EqualTo(RaftRole.Leader));
        core.TakeReady();
        return core;
    }
}
