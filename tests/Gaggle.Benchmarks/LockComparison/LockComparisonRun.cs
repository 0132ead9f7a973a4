using System.Globalization;
using StackExchange.Redis;

namespace Gaggle.Benchmarks.LockComparison;

/// <summary>
/// The lock comparison (<c>--locks</c>): against one Redis, in one run, acquire + release pairs of a raw
/// SET NX + compare-and-delete lock, DistributedLock.Redis, RedLock.net and a Gaggle cluster (clients
/// spread over its nodes, and all on its leader), for each row of <see cref="Rows"/>. Every cell lasts
/// <see cref="LoadSettings.CellSeconds"/>; within a row the implementations run one after another, so
/// a change in the machine's background load shows across rows more than across columns.
/// </summary>
internal static class LockComparisonRun
{
    /// <summary>1, 16 and 64 clients on names of their own, then 16 clients on 4 names (4 contenders per name).</summary>
    public static readonly LockCellShape[] Rows = [new(1, 1), new(16, 16), new(64, 64), new(16, 4)];

    /// <summary>A short untimed cell per implementation first, so the first measured cell does not pay for JIT and connection warm-up.</summary>
    private static readonly TimeSpan WarmUp = TimeSpan.FromMilliseconds(300);

    public static async Task<LockComparisonReport> RunAsync(LoadSettings settings)
    {
        double? loadBefore = LoadAverage();
        var cell = TimeSpan.FromSeconds(settings.CellSeconds);
        string configuration = settings.Redis!;
        string run = Guid.NewGuid().ToString("N")[..8];

        LoadRun.Phase("baseline PUBLISH -> subscriber", cell);
        var publish = await RedisBaselines.PublishRoundTripAsync(configuration, cell);
        LoadRun.Phase("baseline PUBLISH to two subscribers, the first answer back", cell);
        var commitFloor = await RedisBaselines.PublishToTwoAndFirstAnswerAsync(configuration, cell);

        var (cluster, _) = await BenchCluster.StartAsync(settings, TimeSpan.FromSeconds(15));
        await using (cluster)
        await using (var rawConnection = await ConnectionMultiplexer.ConnectAsync(configuration))
        await using (var distributedLockConnection = await ConnectionMultiplexer.ConnectAsync(configuration))
        await using (var redLockConnection = await ConnectionMultiplexer.ConnectAsync(configuration))
        await using (var statsConnection = await ConnectStatsAsync(configuration))
        {
            using var redLock = new RedLockNetLock(redLockConnection);
            ILockUnderTest[] implementations =
            [
                new RawSetNxLock(rawConnection.GetDatabase()),
                new DistributedLockRedisLock(distributedLockConnection.GetDatabase()),
                redLock,
                new GaggleLocksUnderTest(cluster, leaderOnly: false),
                new GaggleLocksUnderTest(cluster, leaderOnly: true),
            ];
            var redis = statsConnection.GetServer(statsConnection.GetEndPoints()[0]);
            foreach (var locks in implementations)
            {
                await locks.PrepareAsync();
                await LockCell.RunAsync(locks, new LockCellShape(4, 4), $"gaggle-bench-locks:{run}:warm-up:{locks.Key}", WarmUp, redis);
            }

            // The commits to compare the locks' latencies with (a lock acquire or release is one commit),
            // measured after the warm-up so that neither pays for JIT.
            var phases = new LoadPhases(cluster, settings);
            var leader = await cluster.AgreedLeaderAsync(TimeSpan.FromSeconds(10), previousTerm: 0);
            await cluster.SettleAsync();
            LoadRun.Phase($"one append at a time from the leader {leader.Id}", cell);
            var leaderCommit = await phases.SequentialAppendsAsync(leader, cell);
            var follower = cluster.Running.First(n => n != leader);
            await cluster.SettleAsync();
            LoadRun.Phase($"one append at a time from the follower {follower.Id}", cell);
            var followerCommit = await phases.SequentialAppendsAsync(follower, cell);

            var cells = new List<LockCellResult>();
            foreach (var shape in Rows)
            {
                foreach (var locks in implementations)
                {
                    await locks.PrepareAsync();
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    LoadRun.Phase($"locks: {locks.Title}, {shape.Describe}", cell);
                    string prefix = $"gaggle-bench-locks:{run}:{shape.Clients}-{shape.Names}:{locks.Key}";
                    var result = await LockCell.RunAsync(locks, shape, prefix, cell, redis);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {result.PairsPerSecond:0} pairs/s, acquire p50 {result.Acquire.Percentile(50):0.000} ms p99 {result.Acquire.Percentile(99):0.000} ms, release p50 {result.Release.Percentile(50):0.000} ms"));
                    cells.Add(result);
                }
            }

            return new LockComparisonReport
            {
                Nodes = cluster.Nodes.Count,
                Mode = settings.Mode,
                CellSeconds = settings.CellSeconds,
                LoadAverageBefore = loadBefore,
                LoadAverageAfter = LoadAverage(),
                PublishRoundTrip = publish,
                CommitFloor = commitFloor,
                LeaderCommit = leaderCommit,
                FollowerCommit = followerCommit,
                Implementations = [.. implementations.Select(i => (i.Key, i.Title))],
                Cells = cells,
                SetupErrors = phases.Errors,
            };
        }
    }

    /// <summary>A connection of its own for the server's counters; StackExchange.Redis lets <c>INFO</c> through only in admin mode.</summary>
    private static async Task<ConnectionMultiplexer> ConnectStatsAsync(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AllowAdmin = true;
        return await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
    }

    /// <summary>The 1-minute load average (Linux), or null.</summary>
    private static double? LoadAverage()
    {
        try
        {
            string first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
