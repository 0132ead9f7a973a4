using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Scripted elastic runs (see Simulator.Script.cs), each aimed at one rule of removal, orphaned
/// learners and cluster generations that the random adversary reaches too rarely, or never: each
/// fails when its rule is dropped.
/// </summary>
[TestFixture]
[Category("Simulation")]
public sealed class ElasticRuleScenarioTests
{
    private static void Pass(SimulationFailure? failure) => Assert.That(failure, Is.Null, () => failure!.Report());

    /// <summary>
    /// A learner that heard no voter for the member timeout starts over (NodeDriver.TickJoining, Orphaned):
    /// here the founder, the only voter, stops while its learner is paused; no other instance runs. The
    /// learner's copy counts for nothing. Starting over, it founds the next generation itself; holding on
    /// to its state, it would wait for a voter that never comes (belonging to a cluster, it never claims).
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_learner_whose_voters_are_all_gone_starts_over_and_founds_the_next_generation(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        sim.StartNewInstance();
        sim.StartNewInstance();
        sim.RunUntil(() => sim.Formed(voters: 1), 20 * sim.MemberTimeoutUs, "two instances form one cluster: a voter and a learner");
        var founder = sim.Leader!;
        var learner = sim.Instances.Single(n => n != founder);
        long generation = founder.Generation;

        sim.Pause(learner, 3 * sim.MemberTimeoutUs / 2);
        sim.Stop(founder);
        sim.RunUntil(() => learner.Core!.Role == Gaggle.Raft.RaftRole.Leader && learner.Generation > generation, 4 * sim.MemberTimeoutUs,
            $"the learner left alone ({learner.Id}) starts over and founds the generation after {generation}");
    }));

    /// <summary>
    /// A removed member that is still alive is told so and starts over as a new incarnation
    /// (NodeDriver.ReceiveJoining and TickJoining, Removed): a voter paused past the member timeout is
    /// removed by the autopilot; when it resumes it campaigns, the leader tells it it is no member, and
    /// it comes back with no log (its callers' pending requests fail, their holds end, its duplicate
    /// table is gone), is added as a learner and promoted: the cluster has three voters again.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_voter_removed_while_paused_starts_over_as_a_new_incarnation_and_is_a_voter_again(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        var (leader, paused, _) = FormThreeVoters(sim);
        sim.Pause(paused, 3 * sim.MemberTimeoutUs);
        sim.RunUntil(() => !sim.CommittedConfiguration(leader.Generation).Contains(paused.Id), 3 * sim.MemberTimeoutUs, $"the autopilot removes {paused.Id}");

        sim.Resume(paused);
        int resets = paused.Resets;
        sim.RunUntil(() => paused.Resets > resets && sim.Formed(voters: 3), 3 * sim.MemberTimeoutUs,
            $"{paused.Id} starts over as a new incarnation and the cluster has three voters again");
    }));

    /// <summary>
    /// A leader tells a node it is no member only once the configuration without it has committed
    /// (NodeDriver.MaybeTellNotAMember): a node told so starts over with no log. Here the autopilot
    /// removes a voter paused past the member timeout, and the other voter's answers are lost while the
    /// removed one resumes and campaigns: the removal stays uncommitted (the leader may still lose it,
    /// and the removed voter's log and acknowledgements still count in the committed configuration).
    /// The simulator checks at every start-over that the committed configuration no longer holds the node.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_voter_is_told_it_is_removed_only_once_its_removal_has_committed(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        var (leader, paused, other) = FormThreeVoters(sim);
        sim.Pause(paused, 3 * sim.MemberTimeoutUs);
        sim.RunUntil(() => !leader.Core!.Configuration.Contains(paused.Id), 3 * sim.MemberTimeoutUs, $"the leader logs the removal of {paused.Id}");
        Assert.That(sim.CommittedConfiguration(leader.Generation).Contains(paused.Id), "the removal is not committed yet");

        sim.Lose(e => e.From == other.Id, $"{other.Id}'s answers are lost: the removal of {paused.Id} stays uncommitted");
        sim.Resume(paused);
        int resets = paused.Resets;
        sim.RunFor(4 * sim.ElectionTimeoutUs);
        Assert.That(sim.CommittedConfiguration(leader.Generation).Contains(paused.Id), "the removal is still not committed");

        sim.Lose(null, $"{other.Id} is heard again");
        sim.RunUntil(() => paused.Resets > resets && sim.Formed(voters: 3), 3 * sim.MemberTimeoutUs,
            $"{paused.Id} starts over as a new incarnation and the cluster has three voters again");
    }));

    /// <summary>Three instances form a cluster of three voters: its leader and the two others.</summary>
    private static (SimulatedNode Leader, SimulatedNode First, SimulatedNode Second) FormThreeVoters(Simulator sim)
    {
        for (int i = 0; i < 3; i++)
        {
            sim.StartNewInstance();
        }

        sim.RunUntil(() => sim.Formed(voters: 3), 20 * sim.MemberTimeoutUs, "three instances form one cluster of three voters");
        var leader = sim.Leader!;
        var others = sim.Instances.Where(n => n != leader).ToArray();
        return (leader, others[0], others[1]);
    }
}
