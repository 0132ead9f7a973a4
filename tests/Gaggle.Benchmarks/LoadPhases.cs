using System.Diagnostics;

namespace Gaggle.Benchmarks;

/// <summary>The measured phases of the load run, each bounded by its own share of the duration.</summary>
internal sealed class LoadPhases(BenchCluster cluster, LoadSettings settings)
{
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(10);

    private readonly byte[] _payload = Enumerable.Range(0, settings.PayloadBytes).Select(i => (byte)i).ToArray();

    /// <summary>Appends failed or timed out, over every phase (reported, not hidden).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    private long _errors;

    /// <summary>
    /// Sustained throughput: <see cref="LoadSettings.AppendsInFlightPerNode"/> append loops on every
    /// node. Commits counted are those completed inside the window; the Redis PUBLISH count runs until
    /// the appends still in flight at the end have completed too, and is divided by all commits.
    /// </summary>
    public async Task<ThroughputResult> ThroughputAsync(TimeSpan window)
        => (await ThroughputCountsAsync(window, settings.AppendsInFlightPerNode).ConfigureAwait(false)).ToResult(window);

    /// <summary>
    /// The throughput phase's raw counts on the nodes of this process: <paramref name="appendsInFlightPerNode"/>
    /// append loops on each, until the window ends and the appends still in flight have completed.
    /// Counts (unlike rates) add up over processes.
    /// </summary>
    public async Task<ThroughputCounts> ThroughputCountsAsync(TimeSpan window, int appendsInFlightPerNode)
    {
        long publishedBefore = cluster.RedisPublished;
        long deliveredBefore = cluster.MemoryDelivered;
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        long allocatedBefore = GC.GetTotalAllocatedBytes();
        using var profile = settings.ProfileAllocations ? new AllocationProfile() : null;
        profile?.Start();
        long inWindow = 0;
        long total = 0;
        var clock = Stopwatch.StartNew();
        async Task Loop(GaggleNode node)
        {
            while (clock.Elapsed < window)
            {
                try
                {
                    await node.AppendAsync(_payload, OperationTimeout).ConfigureAwait(false);
                    Interlocked.Increment(ref total);
                    if (clock.Elapsed < window)
                    {
                        Interlocked.Increment(ref inWindow);
                    }
                }
                catch (Exception e) when (e is TimeoutException or ObjectDisposedException)
                {
                    CountError(e);
                }
            }
        }

        var loops = cluster.Running.SelectMany(node => Enumerable.Range(0, appendsInFlightPerNode).Select(_ => Loop(node))).ToList();
        await Task.WhenAll(loops).ConfigureAwait(false);
        profile?.Stop();
        long allocated = GC.GetTotalAllocatedBytes() - allocatedBefore;
        long published = cluster.RedisPublished - publishedBefore;
        long delivered = cluster.MemoryDelivered - deliveredBefore;
        process.Refresh();
        double cpuMs = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
        if (profile is not null)
        {
            Console.Error.WriteLine("sampled allocations during the throughput phase, by type:");
            foreach (var line in profile.Top(25))
            {
                Console.Error.WriteLine("  " + line);
            }
        }

        return new ThroughputCounts(inWindow, total, published, delivered, cpuMs, allocated);
    }

    /// <summary>One append at a time from <paramref name="node"/>, until the window ends.</summary>
    public async Task<Latencies> SequentialAppendsAsync(GaggleNode node, TimeSpan window)
    {
        var latencies = new Latencies();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < window)
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                await node.AppendAsync(_payload, OperationTimeout).ConfigureAwait(false);
                latencies.Add(started);
            }
            catch (Exception e) when (e is TimeoutException or ObjectDisposedException)
            {
                CountError(e);
            }
        }

        return latencies;
    }

    /// <summary>
    /// Acquire + release pairs per second from <see cref="LoadSettings.LockClients"/> clients spread
    /// over the nodes, each cycling through 16 lock names of its own (many names, no contention).
    /// </summary>
    public async Task<double> LockOpsPerSecondAsync(TimeSpan window)
        => await LockPairsAsync(window, firstClient: 0, settings.LockClients).ConfigureAwait(false) / window.TotalSeconds;

    /// <summary>
    /// Acquire + release pairs completed inside the window by the clients numbered
    /// <paramref name="firstClient"/> onwards, spread over the nodes of this process. The numbers name
    /// each client's locks, so clients in different processes never contend when their ranges differ.
    /// </summary>
    public async Task<long> LockPairsAsync(TimeSpan window, int firstClient, int clients)
    {
        var nodes = cluster.Running.ToList();
        long pairs = 0;
        var clock = Stopwatch.StartNew();
        async Task Client(int client)
        {
            var locks = nodes[client % nodes.Count].Locks;
            for (int i = 0; clock.Elapsed < window; i++)
            {
                try
                {
                    var handle = await locks.AcquireAsync($"bench:{client}:{i % 16}", OperationTimeout).ConfigureAwait(false);
                    await handle.DisposeAsync().ConfigureAwait(false);
                    if (clock.Elapsed < window)
                    {
                        Interlocked.Increment(ref pairs);
                    }
                }
                catch (Exception e) when (e is TimeoutException or ObjectDisposedException)
                {
                    CountError(e);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(firstClient, clients).Select(Client)).ConfigureAwait(false);
        return pairs;
    }

    /// <summary>Uncontended acquires, one at a time, from <paramref name="node"/>; only the acquire is timed.</summary>
    public async Task<Latencies> LockLatencyAsync(GaggleNode node, TimeSpan window)
    {
        var latencies = new Latencies();
        var clock = Stopwatch.StartNew();
        for (int i = 0; clock.Elapsed < window; i++)
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                var handle = await node.Locks.AcquireAsync($"bench:latency:{i % 64}", OperationTimeout).ConfigureAwait(false);
                latencies.Add(started);
                await handle.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException or ObjectDisposedException)
            {
                CountError(e);
            }
        }

        return latencies;
    }

    /// <summary>From stopping the leader to an entry committed by a new leader that every running node agrees on.</summary>
    public async Task<double> FailoverAsync(GaggleNode leader)
    {
        long term = leader.Term;
        var clock = Stopwatch.StartNew();
        var stopping = cluster.StopAsync(leader);
        var next = await cluster.AgreedLeaderAsync(OperationTimeout, previousTerm: term).ConfigureAwait(false);
        await AppendOnceAsync(next).ConfigureAwait(false);
        double failoverMs = clock.Elapsed.TotalMilliseconds;
        Console.Error.WriteLine($"new leader {next.Id} (term {next.Term}) committed after {failoverMs:0.0} ms");
        await Task.WhenAny(stopping, Task.Delay(OperationTimeout)).ConfigureAwait(false);
        return failoverMs;
    }

    /// <summary>One append of the run's payload (the failover's first commit); throws when it fails.</summary>
    public Task<long> AppendOnceAsync(GaggleNode node) => node.AppendAsync(_payload, OperationTimeout);

    private void CountError(Exception e)
    {
        if (Interlocked.Increment(ref _errors) <= 5)
        {
            Console.Error.WriteLine($"operation failed: {e.GetType().Name}: {e.Message}");
        }
    }
}

/// <summary>The throughput phase's figures; messages and CPU are per commit, over the window and the drain after it.</summary>
internal sealed record ThroughputResult(double CommitsPerSecond, double RedisMessagesPerCommit, double MemoryDeliveriesPerCommit, double CpuMicrosecondsPerCommit, double AllocatedBytesPerCommit);

/// <summary>
/// The throughput phase's raw counts: commits inside the window and in all (with the drain), and what
/// the window and drain cost (PUBLISHes, in-memory deliveries, CPU, allocations). They add up over processes.
/// </summary>
internal sealed record ThroughputCounts(long InWindow, long Total, long Published, long Delivered, double CpuMs, long AllocatedBytes)
{
    public static ThroughputCounts Sum(IEnumerable<ThroughputCounts> parts) => parts.Aggregate(
        new ThroughputCounts(0, 0, 0, 0, 0, 0),
        (a, b) => new ThroughputCounts(a.InWindow + b.InWindow, a.Total + b.Total, a.Published + b.Published, a.Delivered + b.Delivered, a.CpuMs + b.CpuMs, a.AllocatedBytes + b.AllocatedBytes));

    public ThroughputResult ToResult(TimeSpan window) => Total == 0
        ? new ThroughputResult(0, 0, 0, 0, 0)
        : new ThroughputResult(InWindow / window.TotalSeconds, (double)Published / Total, (double)Delivered / Total, CpuMs * 1000 / Total, (double)AllocatedBytes / Total);
}
