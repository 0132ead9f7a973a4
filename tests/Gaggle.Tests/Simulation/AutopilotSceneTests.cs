using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The autopilot's rules, each in a scripted scene of the drivers that ship (see Simulator.Scene.cs):
/// the faults that make a rule matter, on a calm network whose delivery order a fixed seed decides.
/// Random autopilot seeds rarely line those faults up, so each rule has its scene here.
/// </summary>
[TestFixture]
[Category("Simulation")]
public sealed class AutopilotSceneTests
{
    private const int Seed = 1;

    /// <summary>
    /// A learner talks only to the leader, so a voter that takes over has not heard from it lately, and
    /// a learner that pauses briefly (a garbage collection) across the change of leader is not heard
    /// from in the new leader's first ticks either. The new leader counts its members alive from when it
    /// began to lead and removes nobody in its first member timeout: a pause far shorter than the member
    /// timeout must not cost the learner its membership.
    /// </summary>
    [Test]
    public void A_new_leader_keeps_a_learner_that_paused_briefly_across_the_change_of_leader()
    {
        var (scene, memberTimeout, learner) = ThreeVotersAndALearner();

        var old = scene.Leader!;
        string next = old.Core!.Configuration.Voters.First(v => v != old.Id);
        int from = scene.Configurations.Count;
        scene.Pause(learner, 2 * scene.ElectionTimeoutUs);
        Assert.That(scene.TransferLeadership(next), Is.True);
        Assert.That(scene.RunUntil(() => scene.Leader?.Id == next, memberTimeout), Is.True, $"{next} leads");
        scene.RunFor(2 * memberTimeout);

        NoMemberRemoved(scene, from);
        Assert.That(scene.Leader!.Core!.Configuration.IsLearner(learner), Is.True);
    }

    /// <summary>
    /// From one voter, the autopilot promotes only once a second caught-up learner is ready, so that
    /// two voters (which tolerate no more failures than one) last a single commit. Here the second
    /// learner has just joined when the first dies: promoting the first alone would make a cluster
    /// that its death stops for good (two voters, one dead, commit nothing, not even its removal),
    /// although the leader and a learner live.
    /// </summary>
    [Test]
    public void A_lone_voter_keeps_committing_when_its_caught_up_learner_dies_as_a_second_one_joins()
    {
        var scene = Simulator.Scene(Seed, Autopilot(initialVoters: 1), Target(3));
        long memberTimeout = scene.Autopilot.MemberTimeoutUs;
        Assert.That(scene.RunUntil(() => scene.Leader is not null, memberTimeout), Is.True, "a leader");
        string first = scene.StartJoining();
        Assert.That(scene.RunUntil(() => scene.Configurations.Any(c => c.Config.IsLearner(first)), 2 * memberTimeout), Is.True, "the first joining node added as a learner");
        scene.RunFor(memberTimeout); // far past its stabilization time

        string second = scene.StartJoining();
        Assert.That(scene.RunUntil(() => scene.Configurations.Any(c => c.Config.IsLearner(second)), 2 * memberTimeout), Is.True, "the second joining node added as a learner");
        scene.RunFor(scene.ElectionTimeoutUs / 2); // less than the second learner's stabilization time
        scene.StopForGood(first);

        Assert.That(scene.Commits("after the learner died", 4 * memberTimeout), Is.True,
            () => $"no commit: the configuration is {scene.Leader?.Core!.Configuration.ToString() ?? "(no leader)"}{Environment.NewLine}{scene.TraceTail}");
        Assert.That(scene.RunUntil(() => scene.Leader?.Core is { } core && !core.Configuration.Contains(first) && core.Configuration.Contains(second) && core.ConfigurationIndex <= core.CommitIndex, 4 * memberTimeout),
            Is.True, () => $"{first} removed, {second} still a member: the configuration is {scene.Leader?.Core!.Configuration.ToString() ?? "(no leader)"}");
    }

    /// <summary>
    /// One change at a time (Autopilot.Next waits for the change under way, and the Raft core refuses a
    /// second uncommitted one): two caught-up learners of three voters wanting five are promoted one
    /// after the other. Here the leader is cut off from the two other voters the moment it proposes the
    /// first promotion. That change needs three of the four voters it names, so the leader (with the
    /// promoted learner) commits nothing, and the two others elect a leader of their own under the three
    /// voters they know. Proposed at once, the second promotion would let the leader commit both with
    /// the two learners (three of five) while the other side commits its own entries under the old
    /// configuration: two different entries committed at one index.
    /// </summary>
    [Test]
    public void Two_learners_are_promoted_one_change_at_a_time_so_a_cut_off_leader_commits_nothing()
    {
        var scene = Simulator.Scene(Seed, Autopilot(initialVoters: 3), Target(5));
        long memberTimeout = scene.Autopilot.MemberTimeoutUs;
        Assert.That(scene.RunUntil(() => scene.Leader is not null, memberTimeout), Is.True, "a leader");
        string[] learners = [scene.StartJoining(), scene.StartJoining()];
        Assert.That(scene.RunUntil(() => scene.Leader?.Core!.Configuration.Voters.Count == 4, 4 * memberTimeout), Is.True, "the first learner promoted");

        var leader = scene.Leader!;
        var others = leader.Core!.Configuration.Voters.Where(v => v != leader.Id && !learners.Contains(v)).ToArray();
        Assert.That(leader.Core.ConfigurationIndex, Is.GreaterThan(leader.Core.CommitIndex), "the promotion has not committed yet");
        scene.Split(others);
        Assert.That(scene.RunUntil(() => others.Contains(scene.Leader?.Id), 2 * memberTimeout), Is.True, () => $"the two voters cut off from {leader.Id} elect a leader{Environment.NewLine}{scene.TraceTail}");
        Assert.That(scene.Commits("on the side of the two voters", 2 * memberTimeout), Is.True, () => $"the two voters cut off from {leader.Id} commit{Environment.NewLine}{scene.TraceTail}");

        scene.Heal();
        Assert.That(scene.RunUntil(() => scene.Leader?.Core is { } core && core.Configuration.Voters.Count == 5 && core.ConfigurationIndex <= core.CommitIndex, 8 * memberTimeout),
            Is.True, () => $"five voters once healed: the configuration is {scene.Leader?.Core!.Configuration.ToString() ?? "(no leader)"}{Environment.NewLine}{scene.TraceTail}");
    }

    /// <summary>
    /// A surplus voter is demoted only while the voters left that were heard lately make a majority of
    /// them (Autopilot.Balance). It matters without check-quorum, where a leader that hears only a
    /// minority keeps leading: of five voters, one is paused past the member timeout (it falls behind)
    /// and then two stop for good. Two live voters of five can remove nobody; demoting the paused one
    /// (the least caught up) would leave four voters, two of them gone, so when it resumes, the leader,
    /// the other live voter and it (three of the five voters) could still commit nothing, for good.
    /// </summary>
    [Test]
    public void A_voter_is_demoted_only_while_the_voters_heard_lately_make_a_majority_of_those_left()
    {
        var scene = Simulator.Scene(Seed, Autopilot(initialVoters: 5), settings => Target(5)(settings) with { CheckQuorum = false });
        long memberTimeout = scene.Autopilot.MemberTimeoutUs;
        Assert.That(scene.RunUntil(() => scene.Leader is not null, memberTimeout), Is.True, "a leader");
        var leader = scene.Leader!;
        var (paused, gone) = (leader.Core!.Configuration.Voters.First(v => v != leader.Id), leader.Core.Configuration.Voters.Where(v => v != leader.Id).Skip(2).ToArray());

        scene.Pause(paused, 3 * memberTimeout);
        Assert.That(scene.Commits("while one voter is paused", memberTimeout), Is.True, "four of five voters commit");
        foreach (string id in gone)
        {
            scene.StopForGood(id);
        }

        scene.RunFor(2 * memberTimeout);
        Assert.That(scene.Leader, Is.SameAs(leader), "without check-quorum the leader keeps leading");
        Assert.That(scene.Commits("after the paused voter resumed", 3 * memberTimeout), Is.True,
            () => $"three of five voters commit once {paused} resumes: the configuration is {scene.Leader?.Core!.Configuration.ToString() ?? "(no leader)"}{Environment.NewLine}{scene.TraceTail}");
    }

    /// <summary>
    /// A leader frozen past the member timeout (a long garbage collection, SIGSTOP, a paused VM) stays
    /// leader when the voters left cannot elect anyone (one of them stopped for good). Thawed, it must
    /// not count its own pause as its members' silence: what it did not listen to, it did not hear. It
    /// removed a live learner on its first tick, which started over as a new incarnation, its waits
    /// refused and its holds lost; it may remove the voter that is really gone, but only a member
    /// timeout after it resumed.
    /// </summary>
    [Test]
    public void A_leader_thawed_after_a_pause_past_the_member_timeout_keeps_its_live_learner()
    {
        var (scene, memberTimeout, learner) = ThreeVotersAndALearner();

        var leader = scene.Leader!;
        string dead = leader.Core!.Configuration.Voters.First(v => v != leader.Id);
        int from = scene.Configurations.Count;
        scene.StopForGood(dead);
        scene.Pause(leader.Id, 2 * memberTimeout);
        scene.RunFor(2 * memberTimeout + scene.ElectionTimeoutUs + memberTimeout / 2);

        NoMemberRemoved(scene, from, except: dead);
        Assert.That(scene.Leader, Is.SameAs(leader), "the thawed leader still leads (the voter left cannot elect anyone)");
        Assert.That(leader.Core!.Configuration.IsLearner(learner), Is.True);
    }

    private static ClusterShape Autopilot(int initialVoters) => new(initialVoters, Discovery: false, Membership: true, Autopilot: true);

    private static Func<SimulationSettings, SimulationSettings> Target(int voters) => settings => settings with { Autopilot = settings.Autopilot! with { TargetVoters = voters } };

    /// <summary>A scene of three voters whose leader added a joining node as a learner a member timeout ago.</summary>
    private static (Simulator Scene, long MemberTimeout, string Learner) ThreeVotersAndALearner()
    {
        var scene = Simulator.Scene(Seed, Autopilot(initialVoters: 3), Target(3));
        long memberTimeout = scene.Autopilot.MemberTimeoutUs;
        Assert.That(scene.RunUntil(() => scene.Leader is not null, memberTimeout), Is.True, "a leader");
        string learner = scene.StartJoining();
        Assert.That(scene.RunUntil(() => scene.Configurations.Any(c => c.Config.IsLearner(learner)), 2 * memberTimeout), Is.True, "the joining node added as a learner");
        scene.RunFor(memberTimeout);
        return (scene, memberTimeout, learner);
    }

    /// <summary>
    /// No member was gone for a member timeout: no configuration applied since <paramref name="from"/>
    /// drops a member of the one before it (but <paramref name="except"/>, which may have been gone).
    /// </summary>
    private static void NoMemberRemoved(Simulator scene, int from, string? except = null)
    {
        for (int i = Math.Max(1, from); i < scene.Configurations.Count; i++)
        {
            var before = scene.Configurations[i - 1].Config;
            var after = scene.Configurations[i].Config;
            var removed = before.Members.Where(m => !after.Contains(m) && m != except).ToList();
            Assert.That(removed, Is.Empty, () => $"configuration {scene.Configurations[i].Index} removed a member that was never gone for a member timeout: {before} -> {after}{Environment.NewLine}{scene.TraceTail}");
        }
    }
}
