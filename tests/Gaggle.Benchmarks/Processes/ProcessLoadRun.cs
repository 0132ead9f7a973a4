using System.Diagnostics;

namespace Gaggle.Benchmarks.Processes;

/// <summary>
/// The cluster's part of the load run with <c>--processes</c>: the same phases, shares and figures as
/// <see cref="LoadRun"/>, with each node in its own process. A phase that runs on every node runs on
/// every node process at once; the driver adds up their counts and merges their latency samples.
/// </summary>
internal static class ProcessLoadRun
{
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(10);

    public static async Task<LoadReport> RunAsync(LoadSettings settings, BaselineFigures baselines)
    {
        var duration = TimeSpan.FromSeconds(settings.DurationSeconds);
        TimeSpan Share(double fraction) => duration * fraction;
        var (cluster, electionMs) = await ProcessCluster.StartAsync(settings, TimeSpan.FromSeconds(15));
        await using (cluster)
        {
            async Task Settled(string name, TimeSpan window)
            {
                await cluster.SettleAsync();
                LoadRun.Phase(name, window);
            }

            var leader = cluster[(await cluster.AgreedLeaderAsync(OperationTimeout, previousTerm: 0)).Id];
            var follower = cluster.Running.First(n => n != leader);

            await Settled($"throughput, {settings.AppendsInFlightPerNode} appends in flight per node process", Share(0.3));
            var throughput = await ThroughputAsync(cluster, Share(0.3), settings.AppendsInFlightPerNode);
            await Settled($"one append at a time from the leader {leader.Id}", Share(0.1));
            var leaderLatency = await SamplesAsync(leader, NodeProtocol.Appends, Share(0.1));
            await Settled($"one append at a time from the follower {follower.Id}", Share(0.1));
            var followerLatency = await SamplesAsync(follower, NodeProtocol.Appends, Share(0.1));
            await Settled($"locks, {settings.LockClients} clients", Share(0.2));
            double lockOps = await LockOpsPerSecondAsync(cluster, Share(0.2), settings.LockClients);
            await Settled("uncontended lock acquire on the leader", Share(0.1));
            var lockLatency = await SamplesAsync(leader, NodeProtocol.LockLatency, Share(0.1));
            await Settled($"failover: {ProcessCluster.StopMethod}", TimeSpan.Zero);
            double failoverMs = await FailoverAsync(cluster, leader);

            long errors = await cluster.ErrorsAsync();
            var measured = new MeasuredPhases(throughput, leaderLatency, followerLatency, lockOps, lockLatency, electionMs, failoverMs,
                ProcessCluster.StopMethod, cluster.PeakRssMb, errors);
            return LoadReport.From(settings, baselines, measured, nodesInProcesses: true);
        }
    }

    /// <summary>
    /// Every node process runs its append loops at once; commits, CPU and allocations add up. PUBLISHes
    /// are counted from before the start until every process has drained (its reply), as in-process.
    /// </summary>
    private static async Task<ThroughputResult> ThroughputAsync(ProcessCluster cluster, TimeSpan window, int appendsInFlight)
    {
        long publishedBefore = await cluster.RedisPublishedAsync();
        var command = new NodeCommand(NodeProtocol.Throughput, window.TotalSeconds, Count: appendsInFlight);
        var counts = ThroughputCounts.Sum(await Task.WhenAll(cluster.Running.Select(n => n.SendAsync<ThroughputCounts>(command))));
        long published = await cluster.RedisPublishedAsync() - publishedBefore;
        return (counts with { Published = published }).ToResult(window);
    }

    /// <summary>Latency samples taken on one node process (one append or one lock acquire at a time).</summary>
    private static async Task<Latencies> SamplesAsync(NodeProcess node, string op, TimeSpan window)
    {
        var samples = await node.SendAsync<Samples>(new NodeCommand(op, window.TotalSeconds));
        var latencies = new Latencies();
        latencies.AddMilliseconds(samples.Ms);
        return latencies;
    }

    /// <summary>
    /// The lock clients split over the node processes in contiguous ranges of client numbers (each
    /// client's lock names carry its number, so no two contend), all running at once.
    /// </summary>
    private static async Task<double> LockOpsPerSecondAsync(ProcessCluster cluster, TimeSpan window, int clients)
    {
        var nodes = cluster.Running.ToList();
        var pairs = await Task.WhenAll(nodes.Select((node, k) =>
        {
            int first = k * clients / nodes.Count;
            int count = ((k + 1) * clients / nodes.Count) - first;
            return node.SendAsync<LockPairs>(new NodeCommand(NodeProtocol.Locks, window.TotalSeconds, count, first));
        }));
        return pairs.Sum(p => p.Pairs) / window.TotalSeconds;
    }

    /// <summary>From killing the leader's process to an entry committed by a new leader that every surviving process agrees on.</summary>
    private static async Task<double> FailoverAsync(ProcessCluster cluster, NodeProcess leader)
    {
        long term = (await leader.StatusAsync()).Term;
        var clock = Stopwatch.StartNew();
        cluster.Kill(leader);
        var next = await cluster.AgreedLeaderAsync(OperationTimeout, previousTerm: term);
        await cluster[next.Id].SendAsync<Done>(new NodeCommand(NodeProtocol.Append));
        double failoverMs = clock.Elapsed.TotalMilliseconds;
        Console.Error.WriteLine($"new leader {next.Id} (term {next.Term}) committed after {failoverMs:0.0} ms");
        return failoverMs;
    }
}
