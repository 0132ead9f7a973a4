using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>Redis misbehaving under a running cluster: connections killed, the server restarted.</summary>
[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class FaultTests
{
    /// <summary>Appends in a loop on every node, recording the ones acknowledged as committed.</summary>
    private sealed class Load(RedisCluster cluster)
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _writers = [];

        public ConcurrentBag<string> Acknowledged { get; } = [];

        public void Start()
        {
            foreach (var node in cluster.Nodes.Values)
            {
                _writers.Add(Task.Run(async () =>
                {
                    for (int i = 0; !_stop.IsCancellationRequested; i++)
                    {
                        string text = $"{node.Id}-{i}";
                        try
                        {
                            await node.AppendAsync(Encoding.UTF8.GetBytes(text), TimeSpan.FromSeconds(10), _stop.Token);
                            Acknowledged.Add(text);
                        }
                        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
                        {
                            // Unacknowledged: it may or may not commit, but never twice.
                        }
                    }
                }));
            }
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_writers);
        }
    }

    private static async Task AssertEveryAcknowledgedAppendCommittedOnceEverywhere(RedisCluster cluster, Load load)
    {
        var acknowledged = load.Acknowledged.ToHashSet();
        List<List<string>> logs = [];
        await Eventually.True(
            () =>
            {
                // Cancelled appends may still commit after the load stopped: compare one consistent snapshot.
                logs = cluster.Nodes.Keys.Select(cluster.CommittedTexts).ToList();
                return logs.All(log => acknowledged.IsSubsetOf(log) && log.SequenceEqual(logs[0]));
            },
            "every acknowledged append on every node, and identical committed logs");
        Assert.That(logs[0], Is.Unique, "no entry applied twice");
    }

    [Test]
    public async Task KillingTheLeadersRedisConnectionsMidLoadLosesNoAcknowledgedAppend()
    {
        var configuration = await RedisServer.RequireAsync();
        await using var cluster = new RedisCluster(configuration, 3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var load = new Load(cluster);
        load.Start();
        await Eventually.True(() => load.Acknowledged.Count >= 150, "150 acknowledged appends before the kill");

        await using var admin = await ConnectionMultiplexer.ConnectAsync(configuration + ",allowAdmin=true");
        var server = admin.GetServer(admin.GetEndPoints()[0]);
        var victims = (await server.ClientListAsync()).Where(c => c.Name == $"gaggle-{cluster.Name}-{leader.Id}").ToList();
        Assert.That(victims, Is.Not.Empty, "the leader's connections are named after the cluster and node");
        foreach (var victim in victims)
        {
            await server.ClientKillAsync(victim.Id);
        }

        int atKill = load.Acknowledged.Count;
        await Eventually.True(() => load.Acknowledged.Count >= atKill + 150, "150 more acknowledged appends after the kill");
        await load.StopAsync();
        await AssertEveryAcknowledgedAppendCommittedOnceEverywhere(cluster, load);
        Assert.That(cluster.Channels[leader.Id].Statistics.ConnectionFailures, Is.GreaterThan(0), "the kill was noticed");
    }

    [Test]
    public async Task ARedisRestartMidRunIsSurvivedWithoutHelp()
    {
        await using var redis = await OwnRedisServer.StartAsync();
        await using var cluster = new RedisCluster(redis.Configuration, 3);
        await cluster.StartAllAsync();
        await cluster.WaitForLeaderAsync();
        var load = new Load(cluster);
        load.Start();
        await Eventually.True(() => load.Acknowledged.Count >= 100, "100 acknowledged appends before the restart");

        await redis.StopAsync();
        var duringOutage = cluster.Nodes["b"].AppendAsync("appended during the outage"u8.ToArray(), TimeSpan.FromSeconds(60));
        await redis.StartAgainAsync();

        Assert.That(await duringOutage, Is.GreaterThan(0));
        int atRestart = load.Acknowledged.Count;
        await Eventually.True(() => load.Acknowledged.Count >= atRestart + 100, "100 more acknowledged appends after the restart", TimeSpan.FromSeconds(60));
        await load.StopAsync();
        await AssertEveryAcknowledgedAppendCommittedOnceEverywhere(cluster, load);
        Assert.That(cluster.CommittedTexts("a"), Does.Contain("appended during the outage"));
        Assert.That(cluster.Channels.Values.Select(c => c.Statistics.ConnectionFailures), Has.All.GreaterThan(0), "every node saw Redis go away");
        Assert.That(cluster.Channels.Values.Select(c => c.Statistics.ConnectionRestores), Has.All.GreaterThan(0), "and come back");
    }
}

/// <summary>
/// A Redis owned by one test, so the test may stop and restart it: a redis-server process, or, when the
/// tests run on the embedded server or no redis-server binary is on PATH, an embedded Garnet.
/// </summary>
internal sealed class OwnRedisServer : IAsyncDisposable
{
    private readonly int _port;
    private readonly EmbeddedRedisServer? _embedded;
    private Process? _process;

    private OwnRedisServer(int port, EmbeddedRedisServer? embedded)
    {
        _port = port;
        _embedded = embedded;
    }

    public string Configuration => _embedded?.Configuration ?? $"127.0.0.1:{_port}";

    public static async Task<OwnRedisServer> StartAsync()
    {
        await RedisServer.RequireAsync(); // resolves which Redis the run uses, so IsEmbedded is known
        bool onPath = Environment.GetEnvironmentVariable("PATH")?.Split(':').Any(p => File.Exists(Path.Combine(p, "redis-server"))) == true;
        if (RedisServer.IsEmbedded || !onPath)
        {
            return new OwnRedisServer(0, await EmbeddedRedisServer.StartAsync());
        }

        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var server = new OwnRedisServer(port, embedded: null);
        await server.StartAgainAsync();
        return server;
    }

    public async Task StartAgainAsync()
    {
        if (_embedded is not null)
        {
            await _embedded.StartAgainAsync();
            return;
        }

        _process = Process.Start(new ProcessStartInfo("redis-server", $"--port {_port} --bind 127.0.0.1 --save \"\" --appendonly no")
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        await Eventually.True(() => CanConnect(), $"redis-server to accept connections on port {_port}");
    }

    public async Task StopAsync()
    {
        if (_embedded is not null)
        {
            await _embedded.StopAsync();
            return;
        }

        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
    }

    private bool CanConnect()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, _port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
