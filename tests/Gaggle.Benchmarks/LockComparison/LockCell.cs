using System.Diagnostics;
using StackExchange.Redis;

namespace Gaggle.Benchmarks.LockComparison;

/// <summary>
/// One cell of the comparison: <c>clients</c> concurrent loops of acquire + release on one implementation
/// for a fixed window. Client i always uses the name i mod <c>names</c>: as many names as clients is
/// uncontended, fewer names make clients queue (or retry) for the same lock.
/// </summary>
internal static class LockCell
{
    public static async Task<LockCellResult> RunAsync(ILockUnderTest locks, LockCellShape shape, string prefix, TimeSpan window, IServer redis)
    {
        // Longer than the window: an acquire never times out inside a cell; the window's end cancels it.
        var acquireTimeout = window + TimeSpan.FromSeconds(10);
        var perClient = new long[shape.Clients];
        var latencies = new Latencies[shape.Clients];
        var releases = new Latencies[shape.Clients];
        var longestWaitMs = new double[shape.Clients];
        var handoffs = new Latencies[shape.Clients];

        // Per name, when its holder began its release (timestamp; 0 before the first): a client granted
        // after waiting through that release measures the hand-off, release begun to next holder granted.
        var releaseBegun = new long[shape.Names];
        long completed = 0;
        long errors = 0;
        using var process = Process.GetCurrentProcess();
        var redisBefore = await RedisServerCounters.ReadAsync(redis).ConfigureAwait(false);
        var cpuBefore = process.TotalProcessorTime;
        using var end = new CancellationTokenSource(window);
        async Task Client(int client)
        {
            var samples = latencies[client] = new Latencies();
            var releaseSamples = releases[client] = new Latencies();
            var handoffSamples = handoffs[client] = new Latencies();
            int slot = client % shape.Names;
            string name = $"{prefix}:{slot}";
            while (!end.IsCancellationRequested)
            {
                long started = Stopwatch.GetTimestamp();
                IAsyncDisposable? hold;
                try
                {
                    hold = await locks.AcquireAsync(client, name, acquireTimeout, end.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (end.IsCancellationRequested)
                {
                    // Still waiting when the window ended: the wait counts towards the longest one.
                    longestWaitMs[client] = Math.Max(longestWaitMs[client], Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    break;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    CountError(ref errors, locks, e.GetType().Name + ": " + e.Message);
                    continue;
                }

                long granted = Stopwatch.GetTimestamp();
                double waitedMs = Stopwatch.GetElapsedTime(started, granted).TotalMilliseconds;
                longestWaitMs[client] = Math.Max(longestWaitMs[client], waitedMs);
                if (hold is null)
                {
                    if (!end.IsCancellationRequested)
                    {
                        CountError(ref errors, locks, $"not granted within {acquireTimeout.TotalSeconds:0} s");
                    }

                    continue;
                }

                samples.AddMilliseconds([waitedMs]);
                if (shape.Contended && Volatile.Read(ref releaseBegun[slot]) is var begun && begun > started)
                {
                    // It asked before the previous holder began to let go: a hand-off.
                    handoffSamples.AddMilliseconds([Stopwatch.GetElapsedTime(begun, granted).TotalMilliseconds]);
                }

                long releasing = Stopwatch.GetTimestamp();
                Volatile.Write(ref releaseBegun[slot], releasing);
                try
                {
                    await hold.DisposeAsync().ConfigureAwait(false);
                    releaseSamples.Add(releasing);
                }
                catch (Exception e)
                {
                    CountError(ref errors, locks, "release: " + e.GetType().Name + ": " + e.Message);
                    continue;
                }

                Interlocked.Increment(ref completed);
                if (!end.IsCancellationRequested)
                {
                    perClient[client]++;
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, shape.Clients).Select(c => Task.Run(() => Client(c)))).ConfigureAwait(false);
        process.Refresh();
        double cpuMs = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
        var redisAfter = await RedisServerCounters.ReadAsync(redis).ConfigureAwait(false);
        var acquire = Merge(latencies);
        var release = Merge(releases);
        var handoff = Merge(handoffs);

        // Costs are per pair completed at all (in the window and in its tail), as the counters cover both.
        double PerPair(double total) => completed == 0 ? 0 : total / completed;
        return new LockCellResult(
            locks.Key,
            shape,
            perClient.Sum() / window.TotalSeconds,
            acquire,
            release,
            handoff,
            perClient.Min(),
            perClient.Max(),
            longestWaitMs.Max(),
            PerPair(cpuMs * 1000),
            PerPair((redisAfter.CpuSeconds - redisBefore.CpuSeconds) * 1_000_000),
            PerPair(redisAfter.Commands - redisBefore.Commands - 1), // less the INFO that read the first counters
            errors);
    }

    private static Latencies Merge(Latencies[] perClient)
    {
        var all = new Latencies();
        foreach (var samples in perClient)
        {
            all.AddMilliseconds(samples.SamplesMs);
        }

        return all;
    }

    private static void CountError(ref long errors, ILockUnderTest locks, string message)
    {
        if (Interlocked.Increment(ref errors) <= 3)
        {
            Console.Error.WriteLine($"{locks.Key}: {message}");
        }
    }
}

/// <summary>A row of the comparison: <paramref name="Clients"/> clients over <paramref name="Names"/> lock names.</summary>
internal sealed record LockCellShape(int Clients, int Names)
{
    public bool Contended => Names < Clients;

    public string Label => Contended ? $"{Clients} on {Names} names" : Clients.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>For the progress lines: "1 client", "16 clients on 4 names".</summary>
    public string Describe => Contended ? $"{Clients} clients on {Names} names" : Clients == 1 ? "1 client" : $"{Clients} clients";
}

/// <summary>
/// What one cell measured. <paramref name="PairsPerSecond"/> counts pairs released inside the window;
/// <paramref name="Acquire"/> holds the waits of the granted acquires and <paramref name="Release"/> the
/// time each release took (until the library's dispose returned); <paramref name="Handoff"/>, in a
/// contended cell, the time from a holder beginning its release to the next holder's grant, for each
/// grant that waited through that release (for Gaggle one commit; for the Redis locks their retry
/// interval decides); <paramref name="MaxWaitMs"/> also
/// counts a wait the window's end cut short (a client that starved for the whole window shows the window).
/// </summary>
internal sealed record LockCellResult(
    string Implementation,
    LockCellShape Shape,
    double PairsPerSecond,
    Latencies Acquire,
    Latencies Release,
    Latencies Handoff,
    long FewestPairsPerClient,
    long MostPairsPerClient,
    double MaxWaitMs,
    double ProcessCpuMicrosecondsPerPair,
    double RedisCpuMicrosecondsPerPair,
    double RedisCommandsPerPair,
    long Errors);
