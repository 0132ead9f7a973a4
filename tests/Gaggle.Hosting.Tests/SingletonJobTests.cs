using System.Collections.Concurrent;
using System.Diagnostics;
using Gaggle.Channels;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Gaggle.Redis.Tests;
using NUnit.Framework;

namespace Gaggle.Hosting.Tests;

/// <summary>Records every run of a job: where, with which token, from when to when.</summary>
public sealed class RunLog
{
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    public ConcurrentQueue<(string Job, string Node, long Token, double Start, double End)> Runs { get; } = new();

    public ConcurrentDictionary<string, string> RunningOn { get; } = new();

    public ConcurrentDictionary<string, SingletonJobContext> Contexts { get; } = new();

    public double Now => Clock.Elapsed.TotalMilliseconds;
}

public abstract class RecordingJob(RunLog log) : ISingletonJob
{
    public async Task RunAsync(SingletonJobContext context, CancellationToken cancellationToken)
    {
        double start = log.Now;
        log.Contexts[context.JobName] = context;
        log.RunningOn[context.JobName] = context.NodeId;
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        finally
        {
            log.RunningOn.TryRemove(new KeyValuePair<string, string>(context.JobName, context.NodeId));
            log.Runs.Enqueue((context.JobName, context.NodeId, context.FencingToken, start, log.Now));
        }
    }
}

public sealed class CleanupJob(RunLog log) : RecordingJob(log);

public sealed class ReportJob(RunLog log) : RecordingJob(log);

[TestFixture]
public sealed class SingletonJobTests
{
    private static readonly string[] Ids = ["a", "b", "c"];

    internal static async Task<Dictionary<string, IHost>> StartHostsAsync(RunLog log, Action<GaggleBuilder> transport, bool twoJobs)
    {
        var hosts = new Dictionary<string, IHost>();
        foreach (var id in Ids)
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Gaggle:NodeId"] = id,
                ["Gaggle:Members:0"] = "a",
                ["Gaggle:Members:1"] = "b",
                ["Gaggle:Members:2"] = "c",
                ["Gaggle:HeartbeatInterval"] = "00:00:00.020",
                ["Gaggle:ElectionTimeoutMin"] = "00:00:00.150",
                ["Gaggle:ElectionTimeoutMax"] = "00:00:00.300",
                ["Gaggle:LockLeaseDuration"] = "00:00:01",
                ["Gaggle:Jobs:PollInterval"] = "00:00:00.100",
            });
            builder.Services.AddSingleton(log);
            var gaggle = builder.Services.AddGaggle(builder.Configuration.GetSection("Gaggle")).AddSingletonJob<CleanupJob>("cleanup");
            if (twoJobs)
            {
                gaggle.AddSingletonJob<ReportJob>("report");
            }

            transport(gaggle);
            var host = builder.Build();
            hosts[id] = host;
        }

        await Task.WhenAll(hosts.Values.Select(h => h.StartAsync()));
        return hosts;
    }

    internal static async Task Deadline(Func<bool> condition, string what, double seconds = 30)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed.TotalSeconds > seconds)
            {
                throw new TimeoutException($"Gave up after {seconds} s waiting for {what}.");
            }

            await Task.Delay(10);
        }
    }

    internal static void AssertNoOverlap(RunLog log)
    {
        foreach (var job in log.Runs.GroupBy(r => r.Job))
        {
            var runs = job.OrderBy(r => r.Start).ToList();
            for (int i = 1; i < runs.Count; i++)
            {
                Assert.That(runs[i].Start, Is.GreaterThanOrEqualTo(runs[i - 1].End), $"{job.Key}: a run on {runs[i].Node} started before the run on {runs[i - 1].Node} ended");
                Assert.That(runs[i].Token, Is.GreaterThan(runs[i - 1].Token), $"{job.Key}: fencing tokens increase run after run");
            }
        }
    }

    internal static async Task RunsOnOneHostAndMovesWhenItStops(Action<GaggleBuilder> transport)
    {
        var log = new RunLog();
        var before = DateTimeOffset.UtcNow;
        var hosts = await StartHostsAsync(log, transport, twoJobs: false);
        try
        {
            await Deadline(() => log.RunningOn.ContainsKey("cleanup"), "the job to start somewhere");
            string first = log.RunningOn["cleanup"];
            var run = hosts[first].Services.GetRequiredService<SingletonJobRegistry>().Running["cleanup"];
            Assert.That(run, Is.EqualTo(log.Contexts["cleanup"]), "the registry lists the context the job was given");
            Assert.That(run.StartedAt, Is.InRange(before, DateTimeOffset.UtcNow), "StartedAt is when this instance took the job");
            var stoppedAt = log.Now;
            await hosts[first].StopAsync();
            hosts[first].Dispose();
            hosts.Remove(first);
            await Deadline(() => log.RunningOn.TryGetValue("cleanup", out var node) && node != first, "the job to move to another host");
            Assert.That(log.Now - stoppedAt, Is.LessThan(1000 + 5000), "moved within the lease bound (plus an election)");
            AssertNoOverlap(log);
        }
        finally
        {
            foreach (var host in hosts.Values)
            {
                await host.StopAsync();
                host.Dispose();
            }
        }

        AssertNoOverlap(log);
        Assert.That(log.Runs.Count(r => r.Job == "cleanup"), Is.GreaterThanOrEqualTo(2));
    }

    internal static async Task TwoJobsSpreadOverThreeHosts(Action<GaggleBuilder> transport)
    {
        var log = new RunLog();
        var hosts = await StartHostsAsync(log, transport, twoJobs: true);
        try
        {
            await Deadline(() => log.RunningOn.ContainsKey("cleanup") && log.RunningOn.ContainsKey("report"), "both jobs to start");
            Assert.That(log.RunningOn["cleanup"], Is.Not.EqualTo(log.RunningOn["report"]), "each instance takes one job at a time and leaves the next to idle instances");
        }
        finally
        {
            foreach (var host in hosts.Values)
            {
                await host.StopAsync();
                host.Dispose();
            }
        }

        AssertNoOverlap(log);
    }

    [Test]
    public Task InMemoryAJobRunsOnOneHostAndMovesWhenItStops()
    {
        var network = new InMemoryNetwork(1);
        return RunsOnOneHostAndMovesWhenItStops(g => g.UseInMemory(network));
    }

    [Test]
    public Task InMemoryTwoJobsSpreadOverThreeHosts()
    {
        var network = new InMemoryNetwork(1);
        return TwoJobsSpreadOverThreeHosts(g => g.UseInMemory(network));
    }

    [Test]
    [Category("Redis")]
    public async Task OverRedisAJobRunsOnOneHostAndMovesWhenItStops()
    {
        var redis = await RedisServer.RequireAsync();
        string cluster = "jobs-" + Guid.NewGuid().ToString("N")[..8];
        await RunsOnOneHostAndMovesWhenItStops(g => g.UseRedis(redis, o => o.ClusterName = cluster));
    }

    [Test]
    [Category("Redis")]
    public async Task OverRedisTwoJobsSpreadOverThreeHosts()
    {
        var redis = await RedisServer.RequireAsync();
        string cluster = "jobs-" + Guid.NewGuid().ToString("N")[..8];
        await TwoJobsSpreadOverThreeHosts(g => g.UseRedis(redis, o => o.ClusterName = cluster));
    }
}
