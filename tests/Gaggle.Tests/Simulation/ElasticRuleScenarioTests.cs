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
    /// <summary>A store that answers within half a tick unless the script holds it.</summary>
    private static ElasticSimSettings FastStore(ElasticSimSettings settings) => settings with { StoreDelayMaxUs = SimulationSettings.TickMs * 500L };

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
        sim.RunUntil(() => learner.Core!.Role == Gaggle.Raft.RaftRole.Leader && Gaggle.Channels.GenerationIds.IsNewer(learner.Generation, generation), 6 * sim.MemberTimeoutUs,
            $"the learner left alone ({learner.Id}) starts over and founds the generation after {generation}");
    }));

    /// <summary>
    /// A learner removed while it was paused is never told so (it does not campaign, and the leader no
    /// longer replicates to it): resumed, it hears only the leader's announcements, which do not count as
    /// a voter replicating to it (NodeDriver.AdmitGeneration), so it starts over a member timeout of
    /// listening later (not at once: silence counts only while it listens, NodeDriver.TickJoining) and
    /// joins again. Counting the announcements, it would wait for replication forever.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_learner_removed_while_paused_starts_over_a_member_timeout_after_it_resumes(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        sim.StartNewInstance();
        sim.StartNewInstance();
        sim.RunUntil(() => sim.Formed(voters: 1), 20 * sim.MemberTimeoutUs, "two instances form one cluster: a voter and a learner");
        var learner = sim.Instances.Single(n => n != sim.Leader);
        sim.Pause(learner, 2 * sim.MemberTimeoutUs);
        long resumedAt = learner.PausedUntilUs;
        int starts = learner.OrphanedStarts;
        sim.RunUntil(() => learner.OrphanedStarts > starts, 4 * sim.MemberTimeoutUs, $"{learner.Id}, removed while paused, starts over");
        Assert.That(sim.NowUs - resumedAt, Is.GreaterThanOrEqualTo(sim.MemberTimeoutUs - sim.ElectionTimeoutUs), "a member timeout of listening after it resumed, not at once");
        sim.RunUntil(() => sim.Formed(voters: 1) && sim.CommittedConfiguration(1).IsLearner(learner.Id), 3 * sim.MemberTimeoutUs, $"{learner.Id} joins again");
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
    /// A leaving voter is replaced before it is removed (Autopilot.ReplaceLeaving): a rolling deploy
    /// takes one voter's host down while another voter is paused for less than the member timeout (a
    /// long garbage collection). A caught-up learner is promoted first (the leader, the leaving voter
    /// and the learner are three of four), then the leaving voter is removed (the leader and the new
    /// voter are two of three), all while the paused voter sleeps. Removed first, it would leave two
    /// voters, one of them paused: nothing commits, not even the promotion, until that one wakes.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_leaving_voter_is_replaced_before_it_is_removed_so_a_paused_voter_costs_no_quorum(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        FormThreeVoters(sim);
        var learner = sim.StartNewInstance();
        sim.RunUntil(() => sim.Formed(voters: 3) && sim.CommittedConfiguration(1).IsLearner(learner.Id), 20 * sim.MemberTimeoutUs, $"{learner.Id} joins as a learner");
        sim.RunScriptFor(sim.Autopilot.StabilizationUs + (2 * sim.ElectionTimeoutUs));
        sim.RunUntil(() => sim.Formed(voters: 3), 4 * sim.MemberTimeoutUs, "the cluster settles");
        var leader = sim.Leader!;
        var (leaving, paused) = (sim.Instances.First(n => n != leader && n != learner), sim.Instances.Last(n => n != leader && n != learner));

        sim.Pause(paused, 9 * sim.MemberTimeoutUs / 10);
        sim.Leave(leaving);
        sim.RunUntil(
            () => sim.CommittedConfiguration(leader.Generation) is var config && !config.Contains(leaving.Id) && config.IsVoter(learner.Id),
            8 * sim.MemberTimeoutUs / 10,
            $"{leaving.Id} leaves, {learner.Id} takes its seat, while {paused.Id} is paused");
        Assert.That(sim.CommittedConfiguration(leader.Generation).IsVoter(paused.Id), Is.True, $"{paused.Id} is still a voter");
    }));

    /// <summary>
    /// A new generation grants no lock until every hold of the one before it has expired (the
    /// generation start's hold-off, NodeDriver.GenerationClaimed): a follower holding a mutex for a
    /// client is cut off from everyone (its client still trusts the hold until its safe deadline) and the
    /// other instances stop; newcomers hear no one for the member timeout and found the next
    /// generation. With a lease much longer than the member timeout, their first grant of that mutex
    /// must wait out the old hold; granted at once, two clients would trust the same mutex at the same
    /// time (the lock checker's beliefs across generations).
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_new_generation_grants_nothing_until_the_holds_of_the_one_before_it_have_expired(int seed)
    {
        const long leaseMs = 30_000;
        Pass(Simulator.RunScript(seed, FastStore, sim =>
        {
            // Generation 1 has its own hold-off (its founding waited less than a lease), counted on the
            // lease clock, which runs in a term from its leader's first stamp: the first acquires wait it out.
            FormThreeVoters(sim);
            SimulatedNode? holder = null;
            for (int i = 0; i < 2000 && holder is null; i++)
            {
                foreach (var node in sim.Instances.Where(n => n != sim.Leader).ToList())
                {
                    sim.ClientActs(node);
                }

                sim.RunScriptFor(sim.ElectionTimeoutUs / 4);
                holder = sim.Instances.FirstOrDefault(n => n != sim.Leader && sim.HeldLocks(n).Any(name => name.StartsWith('m')));
            }

            Assert.That(holder, Is.Not.Null, () => "a follower's client holds a mutex: " + string.Join("; ", sim.Instances.SelectMany(n => n.Clients)));
            var leader = sim.Leader!;
            var other = sim.Instances.Single(n => n != leader && n != holder);
            string mutex = sim.HeldLocks(holder!).First(name => name.StartsWith('m'));
            sim.Lose(e => e.From == holder!.Id || e.To == holder.Id, $"{holder!.Id} is cut off, its client holding {mutex}");
            sim.Stop(leader);
            sim.Stop(other);
            var newcomers = new[] { sim.StartNewInstance(), sim.StartNewInstance() };
            sim.RunUntil(() => sim.Founded.Count == 2 && sim.Leader is { GenerationNumber: 2 }, 6 * sim.MemberTimeoutUs, "the newcomers found generation 2");

            // The newcomers' clients take locks, the held mutex among them sooner or later.
            long until = sim.NowUs + (leaseMs * 1000);
            while (sim.NowUs < until)
            {
                foreach (var node in newcomers)
                {
                    sim.ClientActs(node);
                }

                sim.RunScriptFor(sim.ElectionTimeoutUs / 2);
            }
        }, leaseMs: leaseMs));
    }

    /// <summary>
    /// A leader that writes its generation over a lower one grants nothing until the holds granted under
    /// that one have expired (GenerationFence, HoldOff): every member of generation 2 freezes and Redis
    /// loses the key; newcomers, hearing no one, found generation 1 again on the empty key, and one of
    /// their clients takes a mutex. Generation 2 resumes, cut from the newcomers (a partitioned bus):
    /// its leader replaces the key and, after the settle time, its clients take locks, the same mutex
    /// among them. Granted at once, two clients would trust the same mutex at the same time (the lock
    /// checker's beliefs across generations): the newcomer's hold runs on until its lease ends. With
    /// <paramref name="lostAgain"/>, Redis loses the key a second time and the newcomers freeze as
    /// generation 2 resumes: its leader restores the key (over none) rather than replacing theirs, and
    /// must hold off all the same. With <paramref name="answerLost"/>, the answer to the confirmation that
    /// wrote the key is lost: the leader learns from its next answer how recent the change is and waits out
    /// the settle time all the same (the newcomers' fence may still be open); opening at once, both
    /// leaders would trust their leadership at the same time.
    /// </summary>
    [TestCase(3, false, false)]
    [TestCase(8, false, false)]
    [TestCase(3, true, false)]
    [TestCase(8, true, false)]
    [TestCase(3, false, true)]
    [TestCase(8, false, true)]
    public void A_leader_that_replaces_a_lower_generation_grants_nothing_until_its_holds_have_expired(int seed, bool lostAgain, bool answerLost)
    {
        // A member timeout well above the lease: the newcomers' generation, its fence shut, is over only
        // after its holds have run out (a reset would end them at once).
        const long leaseMs = 8_000;
        Pass(Simulator.RunScript(seed, settings => FastStore(settings) with { MemberTimeoutUs = 3 * leaseMs * 1000 }, sim =>
        {
            sim.StartNewInstance();
            sim.RunUntil(() => sim.Formed(voters: 1), 20 * sim.MemberTimeoutUs, "generation 1 forms");
            sim.Stop(sim.Leader!);
            var live = new[] { sim.StartNewInstance(), sim.StartNewInstance(), sim.StartNewInstance() };
            sim.RunUntil(() => sim.Formed(voters: 3) && sim.Leader is { GenerationNumber: 2 }, 20 * sim.MemberTimeoutUs, "generation 2 forms");

            long frozenUs = 2 * (leaseMs * 1000);
            foreach (var node in live)
            {
                sim.Pause(node, frozenUs);
            }

            sim.StoreLosesItsValue();
            var newcomers = new[] { sim.StartNewInstance(), sim.StartNewInstance() };
            string? mutex = null;
            while (mutex is null)
            {
                Assert.That(newcomers.Any(n => n.IsPausedAt(sim.NowUs + 1)) || live.Any(n => !n.IsPausedAt(sim.NowUs)), Is.False, "a newcomer's client holds a mutex before generation 2 resumes");
                foreach (var node in newcomers)
                {
                    sim.ClientActs(node);
                }

                sim.RunScriptFor(sim.ElectionTimeoutUs / 4);
                mutex = newcomers.SelectMany(sim.HeldLocks).FirstOrDefault(name => name.StartsWith('m'));
            }

            Assert.That(newcomers.All(n => n.GenerationNumber == 1), Is.True, "the newcomers founded generation 1 again");
            var apart = live.Select(n => n.Id).ToHashSet();
            sim.Lose(e => apart.Contains(e.From) != apart.Contains(e.To), "generation 2 and the newcomers cannot hear each other");
            if (lostAgain)
            {
                foreach (var node in newcomers)
                {
                    sim.Pause(node, frozenUs);
                }

                sim.StoreLosesItsValue();
            }

            sim.LoseConfirmAnswers(answerLost);
            foreach (var node in live)
            {
                sim.Resume(node);
            }

            if (answerLost)
            {
                sim.RunUntil(() => sim.StoreValue == 2, 2 * sim.ElectionTimeoutUs, "generation 2's leader writes the key");
                sim.LoseConfirmAnswers(false);
            }

            long until = sim.NowUs + (2 * leaseMs * 1000);
            while (sim.NowUs < until)
            {
                foreach (var node in live)
                {
                    sim.ClientActs(node);
                }

                sim.RunScriptFor(sim.ElectionTimeoutUs / 4);
            }
        }, leaseMs: leaseMs));
    }

    /// <summary>
    /// A leader tells a node it is no member only once the configuration without it has committed
    /// (NodeDriver.MaybeTellNotAMember): a node told so starts over with no log. Here the autopilot
    /// removes a voter paused past the member timeout, and the other voter's answers (and the entries
    /// sent to it) are lost while the
    /// removed one resumes and campaigns: the removal stays uncommitted (the leader may still lose it,
    /// and the removed voter's log and acknowledgements still count in the committed configuration).
    /// The simulator checks at every start-over that the committed configuration no longer holds the node.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_voter_is_told_it_is_removed_only_once_its_removal_has_committed(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        var (_, paused, _) = FormThreeVoters(sim);
        sim.Pause(paused, 3 * sim.MemberTimeoutUs);
        // The leader may change meanwhile (a late acknowledgement, check-quorum): the one that logs the removal counts.
        SimulatedNode? leader = null;
        sim.RunUntil(() => (leader = sim.Leader) is { } l && !l.Core!.Configuration.Contains(paused.Id), 3 * sim.MemberTimeoutUs, $"the leader logs the removal of {paused.Id}");
        var other = sim.Instances.Single(n => n != leader && n != paused);
        Assert.That(sim.CommittedConfiguration(leader!.Generation).Contains(paused.Id), "the removal is not committed yet");

        // Its answers, and the entries it would store (the leader and it are a majority of the new
        // configuration: storing the removal, it would know it committed).
        sim.Lose(
            e => e.From == other.Id || (e.To == other.Id && e.Message is Gaggle.Channels.RaftWireMessage { Message.Type: Gaggle.Raft.MessageType.Append }),
            $"{other.Id}'s answers and the entries sent to it are lost: the removal of {paused.Id} stays uncommitted");
        sim.Resume(paused);
        int resets = paused.Resets;
        sim.RunScriptFor(4 * sim.ElectionTimeoutUs);
        Assert.That(sim.CommittedConfiguration(leader.Generation).Contains(paused.Id), "the removal is still not committed");

        // Then either the removal commits and the node starts over, or a leader change lost the
        // uncommitted removal (the resumed voter may win an election) and it simply stays a voter.
        sim.Lose(null, $"{other.Id} is heard again");
        sim.RunUntil(() => sim.Formed(voters: 3) && (paused.Resets > resets || sim.CommittedConfiguration(paused.Generation).IsVoter(paused.Id)), 3 * sim.MemberTimeoutUs,
            $"{paused.Id} starts over as a new incarnation or stays a voter, and the cluster has three voters again");
    }));

    /// <summary>
    /// A new leader removes nobody during its first member timeout (Autopilot: RemoveDead waits it out,
    /// and IsAlive counts a member not heard yet from when the leader began to lead). A learner talks
    /// to the leader for sure (its acknowledgements to the other voters are a broadcast that may be lost),
    /// so a voter that takes over may never have heard it: removing the members it has not
    /// heard from at once would remove every live learner at each change of leader, and each, told so,
    /// would start over, losing its holds and jobs. Here the learner is heard by the leader only for a
    /// member timeout (its broadcast acknowledgements to the other voters are lost), then the leader
    /// pauses for a few election timeouts (a long garbage collection), another voter takes over, and the
    /// learner stays a member all along.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_new_leader_keeps_a_live_learner_it_has_not_heard_from_yet(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        FormThreeVoters(sim);
        var learner = sim.StartNewInstance();
        sim.RunUntil(() => sim.Formed(voters: 3) && sim.CommittedConfiguration(1).IsLearner(learner.Id), 20 * sim.MemberTimeoutUs, $"{learner.Id} joins as a learner");
        int resets = learner.Resets;

        // The voters have heard the learner's broadcast acknowledgements: lose them for a member timeout,
        // so that only the leader hears it (as if it acknowledged to the leader alone).
        sim.Lose(e => e.From == learner.Id && e.To != sim.Leader?.Id, $"only the leader hears {learner.Id}");
        sim.RunScriptFor(sim.MemberTimeoutUs + sim.ElectionTimeoutUs);
        sim.RunUntil(() => sim.Formed(voters: 3), 2 * sim.MemberTimeoutUs, "the cluster is settled");
        var leader = sim.Leader!;
        sim.Pause(leader, 4 * sim.ElectionTimeoutUs);
        sim.RunUntil(() => sim.Leader is { } next && next != leader, 4 * sim.ElectionTimeoutUs, $"another voter takes over from the paused {leader.Id}");
        sim.Lose(null, $"{learner.Id} is heard by all again");
        long until = sim.NowUs + sim.MemberTimeoutUs;
        sim.RunUntil(
            () => !sim.CommittedConfiguration(1).Contains(learner.Id) || learner.Resets != resets ? throw new AssertionException($"{learner.Id} was removed after the change of leader") : sim.NowUs >= until,
            2 * sim.MemberTimeoutUs, "a member timeout under the new leader");
        sim.RunUntil(() => sim.Formed(voters: 3), 2 * sim.MemberTimeoutUs, "the cluster settles with its learner");
        Assert.That(sim.CommittedConfiguration(1).IsLearner(learner.Id) && learner.Resets == resets, $"{learner.Id} is the same learner");
    }));

    /// <summary>
    /// From an odd number of voters the leader promotes only once two learners are ready (Autopilot.Balance):
    /// two voters tolerate no more failures than one, and while one of the two is dead nothing commits,
    /// not even its removal (a removal needs a majority of the current voters alive) or a promotion.
    /// Here the founder leads alone with one caught-up learner when a second instance joins; the first
    /// learner dies (killed, no graceful leave) before the second has caught up: the founder keeps
    /// committing. Promoted as soon as the second joined, the first learner would have left a two-voter
    /// cluster that never commits again while the founder lives.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_lone_voter_promotes_a_learner_only_when_a_second_is_ready_too(int seed) => Pass(Simulator.RunScript(seed, sim =>
    {
        var founder = sim.StartNewInstance();
        sim.RunUntil(() => sim.Formed(voters: 1), 20 * sim.MemberTimeoutUs, "the founder leads alone");
        var first = sim.StartNewInstance();
        sim.RunUntil(() => sim.Formed(voters: 1) && sim.CommittedConfiguration(1).IsLearner(first.Id), 20 * sim.MemberTimeoutUs, $"{first.Id} joins as a learner");
        sim.RunScriptFor(sim.Autopilot.StabilizationUs + (4 * sim.ElectionTimeoutUs));
        var second = sim.StartNewInstance();
        sim.RunUntil(() => sim.CommittedConfiguration(1).IsLearner(second.Id), 20 * sim.MemberTimeoutUs, $"{second.Id} joins as a learner");
        sim.RunScriptFor(sim.ElectionTimeoutUs / 2);

        sim.Stop(first);
        var committed = sim.Append(founder);
        sim.RunUntil(committed, 2 * sim.ElectionTimeoutUs, $"an append on {founder.Id} commits after {first.Id} died");
        Assert.That(sim.CommittedConfiguration(1).Voters, Is.EqualTo(new[] { founder.Id }), "the second learner was not ready yet: the founder stayed the only voter");
    }));

    /// <summary>
    /// A node waiting to found counts silence only while its own broadcasts come back
    /// (GenerationTracker, IEchoingChannel): a newcomer whose subscription is down from the start (it
    /// hears nothing, itself included) while its commands still reach Redis waits through three member
    /// timeouts beside a live cluster and founds nothing; once it hears again it joins the live cluster.
    /// Counting its deafness as silence, it would found a second generation beside the live one, whose
    /// leader it never hears: two leaders, each granting the same locks.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_newcomer_that_cannot_hear_itself_founds_nothing_beside_a_live_cluster(int seed) => Pass(Simulator.RunScript(seed, FastStore, sim =>
    {
        FormThreeVoters(sim);
        var deaf = sim.StartNewInstance();
        sim.Lose(e => e.To == deaf.Id, $"{deaf.Id}'s subscription is down: it hears nothing, not even itself");
        sim.RunScriptFor(3 * sim.MemberTimeoutUs);
        Assert.That(sim.Founded, Is.EqualTo(new[] { 1L }), "no generation founded beside the live one");

        sim.Lose(null, $"{deaf.Id} hears again");
        sim.RunUntil(() => sim.Formed(voters: 3) && sim.CommittedConfiguration(1).Contains(deaf.Id), 4 * sim.MemberTimeoutUs, $"{deaf.Id} joins the live generation");
        Assert.That(sim.Founded, Is.EqualTo(new[] { 1L }));
    }));

    /// <summary>
    /// A founder that heard a live member while its claim was on its way gives up the generation it won
    /// (GenerationTracker.Claimed): a newcomer whose subscription is down hears nothing for the member
    /// timeout and claims the next generation; the store answers slowly, and meanwhile the newcomer hears
    /// the live leader again. Its claim wins, but it founds nothing and joins the live cluster: a
    /// generation founded beside a live one would have a second leader trusting its leadership (the
    /// simulator checks that) and would then replace the live cluster, every member losing its state.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_claim_that_wins_after_the_live_leader_was_heard_founds_nothing(int seed) => Pass(Simulator.RunScript(seed, FastStore, sim =>
    {
        var newcomer = ClaimWhileTheLiveLeaderSpeaks(sim);
        sim.RunUntil(() => sim.Formed(voters: 3), 4 * sim.MemberTimeoutUs, $"{newcomer.Id} joins the live generation");
        Assert.That(sim.Founded, Is.EqualTo(new[] { 1L }), "no generation founded beside the live one");
    }));

    /// <summary>
    /// A node of no cluster adopts the generation of a leader it hears even below the one the store
    /// records, as long as it has heard no member of that one (GenerationTracker.Admit): here the store
    /// records a generation whose claim won but founded nothing (the scenario above, its claimant's
    /// release still on its way), and an instance started meanwhile reads it. It joins the live cluster; waiting for the recorded generation
    /// instead, it would take the live one for silence and found the next, replacing the live cluster.
    /// </summary>
    [TestCase(3)]
    [TestCase(8)]
    public void A_newcomer_joins_the_live_generation_below_the_one_the_store_records(int seed) => Pass(Simulator.RunScript(seed, FastStore, sim =>
    {
        sim.HoldReleases(true);
        ClaimWhileTheLiveLeaderSpeaks(sim);
        sim.RunScriptFor(sim.ElectionTimeoutUs);
        Assert.That(sim.StoreValue, Is.EqualTo(2), "the store records the generation claimed and never founded");

        var late = sim.StartNewInstance();
        sim.HoldReleases(false);
        sim.RunUntil(() => sim.Formed(voters: 3) && sim.CommittedConfiguration(1).Contains(late.Id), 4 * sim.MemberTimeoutUs, $"{late.Id} joins the live generation 1");
        sim.RunScriptFor(2 * sim.MemberTimeoutUs);
        Assert.That(sim.Founded, Is.EqualTo(new[] { 1L }), "no generation founded beside the live one");
        Assert.That(sim.Instances.Select(n => n.GenerationNumber), Is.All.EqualTo(1L));
    }));

    /// <summary>
    /// Two instances form generation 1; a third starts hearing nothing of them (their messages to it are
    /// lost, while its own broadcasts still come back to it, as if the two published through a part of a
    /// Redis cluster cut off from its own; it reaches the store) and claims generation 2 after the member
    /// timeout; the store then answers
    /// nothing until its subscription is back and it has heard a member of generation 1 (before the
    /// leader has added it: it still belongs to no cluster when the claim's result comes).
    /// </summary>
    private static SimulatedNode ClaimWhileTheLiveLeaderSpeaks(Simulator sim)
    {
        sim.StartNewInstance();
        sim.StartNewInstance();
        sim.RunUntil(() => sim.Formed(voters: 1), 20 * sim.MemberTimeoutUs, "two instances form generation 1");
        var newcomer = sim.StartNewInstance();
        sim.Lose(e => e.To == newcomer.Id && e.From != newcomer.Id, $"{newcomer.Id} hears nothing of the cluster (only itself)");
        sim.RunUntil(() => sim.ClaimPendingBy(newcomer), 3 * sim.MemberTimeoutUs, $"{newcomer.Id} claims generation 2");
        sim.SlowStore(3 * sim.ElectionTimeoutUs);
        bool heard = false;
        sim.Lose(e =>
        {
            heard |= e.To == newcomer.Id && e.From != newcomer.Id && sim.CommittedConfiguration(1).Contains(e.From);
            return false;
        }, $"{newcomer.Id}'s subscription is back");
        sim.RunUntil(() => heard, 2 * sim.ElectionTimeoutUs, $"{newcomer.Id} hears a member of generation 1");
        sim.Lose(null, "(watching ends)");
        sim.SlowStore(0);
        sim.RunUntil(() => !sim.ClaimPendingBy(newcomer), sim.ElectionTimeoutUs, "the claim reaches the store");
        Assert.That(sim.StoreValue, Is.EqualTo(2), "the claim won");
        return newcomer;
    }

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
