using System.Collections.Concurrent;
using System.Diagnostics;
using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Seeded simulations of whole clusters of the node drivers that ship (see <see cref="Simulator"/>),
/// with callers appending and using locks (Raft §5: Election Safety, Log Matching, Leader Completeness,
/// State Machine Safety after every step; exactly-once application of acknowledged appends; the lock
/// rules; progress once the network heals; at the end, that what the callers saw is linearizable).
/// Seeds draw snapshots and compaction, FlushPolicy.None storage whose crashes lose unflushed batches,
/// and nodes that lose their storage entirely (restarting with StartRejoining, the documented procedure).
/// In the three- and five-node tests one seed in three runs membership changes instead (see
/// <see cref="ClusterShape.ForSeed"/>): from 1 to 5 initial voters, nodes joining, promoted, removed
/// (the leader too) and leadership handed over, up to 7 members and back down to one voter; a quarter of
/// those leave the changes to the leaders' autopilot while nodes join, stop for good and pause, and a
/// quarter run elastic mode (no member list: instances with new ids start, die, are redeployed and all go
/// at once, forming cluster generations through a shared store; see Simulator.Elastic.cs).
/// GAGGLE_SIM_SEEDS sets how many seeds each test runs (default 250); GAGGLE_SIM_SEED=n replays one.
/// GAGGLE_SIM_AMNESIA=1 also runs the variant where such nodes restart without StartRejoining and rely
/// on automatic detection alone, which is known to break safety. A test of its own drops the default's
/// assumptions about what was sent and counted before a loss (see <see cref="LossModel"/>).
/// Seeds run in parallel; each is independent and deterministic.
/// </summary>
[TestFixture]
[Category("Simulation")]
public sealed class RaftSimulationTests
{
    private const int DefaultSeedCount = 250;

    /// <summary>At least this many elastic seeds must force a generation at least once (one seed in 20 to 50 does).</summary>
    internal const int MinSeedsToForce = 200;

    [Test]
    public void ThreeNodeClusterStaysSafeAndMakesProgress() => RunSeeds(seed => ClusterShape.ForSeed(seed, 3));

    [Test]
    public void FiveNodeClusterStaysSafeAndMakesProgress() => RunSeeds(seed => ClusterShape.ForSeed(seed, 5));

    /// <summary>
    /// Elastic mode, what an app configured with only Redis and a cluster name runs, on every seed (the
    /// two runs above give it one seed in twelve): instances of 1 to 5 at the start, then joining,
    /// leaving, dying, pausing past the member timeout, all going at once, the store slow or failing.
    /// </summary>
    [Test]
    public void ElasticClusterStaysSafeAndMakesProgress() => RunSeeds(seed => ClusterShape.ElasticOf(1 + seed % 5));

    [Test]
    public void DiscoveryModeClusterStaysSafeAndMakesProgress() => RunSeeds(seed => new ClusterShape(seed % 2 == 0 ? 3 : 5, Discovery: true));

    /// <summary>
    /// Lost storage noticed only from a leader's heartbeat: before that heartbeat arrives, the
    /// amnesiac node votes and acknowledges as if it had never run, so it can grant a second vote in a
    /// term or help elect a leader that lacks committed entries. Expected to fail; off by default.
    /// </summary>
    [Test]
    public void LostStorageWithAutomaticDetectionOnly()
    {
        if (Environment.GetEnvironmentVariable("GAGGLE_SIM_AMNESIA") != "1")
        {
            Assert.Ignore("Set GAGGLE_SIM_AMNESIA=1 to run it: automatic detection alone is known to break safety.");
        }

        RunSeeds(seed => new ClusterShape(seed % 2 == 0 ? 3 : 5, Discovery: false), new LossModel(LostStorageRestart.AutomaticDetection));
    }

    /// <summary>
    /// Lost storage with StartRejoining under the full asynchronous adversary (see <see cref="LossModel"/>):
    /// messages from before the loss delivered after the restart (to and from the node's new run), and
    /// another node losing data while a leader still counts acknowledgements the first one lost. Runs of
    /// a node are told apart (RaftConfig.Incarnation; Raft.RejoinLateMessageTests scripts the races it
    /// found before: an old acknowledgement counted after the new run caught up, an old heartbeat's
    /// catch-up target taken by the new run). It runs the first third of the seeds (83 by default, to
    /// keep the whole test run within its time), a thousand with GAGGLE_SIM_SEEDS=3000.
    /// </summary>
    [Test]
    public void LostStorageRacingWhatWasSentAndCountedBeforeTheLoss()
    {
        RunSeeds(seed => new ClusterShape(seed % 2 == 0 ? 3 : 5, Discovery: false), new LossModel(Races: true), shareOfSeeds: 3);
    }

    /// <summary>
    /// Elastic runs whose adversary keeps live generations unheard for longer than the founding wait (see
    /// <see cref="ClusterShape.UnheardGenerations"/>): every member of a generation paused past the
    /// member timeout, cuts from the hub that last until healed. Newcomers then found a generation while
    /// an older one lives on; the generation fence (Runtime.GenerationFence) keeps the two from trusting
    /// their leadership at once or granting the same lock.
    /// </summary>
    [Test]
    public void ElasticGenerationsUnheardPastTheFoundingWait()
    {
        RunSeeds(seed => ClusterShape.ElasticOf(1 + seed % 5, unheardGenerations: true));
    }

    /// <summary>The first seeds that forced a generation, to replay (GAGGLE_SIM_SEED).</summary>
    internal static string ForcedIn(IEnumerable<int> seeds)
        => seeds.Any() ? $" [{string.Join(", ", seeds.Order().Take(12))}{(seeds.Count() > 12 ? ", ..." : "")}]" : "";

    internal static IReadOnlyList<int> Seeds()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("GAGGLE_SIM_SEED"), out int only))
        {
            return [only];
        }

        int count = int.TryParse(Environment.GetEnvironmentVariable("GAGGLE_SIM_SEEDS"), out int n) && n > 0 ? n : DefaultSeedCount;
        return Enumerable.Range(1, count).ToArray();
    }

    /// <summary>The linearizability checks of many runs, added up.</summary>
    internal static LinearizabilityStats Sum(IEnumerable<LinearizabilityStats> runs)
    {
        var total = new LinearizabilityStats();
        foreach (var run in runs)
        {
            total.Add(run);
        }

        return total;
    }

    /// <param name="shareOfSeeds">Runs the first 1/shareOfSeeds of <see cref="Seeds"/> (a replayed seed always).</param>
    private static void RunSeeds(Func<int, ClusterShape> shapeOf, LossModel? loss = null, int shareOfSeeds = 1)
    {
        var seeds = Seeds();
        seeds = seeds.Count == 1 ? seeds : seeds.Take(Math.Max(1, seeds.Count / shareOfSeeds)).ToArray();
        var failures = new ConcurrentBag<SimulationFailure>();
        var stats = new ConcurrentBag<SimulationStats>();
        var membership = new ConcurrentBag<MembershipSimStats>();
        var elastic = new ConcurrentBag<ElasticSimStats>();
        var forcedSeeds = new ConcurrentBag<int>();
        var linearizability = new ConcurrentBag<LinearizabilityStats>();
        long waitsOfRemovedNodes = 0;
        var stopwatch = Stopwatch.StartNew();
        Parallel.ForEach(seeds, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, seed =>
        {
            var shape = shapeOf(seed);
            var result = Simulator.Run(seed, shape, loss: loss);
            stats.Add(result.Stats);
            linearizability.Add(result.Linearizability);
            if (result.Elastic is { } generations)
            {
                elastic.Add(generations);
                if (generations.Forced > 0)
                {
                    forcedSeeds.Add(seed);
                }

                Interlocked.Add(ref waitsOfRemovedNodes, result.Locks.WaitsOfRemovedNodes);
            }
            else if (shape.Membership)
            {
                membership.Add(result.Membership);
            }

            if (result.Failure is not null)
            {
                failures.Add(result.Failure);
            }
        });

        TestContext.Out.WriteLine(
            $"{seeds.Count} seeds in {stopwatch.Elapsed.TotalSeconds:F1} s: {stats.Sum(s => s.Steps)} steps, {stats.Sum(s => s.Delivered)} deliveries, "
            + $"{stats.Sum(s => s.Leaders)} elected leaders, {stats.Sum(s => s.Restarts)} restarts, {stats.Sum(s => (long)s.Committed)} entries committed "
            + $"(fewest in a seed: {stats.Min(s => s.Committed)}), {stats.Sum(s => (long)s.Acknowledged)} appends acknowledged; {stats.Aggregate(default(StorageStats), (sum, s) => sum + s.Storage)}");
        TestContext.Out.WriteLine(Sum(linearizability).ToString());
        if (!membership.IsEmpty)
        {
            TestContext.Out.WriteLine(
                $"{membership.Count} membership seeds: {membership.Sum(m => m.Joined)} nodes joined, {membership.Sum(m => m.Proposed)} changes proposed "
                + $"(refused for now and retried: {string.Join(", ", Enum.GetValues<Gaggle.Raft.ConfigChangeOutcome>().Select(o => (o, n: membership.Sum(m => m.Refused[(int)o]))).Where(r => r.n > 0).Select(r => $"{r.n} {r.o}"))}), {membership.Sum(m => m.Applied)} configurations applied, {membership.Sum(m => m.Retired)} nodes retired; "
                + $"{membership.Sum(m => m.VotersAdded)} voters added and {membership.Sum(m => m.VotersRemoved)} removed, seeds that did both: {membership.Count(m => m.VotersAdded > 0 && m.VotersRemoved > 0)}, "
                + $"seeds that reached {ClusterShape.MaxMembers} voters: {membership.Count(m => m.MaxVoters == ClusterShape.MaxMembers)}, "
                + $"that went from {ClusterShape.MaxMembers} voters down to 1: {membership.Count(m => m.MaxVoters == ClusterShape.MaxMembers && m.MinVoters == 1)}");
        }

        var autopilot = membership.Where(m => m.Autopilot).ToArray();
        if (autopilot.Length > 0)
        {
            TestContext.Out.WriteLine(
                $"{autopilot.Length} of them autopilot seeds: {autopilot.Sum(m => m.Joined)} nodes started to join, {autopilot.Sum(m => m.Stopped)} stopped for good, "
                + $"{autopilot.Sum(m => m.Paused)} paused; {autopilot.Sum(m => m.Applied)} configurations applied: {autopilot.Sum(m => m.MembersAdded)} members added, "
                + $"{autopilot.Sum(m => m.MembersRemoved)} removed, {autopilot.Sum(m => m.Promoted)} promotions, {autopilot.Sum(m => m.Demoted)} demotions");
        }

        if (!elastic.IsEmpty)
        {
            TestContext.Out.WriteLine(
                $"{elastic.Count} elastic seeds: {elastic.Sum(e => e.Started)} instances started, {elastic.Sum(e => e.Died)} died, {elastic.Sum(e => e.Redeployed)} redeployed, "
                + $"{elastic.Sum(e => e.Outages)} outages, {elastic.Sum(e => e.HubOutages)} Redis outages, {elastic.Sum(e => e.Leaves)} graceful leaves ({elastic.Sum(e => e.LeavesDone)} removed in time); {elastic.Sum(e => e.Founded)} generations founded ({elastic.Sum(e => e.FoundedAgain)} with a number the store had lost, {elastic.Sum(e => e.FoundedBesideALiveOne)} of them beside a live one of that number, "
                + $"the highest {elastic.Max(e => e.HighestGeneration)}), {elastic.Sum(e => e.GenerationsCommitted)} committed something, {elastic.Sum(e => e.Resets)} nodes reset by a newer one; "
                + $"stranded clusters: {elastic.Sum(e => e.Forced)} generations forced on a survivor in {elastic.Count(e => e.Forced > 0)} seeds{ForcedIn(forcedSeeds)} ({elastic.Sum(e => e.ForcesRefused)} refused by the store), {elastic.Sum(e => e.StrandedStopped)} stranded instances stopped; "
                + $"store: {elastic.Sum(e => e.Store.Claims)} claims ({elastic.Sum(e => e.Store.ClaimsWon)} won), {elastic.Sum(e => e.Store.Failed)} operations failed, "
                + $"{elastic.Sum(e => e.Store.Lost)} values lost, {elastic.Sum(e => e.Store.Restored)} restored by a leader's confirmation ({elastic.Sum(e => e.Store.Confirms)} confirmations), {elastic.Sum(e => e.Store.Released)} claims given back; "
                + $"admissions: {elastic.Sum(e => e.StaleAdmissionRefused)} forwards refused as sent before a removal, {elastic.Sum(e => e.GivenUpOnReadmission)} appends given up on a readmission, "
                + $"at most {elastic.Max(e => e.MostOriginsRemembered)} origins in a duplicate table at the end of a seed; {waitsOfRemovedNodes} lock waits of removed nodes ended");
        }

        if (!failures.IsEmpty)
        {
            var ordered = failures.OrderBy(f => f.Seed).ToArray();
            var first = Simulator.RunAndExplain(ordered[0].Seed, ordered[0].Shape, loss: loss) ?? ordered[0];
            string others = ordered.Length == 1 ? "" : $"{Environment.NewLine}{ordered.Length} failing seeds: {string.Join(", ", ordered.Take(30).Select(f => f.Seed))}";
            Assert.Fail(first.Report() + others);
        }

        Assert.That(stats.Sum(s => (long)s.Acknowledged), Is.GreaterThan(0), "no append was acknowledged in any seed: the run checked nothing");
        if (elastic.Count >= MinSeedsToForce)
        {
            Assert.That(elastic.Sum(e => e.Forced), Is.GreaterThan(0), "no seed forced a new generation on a stranded voter: the forced path went unchecked");
        }
    }
}
