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
        var scene = Simulator.Scene(Seed, Autopilot(initialVoters: 3), Target(3));
        long memberTimeout = scene.Autopilot.MemberTimeoutUs;
        Assert.That(scene.RunUntil(() => scene.Leader is not null, memberTimeout), Is.True, "a leader");
        string learner = scene.StartJoining();
        Assert.That(scene.RunUntil(() => scene.Configurations.Any(c => c.Config.IsLearner(learner)), 2 * memberTimeout), Is.True, "the joining node added as a learner");
        scene.RunFor(memberTimeout);

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

    private static ClusterShape Autopilot(int initialVoters) => new(initialVoters, Discovery: false, Membership: true, Autopilot: true);

    private static Func<SimulationSettings, SimulationSettings> Target(int voters) => settings => settings with { Autopilot = settings.Autopilot! with { TargetVoters = voters } };

    /// <summary>No member was gone for a member timeout: no configuration applied since <paramref name="from"/> drops a member of the one before it.</summary>
    private static void NoMemberRemoved(Simulator scene, int from)
    {
        for (int i = Math.Max(1, from); i < scene.Configurations.Count; i++)
        {
            var before = scene.Configurations[i - 1].Config;
            var after = scene.Configurations[i].Config;
            var removed = before.Members.Where(m => !after.Contains(m)).ToList();
            Assert.That(removed, Is.Empty, () => $"configuration {scene.Configurations[i].Index} removed a member that was never gone for a member timeout: {before} -> {after}{Environment.NewLine}{scene.TraceTail}");
        }
    }
}
