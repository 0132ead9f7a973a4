using System.Collections.Concurrent;
using System.Diagnostics;
using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Seeded simulations of 3 and 5 nodes whose callers mostly use locks, semaphores and a reader-writer lock, alone or several at once (see
/// <see cref="Simulator"/> with <see cref="Workload.Locks"/>): the lock tables of the drivers that ship,
/// under drifting clocks and chaos, checked after every applied command and client observation (see
/// <see cref="LockHistoryChecker"/>), along with Raft's safety properties. GAGGLE_SIM_SEEDS sets how
/// many seeds each test runs (default 250); GAGGLE_SIM_SEED=n replays one. A failure names the seed
/// and step and shows the last steps.
/// </summary>
[TestFixture]
[Category("Simulation")]
public sealed class LockSimulationTests
{
    [Test]
    public void ThreeNodeLockTablesStaySafe() => RunSeeds(3);

    [Test]
    public void FiveNodeLockTablesStaySafe() => RunSeeds(5);

    /// <summary>Elastic clusters of 1 to 5 instances: generations, their hold-offs and their tokens, under the lock workload.</summary>
    [Test]
    public void ElasticLockTablesStaySafe() => RunSeeds(seed => ClusterShape.ElasticOf(1 + (seed % 5)));

    /// <summary>A member list: restarted processes keep their member ids, so their earlier processes' waits must be seen ending.</summary>
    private static void RunSeeds(int size) => RunSeeds(_ => new ClusterShape(size, Discovery: false), restartsKeepIds: true);

    private static void RunSeeds(Func<int, ClusterShape> shapeOf, bool restartsKeepIds = false)
    {
        var seeds = RaftSimulationTests.Seeds();
        var failures = new ConcurrentBag<SimulationFailure>();
        var results = new ConcurrentBag<(int Seed, SimulationResult Result)>();
        var stopwatch = Stopwatch.StartNew();
        Parallel.ForEach(seeds, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, seed =>
        {
            var result = Simulator.Run(seed, shapeOf(seed), Workload.Locks);
            results.Add((seed, result));
            if (result.Failure is not null)
            {
                failures.Add(result.Failure);
            }
        });

        long Sum(Func<LockSimStats, long> of) => results.Sum(r => of(r.Result.Locks));
        var fewest = results.MinBy(r => r.Result.Locks.Granted);
        TestContext.Out.WriteLine(
            $"{seeds.Count} seeds in {stopwatch.Elapsed.TotalSeconds:F1} s: {results.Sum(r => r.Result.Stats.Steps)} steps, {results.Sum(r => r.Result.Stats.SimulatedUs) / 1_000_000} simulated s, "
            + $"{results.Sum(r => r.Result.Stats.Leaders)} leader terms; {Sum(s => s.Granted)} grants ({Sum(s => s.GrantedFromQueue)} from a queue, longest queue "
            + $"{results.Max(r => r.Result.Locks.LongestQueue)}), {Sum(s => s.Released)} released, {Sum(s => s.Expired)} expired, {Sum(s => s.Renewed)} renewed, "
            + $"{Sum(s => s.TriesDenied)} try-once denied, {Sum(s => s.WaitsTimedOut)} waits timed out, {Sum(s => s.Cancelled)} cancelled, "
            + $"{Sum(s => s.Rejected)} rejected, {Sum(s => s.WaitsOfEarlierIncarnations)} waits of a restarted node's earlier process ended, reader-writer grants: {Sum(s => s.ReaderWriterGrants[0])} for reading (up to {results.Max(r => r.Result.Locks.MostReadersTogether)} readers at once) "
            + $"and {Sum(s => s.ReaderWriterGrants[1])} for writing, {Sum(s => s.ClientGrants)} grants seen by clients, {Sum(s => s.ContendedBeliefs)} shared semaphore beliefs, {Sum(s => s.LostOnArrival)} handles lost on arrival; "
            + $"multi-lock requests: {Sum(s => s.GroupGrants)} granted ({Sum(s => s.GroupGrantsFromQueue)} from their queues, up to {results.Max(r => r.Result.Locks.LargestGroupGranted)} locks), "
            + $"{Sum(s => s.GroupsQueued)} queued, {Sum(s => s.GroupTriesDenied)} try-once denied, {Sum(s => s.GroupWaitsTimedOut)} waits timed out, {Sum(s => s.GroupsCancelled)} cancelled, "
            + $"{Sum(s => s.GroupsRejected)} rejected, {Sum(s => s.GrantsPastSets)} grants past waiting ones, {Sum(s => s.ArrivalOrderChecks)} arrival-order checks, {Sum(s => s.ClientGroupGrants)} seen by clients ({Sum(s => s.ClientGroupConfirmations)} confirmed by renewals after a long wait); "
            + $"{results.Sum(r => r.Result.Stats.Storage.Snapshots)} snapshots, {results.Sum(r => r.Result.Stats.Storage.Installs)} installed; "
            + $"fewest grants in a seed: {fewest.Result.Locks.Granted} (seed {fewest.Seed})");
        TestContext.Out.WriteLine(RaftSimulationTests.Sum(results.Select(r => r.Result.Linearizability)).ToString());

        if (!failures.IsEmpty)
        {
            var ordered = failures.OrderBy(f => f.Seed).ToArray();
            var first = Simulator.RunAndExplain(ordered[0].Seed, shapeOf(ordered[0].Seed), Workload.Locks) ?? ordered[0];
            string others = ordered.Length == 1 ? "" : $"{Environment.NewLine}{ordered.Length} failing seeds: {string.Join(", ", ordered.Take(30).Select(f => f.Seed))}";
            Assert.Fail(first.Report() + others);
        }

        // A run that grants nothing checks nothing.
        Assert.That(Sum(s => s.Granted), Is.GreaterThan(0), "no lock was granted in any seed");
        Assert.That(Sum(s => s.ClientGrants), Is.GreaterThan(0), "no client ever held a lock");
        Assert.That(Sum(s => s.ReaderWriterGrants[0]), Is.GreaterThan(0), "no reader-writer lock was granted for reading");
        Assert.That(Sum(s => s.ReaderWriterGrants[1]), Is.GreaterThan(0), "no reader-writer lock was granted for writing");
        Assert.That(results.Max(r => r.Result.Locks.MostReadersTogether), Is.GreaterThan(1), "readers never shared a reader-writer lock");
        Assert.That(Sum(s => s.GroupGrants), Is.GreaterThan(0), "no multi-lock request was granted");
        Assert.That(Sum(s => s.GroupGrantsFromQueue), Is.GreaterThan(0), "no multi-lock request was granted after waiting");
        Assert.That(Sum(s => s.GroupsQueued), Is.GreaterThan(0), "no multi-lock request waited");
        Assert.That(Sum(s => s.GroupTriesDenied), Is.GreaterThan(0), "no multi-lock request that tried once was denied");
        Assert.That(Sum(s => s.GroupWaitsTimedOut) + Sum(s => s.GroupsCancelled), Is.GreaterThan(0), "no multi-lock request's wait ran out or was cancelled");
        Assert.That(Sum(s => s.ClientGroupGrants), Is.GreaterThan(0), "no client ever held several locks at once");
        Assert.That(Sum(s => s.GrantsPastSets), Is.GreaterThan(0), "no request was granted past a waiting multi-lock request");
        var elastic = results.Select(r => r.Result.Elastic).OfType<ElasticSimStats>().ToList();
        if (elastic.Count > 0)
        {
            TestContext.Out.WriteLine($"{elastic.Sum(e => e.Forced)} generations forced on a stranded survivor in {elastic.Count(e => e.Forced > 0)} seeds{RaftSimulationTests.ForcedIn(results.Where(r => r.Result.Elastic?.Forced > 0).Select(r => r.Seed))}, {elastic.Sum(e => e.StrandedStopped)} stranded instances stopped");
            if (elastic.Count >= RaftSimulationTests.MinSeedsToForce)
            {
                Assert.That(elastic.Sum(e => e.Forced), Is.GreaterThan(0), "no seed forced a new generation on a stranded voter: the forced path went unchecked");
            }
        }

        if (restartsKeepIds)
        {
            Assert.That(Sum(s => s.WaitsOfEarlierIncarnations), Is.GreaterThan(0), "no restarted process ended its earlier process's waits");
        }
    }
}
