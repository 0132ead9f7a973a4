using System.Diagnostics;

namespace Gaggle.Benchmarks;

/// <summary>
/// The whole load run: Redis baselines (over Redis only), then the cluster's election, throughput,
/// one-at-a-time latencies, locks and failover. Each phase gets a fixed share of the duration.
/// </summary>
internal static class LoadRun
{
    public static async Task<LoadReport> RunAsync(LoadSettings settings)
    {
        var duration = TimeSpan.FromSeconds(settings.DurationSeconds);
        TimeSpan Share(double fraction) => duration * fraction;
        void Phase(string name, TimeSpan window) => Console.Error.WriteLine($"phase: {name} ({window.TotalSeconds:0.0} s)");
        async Task Settled(BenchCluster cluster, string name, TimeSpan window)
        {
            await cluster.SettleAsync();
            Phase(name, window);
        }


        Latencies? publishRoundTrip = null;
        double? setNxOps = null;
        if (settings.IsRedis)
        {
            Phase("baseline PUBLISH -> subscriber", Share(0.08));
            publishRoundTrip = await RedisBaselines.PublishRoundTripAsync(settings.Redis!, Share(0.08));
            Phase($"baseline SET NX PX + DEL, {settings.LockClients} clients", Share(0.08));
            setNxOps = await RedisBaselines.SetNxLockOpsPerSecondAsync(settings.Redis!, settings.LockClients, Share(0.08));
        }

        var (cluster, electionMs) = await BenchCluster.StartAsync(settings, TimeSpan.FromSeconds(15));
        await using (cluster)
        {
            var phases = new LoadPhases(cluster, settings);
            var leader = await cluster.AgreedLeaderAsync(TimeSpan.FromSeconds(10), previousTerm: 0);
            var follower = cluster.Running.First(n => n != leader);

            await Settled(cluster, $"throughput, {settings.AppendsInFlightPerNode} appends in flight per node", Share(0.3));
            var throughput = await phases.ThroughputAsync(Share(0.3));
            await Settled(cluster, $"one append at a time from the leader {leader.Id}", Share(0.1));
            var leaderLatency = await phases.SequentialAppendsAsync(leader, Share(0.1));
            await Settled(cluster, $"one append at a time from the follower {follower.Id}", Share(0.1));
            var followerLatency = await phases.SequentialAppendsAsync(follower, Share(0.1));
            await Settled(cluster, $"locks, {settings.LockClients} clients", Share(0.2));
            double lockOps = await phases.LockOpsPerSecondAsync(Share(0.2));
            await Settled(cluster, "uncontended lock acquire on the leader", Share(0.1));
            var lockLatency = await phases.LockLatencyAsync(leader, Share(0.1));
            await Settled(cluster, $"failover: {cluster.StopMethod}", TimeSpan.Zero);
            double failoverMs = await phases.FailoverAsync(leader);

            using var process = Process.GetCurrentProcess();
            return new LoadReport
            {
                Channel = settings.Channel,
                Nodes = settings.Nodes,
                PayloadBytes = settings.PayloadBytes,
                CommitsPerSecond = throughput.CommitsPerSecond,
                Throughput = throughput,
                LeaderCommit = leaderLatency,
                FollowerCommit = followerLatency,
                LockOpsPerSecond = lockOps,
                LockAcquire = lockLatency,
                ElectionMs = electionMs,
                FailoverMs = failoverMs,
                FailoverMethod = cluster.StopMethod,
                PeakRssMb = process.PeakWorkingSet64 / (1024.0 * 1024.0),
                RedisMessagesPerCommit = settings.IsRedis ? throughput.RedisMessagesPerCommit : 0,
                BaselinePublishRoundTrip = publishRoundTrip,
                BaselineSetNxLockOpsPerSecond = setNxOps,
                Errors = phases.Errors,
            };
        }
    }
}
