using System.Runtime.CompilerServices;
using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Redis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Gaggle.Hosting.Tests;

[TestFixture]
public sealed class HostTests
{
    private static IHost Build(Dictionary<string, string?> settings, Action<GaggleBuilder>? more = null, InMemoryNetwork? network = null, ILoggerProvider? logging = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            builder.Logging.AddProvider(logging);
        }

        builder.Configuration.AddInMemoryCollection(settings);
        var gaggle = builder.Services.AddGaggle(builder.Configuration.GetSection("Gaggle"));
        if (network is not null)
        {
            gaggle.UseInMemory(network);
        }

        more?.Invoke(gaggle);
        return builder.Build();
    }

    [Test]
    public async Task AHostStartsTheNodeFromConfigurationAndStopsIt()
    {
        using var host = Build(
            new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", ["Gaggle:HeartbeatInterval"] = "00:00:00.010", ["Gaggle:ElectionTimeoutMin"] = "00:00:00.050", ["Gaggle:ElectionTimeoutMax"] = "00:00:00.100" },
            network: new InMemoryNetwork(1));
        await host.StartAsync();
        var node = host.Services.GetRequiredService<GaggleNode>();
        var locks = host.Services.GetRequiredService<GaggleLocks>();
        await node.WaitForLeaderAsync(TimeSpan.FromSeconds(10));
        await using (await locks.AcquireAsync("x", TimeSpan.FromSeconds(10)))
        {
            var health = await new GaggleHealthCheck(node).CheckHealthAsync(new HealthCheckContext());
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy));
        }

        await host.StopAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => node.AppendAsync(new byte[] { 1 }));
    }

    /// <summary>Fails every write once <see cref="Failing"/> is set.</summary>
    private sealed class BreakableStorage : Gaggle.Storage.IRaftStorage
    {
        private readonly Gaggle.Storage.InMemoryRaftStorage _inner = new();

        public volatile bool Failing;

        public ValueTask<Gaggle.Storage.PersistedState> LoadAsync(CancellationToken cancellationToken = default) => _inner.LoadAsync(cancellationToken);

        public ValueTask SaveAsync(Gaggle.Raft.HardState? hardState, IReadOnlyList<Gaggle.Raft.LogEntry> entries, CancellationToken cancellationToken = default)
            => Failing ? throw new IOException("disk on fire") : _inner.SaveAsync(hardState, entries, cancellationToken);

        public ValueTask SaveSnapshotAsync(Gaggle.Raft.RaftSnapshot snapshot, CancellationToken cancellationToken = default) => _inner.SaveSnapshotAsync(snapshot, cancellationToken);
    }

    [Test]
    public async Task TheHealthCheckIsUnhealthyOnceTheNodeStoppedAfterAFatalError()
    {
        var storage = new BreakableStorage();
        await using var node = new GaggleNode(
            new GaggleOptions { NodeId = "solo", Members = ["solo"], HeartbeatInterval = TimeSpan.FromMilliseconds(10), ElectionTimeoutMin = TimeSpan.FromMilliseconds(50), ElectionTimeoutMax = TimeSpan.FromMilliseconds(100) },
            new InMemoryNetwork(1).CreateChannel("solo"),
            storage);
        await node.StartAsync();
        await node.Leadership.WaitForLeadershipAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That((await new GaggleHealthCheck(node).CheckHealthAsync(new HealthCheckContext())).Status, Is.EqualTo(HealthStatus.Healthy));

        storage.Failing = true;
        await Assert.ThrowsAsync<InvalidOperationException>(() => node.AppendAsync(new byte[] { 1 }, TimeSpan.FromSeconds(10)));

        // A dead instance must be restarted, not kept in the load balancer as a healthy (or degraded) leader.
        var health = await new GaggleHealthCheck(node).CheckHealthAsync(new HealthCheckContext());
        Assert.That(health.Status, Is.EqualTo(HealthStatus.Unhealthy));
        Assert.That(health.Description, Does.Contain("'solo' stopped after a fatal error").And.Contain("disk on fire"));
        Assert.That(health.Exception, Is.SameAs(node.FatalError));
    }

    [Test]
    public async Task ThePresenceLoopEndsOnceTheNodeStoppedAfterAFatalError()
    {
        var storage = new BreakableStorage();
        var node = new GaggleNode(
            new GaggleOptions { NodeId = "solo", Members = ["solo"], HeartbeatInterval = TimeSpan.FromMilliseconds(10), ElectionTimeoutMin = TimeSpan.FromMilliseconds(50), ElectionTimeoutMax = TimeSpan.FromMilliseconds(100) },
            new InMemoryNetwork(1).CreateChannel("solo"),
            storage);
        var hosted = new GaggleHostedService(node);
        await hosted.StartAsync(CancellationToken.None);
        await node.Leadership.WaitForLeadershipAsync().WaitAsync(TimeSpan.FromSeconds(10));

        storage.Failing = true;
        await Assert.ThrowsAsync<InvalidOperationException>(() => node.AppendAsync(new byte[] { 1 }, TimeSpan.FromSeconds(10)));

        // Every acquire of a stopped node fails at once: the loop used to retry without pause, on every core.
        await hosted.Presence.WaitAsync(TimeSpan.FromSeconds(10));
        await hosted.StopAsync(CancellationToken.None);
    }

    [Test]
    public async Task TheHealthCheckIsDegradedWhileTheVotersAreFewerThanWanted()
    {
        string directory = Path.Combine(Path.GetTempPath(), "gaggle-health-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var host = Build(
                new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", ["Gaggle:Voters"] = "3", ["Gaggle:DataDirectory"] = directory },
                network: new InMemoryNetwork(1));
            await host.StartAsync();
            var node = host.Services.GetRequiredService<GaggleNode>();
            await node.WaitForLeaderAsync(TimeSpan.FromSeconds(10));
            using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            {
                await node.Leadership.WaitForLeadershipAsync(deadline.Token);
            }

            var health = await new GaggleHealthCheck(node).CheckHealthAsync(new HealthCheckContext());
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(health.Description, Does.Contain("1 voters of the 3 wanted"));
            Assert.That(health.Data["voters"], Is.EqualTo(new[] { "solo" }));
            await host.StopAsync();
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    [Test]
    public async Task AHostStartValidatesTheNodesOptionsOnce()
    {
        var validations = new StrongBox<int>();
        GaggleOptionsValidator.CountedValidations.Value = validations;
        using var host = Build(new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo" }, network: new InMemoryNetwork(1));
        await host.StartAsync();
        await host.StopAsync();
        Assert.That(validations.Value, Is.EqualTo(1));
    }

    private static IEnumerable<TestCaseData> InvalidSettings()
    {
        yield return new TestCaseData("Gaggle:HeartbeatInterval", "00:00:01", "ElectionTimeoutMin is 300 ms; it must be greater than HeartbeatInterval (1000 ms)");
        yield return new TestCaseData("Gaggle:Members:1", "solo", "Members lists 'solo' more than once");
        yield return new TestCaseData("Gaggle:MaxInflightMessages", "0", "MaxInflightMessages is 0; it must be between 1 and 1024");
        yield return new TestCaseData("Gaggle:NodeId", "not valid!", "NodeId is 'not valid!'");
        yield return new TestCaseData("Gaggle:Voters", "4", "Voters is 4; it must be 1, 3, 5 or 7");
        yield return new TestCaseData("Gaggle:LockLeaseDuration", "00:00:00.001", "LockLeaseDuration is 1 ms; it must be between 100 ms and 1 hour");
        yield return new TestCaseData("Gaggle:Jobs:PollInterval", "-00:00:01", "PollInterval (Gaggle:Jobs:PollInterval) is -1000 ms; it must be more than 0 and at most 1 hour");
        yield return new TestCaseData("Gaggle:Jobs:PollInterval", "00:00:00", "PollInterval (Gaggle:Jobs:PollInterval) is 0 ms; it must be more than 0");
        yield return new TestCaseData("Gaggle:Jobs:PollInterval", "02:00:00", "PollInterval (Gaggle:Jobs:PollInterval) is 7200000 ms; it must be more than 0 and at most 1 hour");
        yield return new TestCaseData("Gaggle:Jobs:RestartDelay", "-00:00:00.500", "RestartDelay (Gaggle:Jobs:RestartDelay) is -500 ms; it must be between 0 and 1 hour");
        yield return new TestCaseData("Gaggle:Cluster", "orders east", "Cluster (Gaggle:Cluster) is 'orders east'; it must be 1 to 64 characters among letters, digits and . _ -");
        yield return new TestCaseData("Gaggle:Prefix", "a/b", "Prefix (Gaggle:Prefix) is 'a/b'; it must be 1 to 64 characters");
        yield return new TestCaseData("Gaggle:ClusterKey", "short", "ClusterKey (Gaggle:ClusterKey) has 5 characters; it must have at least 16");
        yield return new TestCaseData("Gaggle:Redis", " ", "Redis (Gaggle:Redis) is empty");
        yield return new TestCaseData("Gaggle:Redis", "localhost,bogus=1", "Redis (Gaggle:Redis) is not a valid StackExchange.Redis configuration string");
    }

    [TestCaseSource(nameof(InvalidSettings))]
    public async Task AnInvalidSettingFailsTheStartWithItsMessage(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?> { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", [key] = value };
        using var host = Build(settings, network: new InMemoryNetwork(1));
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public async Task EveryInvalidRedisValueIsListedWhenTheHostStarts()
    {
        var settings = new Dictionary<string, string?> { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", ["Gaggle:Cluster"] = "", ["Gaggle:Prefix"] = new string('p', 65), ["Gaggle:ClusterKey"] = "0123456789" };
        using var host = Build(settings, network: new InMemoryNetwork(1));
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error!.Failures, Has.Exactly(3).Items);
        Assert.That(error.Message, Does.Contain("Cluster (Gaggle:Cluster) is ''").And.Contain("Prefix (Gaggle:Prefix) is 'ppp").And.Contain("ClusterKey (Gaggle:ClusterKey) has 10 characters"));
    }

    [Test]
    public async Task AnEnvelopeLimitBelowTheLargestMessageFailsTheStart()
    {
        var settings = new Dictionary<string, string?> { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", ["Gaggle:MaxMessageBytes"] = "1048576" };
        // Never connects: the settings are refused before the channel exists.
        using var host = Build(settings, g => g.UseRedis("127.0.0.1:1", redis => redis.MaxEnvelopeBytes = 1024 * 1024));
        var error = await Assert.CatchAsync<ArgumentException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain("MaxEnvelopeBytes is 1048576; it must be at least MaxMessageBytes (1048576) + 65536"));
    }

    [Test]
    public async Task FileStorageFromTheDataDirectoryLogsItsRecovery()
    {
        string directory = Path.Combine(Path.GetTempPath(), "gaggle-hosting-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var settings = new Dictionary<string, string?>
            {
                ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", ["Gaggle:DataDirectory"] = directory,
                ["Gaggle:HeartbeatInterval"] = "00:00:00.010", ["Gaggle:ElectionTimeoutMin"] = "00:00:00.050", ["Gaggle:ElectionTimeoutMax"] = "00:00:00.100",
            };
            using (var first = Build(settings, network: new InMemoryNetwork(1)))
            {
                await first.StartAsync();
                var node = first.Services.GetRequiredService<GaggleNode>();
                await node.WaitForLeaderAsync(TimeSpan.FromSeconds(10));
                await node.AppendAsync(new byte[] { 1 }, TimeSpan.FromSeconds(10));
                await first.StopAsync();
            }

            // An interrupted last write: junk after the last complete record, cut off when the storage opens.
            await using (var segment = new FileStream(Directory.GetFiles(directory, "wal-*.log").Max()!, FileMode.Append))
            {
                segment.Write(new byte[100]);
            }

            var logs = new CapturingLoggerProvider();
            using var second = Build(settings, network: new InMemoryNetwork(1), logging: logs);
            await second.StartAsync();
            await second.StopAsync();
            Assert.That(
                logs.Lines.Where(l => l.Category == "Gaggle.Storage.FileRaftStorage" && l.Level == LogLevel.Warning).Select(l => l.Message),
                Has.One.Contains("interrupted write").And.Contains("cut off 100"));
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    [Test]
    public async Task WithoutATransportTheErrorSaysHowToChooseOne()
    {
        using var host = Build(new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo" });
        var error = await Assert.ThrowsAsync<InvalidOptionsException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain("Gaggle:Redis").And.Contain("UseInMemory"));
    }

    [Test]
    public async Task TheRedisChannelKeepsTimeWithTheRegisteredClock()
    {
        // Two centuries ahead: an incarnation this large cannot come from the system clock.
        var clock = new FixedClock(new DateTimeOffset(2226, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var host = Build(new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo" }, g =>
        {
            g.Services.AddSingleton<TimeProvider>(clock);
            g.UseRedis("127.0.0.1:1");
        });
        var options = host.Services.GetRequiredService<IOptions<GaggleOptions>>().Value;
        // Created, not connected: nothing talks to Redis.
        await using var channel = (RedisPubSubChannel)host.Services.GetRequiredService<GaggleChannelFactory>().Create(host.Services, options);
        Assert.That(channel.Incarnation, Is.GreaterThanOrEqualTo((ulong)clock.GetUtcNow().UtcTicks));
    }

    [Test]
    public void TheNodeIdDefaultsToTheMachineName()
    {
        using var host = Build(new() { ["Gaggle:ClusterSize"] = "1" }, network: new InMemoryNetwork(1));
        var options = host.Services.GetRequiredService<IOptions<GaggleOptions>>().Value;
        Assert.That(options.NodeId, Is.Not.Empty);
        Assert.That(options.NodeId, Does.Match("^[a-z0-9-]{1,64}$"));
    }
}

/// <summary>A clock that always reads <paramref name="now"/>.</summary>
internal sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}

/// <summary>Keeps every log line (category, level, message) for assertions.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    public System.Collections.Concurrent.ConcurrentQueue<(string Category, LogLevel Level, string Message)> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class CapturingLogger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => owner.Lines.Enqueue((category, logLevel, formatter(state, exception)));
    }
}
