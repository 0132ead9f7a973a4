using Gaggle.Channels;
using Gaggle.Redis;
using Gaggle.Redis.Tests;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Gaggle.Hosting.Tests;

/// <summary>
/// Hosting in elastic mode (no Members, no ClusterSize): configuration with only Redis and Cluster
/// forms a cluster; what elastic mode needs (a cluster name, no data directory) fails the start with
/// the key named; unsafe settings that do start are logged as warnings.
/// </summary>
[TestFixture]
public sealed class ElasticHostTests
{
    private const string Warnings = "Gaggle.Hosting.StartupWarnings";

    private static IHost Build(Dictionary<string, string?> settings, Action<GaggleBuilder>? more = null, ILoggerProvider? logging = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            builder.Logging.AddProvider(logging);
        }

        builder.Configuration.AddInMemoryCollection(settings);
        var gaggle = builder.Services.AddGaggle(builder.Configuration.GetSection("Gaggle"));
        more?.Invoke(gaggle);
        return builder.Build();
    }

    private static IEnumerable<string> WarningsOf(CapturingLoggerProvider logs)
        => logs.Lines.Where(l => l.Category == Warnings && l.Level == LogLevel.Warning).Select(l => l.Message);

    [Test]
    [Category("Redis")]
    public async Task ThreeHostsWithOnlyRedisAndClusterConfiguredFormOneCluster()
    {
        var redis = await RedisServer.RequireAsync();
        var settings = new Dictionary<string, string?> { ["Gaggle:Redis"] = redis, ["Gaggle:Cluster"] = "elastic-host-" + Guid.NewGuid().ToString("N")[..8] };
        var hosts = Enumerable.Range(0, 3).Select(_ => Build(settings)).ToList();
        try
        {
            await Task.WhenAll(hosts.Select(h => h.StartAsync()));
            var nodes = hosts.Select(h => h.Services.GetRequiredService<GaggleNode>()).ToList();
            Assert.That(nodes.Select(n => n.Id).Distinct().Count(), Is.EqualTo(3), "every process is a member of its own");
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (!(nodes.Count(n => n.IsLeader) == 1 && nodes.All(n => n.Membership.Voters.Count == 3 && n.LeaderId is not null && n.LeaderId == nodes.Single(l => l.IsLeader).Id)))
            {
                await Task.Delay(20, deadline.Token);
            }

            Assert.That(nodes.Select(n => n.Generation), Is.All.EqualTo(1L));

            // A leader elected a moment ago trusts its leadership once Redis has confirmed its generation.
            var health = await new GaggleHealthCheck(nodes[0]).CheckHealthAsync(new HealthCheckContext());
            while (health.Status != HealthStatus.Healthy && !deadline.IsCancellationRequested)
            {
                await Task.Delay(20);
                health = await new GaggleHealthCheck(nodes[0]).CheckHealthAsync(new HealthCheckContext());
            }

            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy), health.Description);
        }
        finally
        {
            foreach (var host in hosts)
            {
                await host.StopAsync();
                host.Dispose();
            }
        }
    }

    [Test]
    public async Task ElasticModeOnRedisWithoutAClusterNameFailsTheStartNamingTheKey()
    {
        // Never connects: the settings are refused before the channel exists.
        using var host = Build(new() { ["Gaggle:Redis"] = "127.0.0.1:1" });
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain("Cluster (Gaggle:Cluster) is not set").And.Contain("elastic mode").And.Contain("Set Gaggle:Cluster"));
    }

    [Test]
    public async Task ElasticModeWithUseRedisAndNoClusterNameFailsTheStart()
    {
        using var host = Build([], g => g.UseRedis("127.0.0.1:1"));
        var error = await Assert.ThrowsAsync<InvalidOptionsException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain("Gaggle:Cluster").And.Contain("ClusterName"));
    }

    [Test]
    public async Task ElasticModeTakesTheClusterNameFromTheUseRedisCallback()
    {
        await using var host = (IAsyncDisposable)Build([], g => g.UseRedis("127.0.0.1:1", redis => redis.ClusterName = "orders"));
        var services = ((IHost)host).Services;
        var options = services.GetRequiredService<IOptions<GaggleOptions>>().Value;
        // Created, not connected: nothing talks to Redis.
        await using var channel = (RedisPubSubChannel)services.GetRequiredService<GaggleChannelFactory>().Create(services, options);
        Assert.That(channel.GenerationKey, Is.EqualTo("gaggle:{orders}:generation"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ElasticModeWithADataDirectoryFailsTheStartNamingTheKey(bool byBuilder)
    {
        string directory = Path.Combine(Path.GetTempPath(), "gaggle-elastic-" + Guid.NewGuid().ToString("N"));
        var settings = new Dictionary<string, string?> { ["Gaggle:Cluster"] = "web" };
        if (!byBuilder)
        {
            settings["Gaggle:DataDirectory"] = directory;
        }

        var network = new InMemoryNetwork(1);
        using var host = Build(settings, g =>
        {
            g.UseInMemory(network);
            if (byBuilder)
            {
                g.UseFileStorage(directory);
            }
        });
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain($"DataDirectory (Gaggle:DataDirectory) is '{directory}'").And.Contain("elastic mode").And.Contain("Gaggle:Members"));
        Assert.That(Directory.Exists(directory), Is.False, "refused before any storage was opened");
    }

    [Test]
    public void WithAStaticMemberListTheClusterNameStillDefaultsToDefault()
    {
        using var host = Build(new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo" });
        Assert.That(host.Services.GetRequiredService<IOptions<GaggleHostingOptions>>().Value.Cluster, Is.EqualTo("default"));
    }

    [Test]
    public async Task AnElasticNodeIsNamedAfterTheMachineAndGetsAMemberIdOfItsOwn()
    {
        var network = new InMemoryNetwork(1);
        using var host = Build(new() { ["Gaggle:HeartbeatInterval"] = "00:00:00.010", ["Gaggle:ElectionTimeoutMin"] = "00:00:00.050", ["Gaggle:ElectionTimeoutMax"] = "00:00:00.100" }, g => g.UseInMemory(network));
        await host.StartAsync();
        var name = host.Services.GetRequiredService<IOptions<GaggleOptions>>().Value.NodeId;
        var node = host.Services.GetRequiredService<GaggleNode>();
        Assert.That(name, Does.Match("^[a-z0-9-]{1,55}$"));
        Assert.That(node.Id, Does.Match("^" + name + @"\.[a-z2-7]{8}$"));
        await node.WaitForLeaderAsync(TimeSpan.FromSeconds(10));
        Assert.That((node.Generation, node.Membership.Voters), Is.EqualTo((1L, new[] { node.Id })));
        await host.StopAsync();
    }

    [Test]
    public async Task AStaticMemberListInMemoryIsLoggedAsAWarningNamingTheSafeChoices()
    {
        var logs = new CapturingLoggerProvider();
        await using var host = (IAsyncDisposable)Build(new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo" }, g => g.UseInMemory(new InMemoryNetwork(1)), logs);
        _ = ((IHost)host).Services.GetRequiredService<GaggleNode>();
        Assert.That(WarningsOf(logs), Has.One.Contains("static member list (Gaggle:Members)").And.Contain("elastic mode").And.Contain("Gaggle:DataDirectory"));
    }

    [Test]
    public async Task AStaticMemberListWithADataDirectoryAndAnElasticNodeInMemoryAreNotWarnedAbout()
    {
        string directory = Path.Combine(Path.GetTempPath(), "gaggle-static-" + Guid.NewGuid().ToString("N"));
        try
        {
            var logs = new CapturingLoggerProvider();
            await using (var host = (IAsyncDisposable)Build(new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", ["Gaggle:DataDirectory"] = directory }, g => g.UseInMemory(new InMemoryNetwork(1)), logs))
            {
                _ = ((IHost)host).Services.GetRequiredService<GaggleNode>();
            }

            await using (var host = (IAsyncDisposable)Build(new() { ["Gaggle:Cluster"] = "web" }, g => g.UseInMemory(new InMemoryNetwork(1)), logs))
            {
                _ = ((IHost)host).Services.GetRequiredService<GaggleNode>();
            }

            Assert.That(WarningsOf(logs), Is.Empty);
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    [TestCase(null)]
    [TestCase("correct horse battery staple")]
    public async Task RedisWithoutAClusterKeyIsLoggedAsAWarning(string? key)
    {
        var logs = new CapturingLoggerProvider();
        await using var host = (IAsyncDisposable)Build(new() { ["Gaggle:Redis"] = "127.0.0.1:1", ["Gaggle:Cluster"] = "web", ["Gaggle:ClusterKey"] = key }, logging: logs);
        var services = ((IHost)host).Services;
        // Created, not connected: nothing talks to Redis.
        await using var channel = (RedisPubSubChannel)services.GetRequiredService<GaggleChannelFactory>().Create(services, services.GetRequiredService<IOptions<GaggleOptions>>().Value);
        if (key is null)
        {
            Assert.That(WarningsOf(logs), Has.One.Contains("without a cluster key (Gaggle:ClusterKey)").And.Contain("anyone who can publish on that Redis"));
        }
        else
        {
            Assert.That(WarningsOf(logs), Is.Empty);
        }
    }
}
