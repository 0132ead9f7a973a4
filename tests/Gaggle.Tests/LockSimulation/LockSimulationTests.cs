using System.Collections.Concurrent;
using System.Diagnostics;
using NUnit.Framework;

namespace Gaggle.Tests.LockSimulation;

/// <summary>
/// Seeded simulations of the replicated lock table on 3 and 5 nodes under chaos (see
/// <see cref="LockSimulator"/>), checked after every applied command and client observation (see
/// <see cref="LockHistoryChecker"/>). GAGGLE_SIM_SEEDS sets how many seeds each test runs (default
/// 300); GAGGLE_SIM_SEED=n replays one. A failure names the seed and step and shows the last steps.
/// </summary>
[TestFixture]
[Category("Simulation")]
public sealed class LockSimulationTests
{
    private const int DefaultSeedCount = 300;

    [Test]
    public void ThreeNodeLockTablesStaySafe() => RunSeeds(3);

    [Test]
    public void FiveNodeLockTablesStaySafe() => RunSeeds(5);

    private static IReadOnlyList<int> Seeds()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("GAGGLE_SIM_SEED"), out int only))
        {
            return [only];
        }

        int count = int.TryParse(Environment.GetEnvironmentVariable("GAGGLE_SIM_SEEDS"), out int n) && n > 0 ? n : DefaultSeedCount;
        return Enumerable.Range(1, count).ToArray();
    }

    private static void RunSeeds(int size)
    {
        var seeds = Seeds();
        var failures = new ConcurrentBag<LockSimFailure>();
        var results = new ConcurrentBag<LockSimResult>();
        var stopwatch = Stopwatch.StartNew();
        Parallel.ForEach(seeds, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, seed =>
        {
            var result = LockSimulator.Run(seed, size);
            results.Add(result);
            if (result.Failure is not null)
            {
                failures.Add(result.Failure);
            }
        });

        long Sum(Func<LockSimStats, long> of) => results.Sum(r => of(r.Stats));
        TestContext.Out.WriteLine(
            $"{seeds.Count} seeds in {stopwatch.Elapsed.TotalSeconds:F1} s: {results.Sum(r => r.Steps)} steps, {results.Sum(r => r.SimulatedUs) / 1_000_000} simulated s, "
            + $"{results.Sum(r => r.LeaderTerms)} leader terms; {Sum(s => s.Granted)} grants ({Sum(s => s.GrantedFromQueue)} from a queue, longest queue "
            + $"{results.Max(r => r.Stats.LongestQueue)}), {Sum(s => s.Released)} released, {Sum(s => s.Expired)} expired, {Sum(s => s.Renewed)} renewed, "
            + $"{Sum(s => s.TriesDenied)} try-once denied, {Sum(s => s.WaitsTimedOut)} waits timed out, {Sum(s => s.Cancelled)} cancelled, "
            + $"{Sum(s => s.Rejected)} rejected, {Sum(s => s.ClientGrants)} grants seen by clients, {Sum(s => s.ContendedBeliefs)} shared semaphore beliefs, {Sum(s => s.LostOnArrival)} handles lost on arrival; "
            + $"fewest grants in a seed: {results.Min(r => r.Stats.Granted)}");

        if (!failures.IsEmpty)
        {
            var ordered = failures.OrderBy(f => f.Seed).ToArray();
            var first = LockSimulator.RunAndExplain(ordered[0].Seed, size) ?? ordered[0];
            string others = ordered.Length == 1 ? "" : $"{Environment.NewLine}{ordered.Length} failing seeds: {string.Join(", ", ordered.Take(30).Select(f => f.Seed))}";
            Assert.Fail(first.Report() + others);
        }
    }
}
