using System.Diagnostics;
using Gaggle.Benchmarks.Processes;

namespace Gaggle.Benchmarks;

/// <summary>
/// The whole load run: Redis baselines (over Redis only), then the cluster's election, throughput,
/// one-at-a-time latencies, locks and failover. Each phase gets a fixed share of the duration. An
/// elastic cluster's phases start once it has formed and grants locks (see <see cref="BenchCluster.StartAsync"/>).
/// With <see cref="LoadSettings.Processes"/>, the cluster's part is <see cref="ProcessLoadRun"/>.
/// </summary>
internal static class LoadRun
{
    public static async Task<LoadReport> RunAsync(LoadSettings settings)
    {
        var baselines = await RedisBaselinesAsync(settings);
        if (settings.Processes)
        {
            return await ProcessLoadRun.RunAsync(settings, baselines);
        }

        var duration = TimeSpan.FromSeconds(settings.DurationSeconds);
        TimeSpan Share(double fraction) => duration * fraction;
        async Task Settled(BenchCluster cluster, string name, TimeSpan window)
        {
            await cluster.SettleAsync();
            Phase(name, window);
        }

        var (cluster, start) = await BenchCluster.StartAsync(settings, TimeSpan.FromSeconds(settings.IsElastic ? 30 : 15));
        await using (cluster)
        {
            var phases = new LoadPhases(cluster, settings);
            var leader = await cluster.AgreedLeaderAsync(TimeSpan.FromSeconds(10), previousTerm: 0);

            // On a starved machine an election can happen during a phase: the phases that need the
            // leader (or a follower) look it up again rather than use a node that no longer leads.
            async Task<GaggleNode> CurrentLeader()
            {
                var current = await cluster.AgreedLeaderAsync(TimeSpan.FromSeconds(10), previousTerm: 0);
                if (current != leader)
                {
                    Console.Error.WriteLine($"leadership moved from {leader.Id} to {current.Id} (term {current.Term}) during the previous phases");
                }

                return current;
            }

            await Settled(cluster, $"throughput, {settings.AppendsInFlightPerNode} appends in flight per node", Share(0.3));
            var throughput = await phases.ThroughputAsync(Share(0.3));
            leader = await CurrentLeader();
            await Settled(cluster, $"one append at a time from the leader {leader.Id}", Share(0.1));
            var leaderLatency = await phases.SequentialAppendsAsync(leader, Share(0.1));
            var follower = cluster.Running.First(n => n != leader);
            await Settled(cluster, $"one append at a time from the follower {follower.Id}", Share(0.1));
            var followerLatency = await phases.SequentialAppendsAsync(follower, Share(0.1));
            await Settled(cluster, $"locks, {settings.LockClients} clients", Share(0.2));
            double lockOps = await phases.LockOpsPerSecondAsync(Share(0.2));
            leader = await CurrentLeader();
            await Settled(cluster, $"uncontended lock acquire on the leader {leader.Id}", Share(0.1));
            var lockLatency = await phases.LockLatencyAsync(leader, Share(0.1));
            leader = await CurrentLeader();
            await Settled(cluster, $"failover: {cluster.StopMethod}", TimeSpan.Zero);
            double failoverMs = await phases.FailoverAsync(leader);

            using var process = Process.GetCurrentProcess();
            var measured = new MeasuredPhases(throughput, leaderLatency, followerLatency, lockOps, lockLatency, start.ElectionMs, failoverMs,
                cluster.StopMethod, process.PeakWorkingSet64 / (1024.0 * 1024.0), phases.Errors, start.FirstLockMs);
            return LoadReport.From(settings, baselines, measured, nodesInProcesses: false);
        }
    }

    /// <summary>Announces a phase on stderr.</summary>
    public static void Phase(string name, TimeSpan window) => Console.Error.WriteLine($"phase: {name} ({window.TotalSeconds:0.0} s)");

    /// <summary>The plain-Redis figures to compare with (none over the in-memory channel).</summary>
    private static async Task<BaselineFigures> RedisBaselinesAsync(LoadSettings settings)
    {
        if (!settings.IsRedis)
        {
            return new BaselineFigures(null, null);
        }

        var window = TimeSpan.FromSeconds(settings.DurationSeconds) * 0.08;
        Phase("baseline PUBLISH -> subscriber", window);
        var publishRoundTrip = await RedisBaselines.PublishRoundTripAsync(settings.Redis!, window);
        Phase($"baseline SET NX PX + DEL, {settings.LockClients} clients", window);
        double setNxOps = await RedisBaselines.SetNxLockOpsPerSecondAsync(settings.Redis!, settings.LockClients, window);
        return new BaselineFigures(publishRoundTrip, setNxOps);
    }
}

/// <summary>The plain-Redis figures of a run; null over the in-memory channel.</summary>
internal sealed record BaselineFigures(Latencies? PublishRoundTrip, double? SetNxLockOpsPerSecond);
