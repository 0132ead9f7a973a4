using System.Collections.Concurrent;
using System.Text;

namespace Gaggle.Redis.Tests;

/// <summary>A cluster of <see cref="GaggleNode"/>s over one Redis, under a cluster name unique to the test.</summary>
internal sealed class RedisCluster : IAsyncDisposable
{
    private readonly string _configuration;
    private readonly Action<RedisPubSubChannelOptions>? _configureRedis;
    private readonly Action<GaggleOptions>? _configureNode;

    public RedisCluster(string configuration, int size, Action<RedisPubSubChannelOptions>? configureRedis = null, Action<GaggleOptions>? configureNode = null)
    {
        _configuration = configuration;
        _configureRedis = configureRedis;
        _configureNode = configureNode;
        Ids = Enumerable.Range(0, size).Select(i => ((char)('a' + i)).ToString()).ToArray();
        Name = "test-" + Guid.NewGuid().ToString("N")[..12];
    }

    public string Name { get; }

    public string[] Ids { get; }

    public ConcurrentDictionary<string, GaggleNode> Nodes { get; } = new();

    public ConcurrentDictionary<string, RedisPubSubChannel> Channels { get; } = new();

    public ConcurrentDictionary<string, List<string>> Committed { get; } = new();

    public async Task<GaggleNode> StartAsync(string id)
    {
        var options = new GaggleOptions
        {
            NodeId = id,
            Members = Ids,
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            ElectionTimeoutMin = TimeSpan.FromMilliseconds(150),
            ElectionTimeoutMax = TimeSpan.FromMilliseconds(300),
        };
        _configureNode?.Invoke(options);
        var redis = new RedisPubSubChannelOptions { Configuration = _configuration, ClusterName = Name, Members = Ids };
        _configureRedis?.Invoke(redis);
        var channel = new RedisPubSubChannel(id, redis);
        Channels[id] = channel;
        var node = new GaggleNode(options, channel);
        var log = Committed.GetOrAdd(id, _ => []);
        lock (log)
        {
            log.Clear();
        }

        node.Committed += (_, entry) =>
        {
            lock (log)
            {
                log.Add(Encoding.UTF8.GetString(entry.Data.Span));
            }
        };
        Nodes[id] = node;
        await node.StartAsync();
        return node;
    }

    public async Task StartAllAsync()
    {
        foreach (var id in Ids)
        {
            await StartAsync(id);
        }
    }

    public async Task StopAsync(string id)
    {
        if (Nodes.TryRemove(id, out var node))
        {
            await node.DisposeAsync();
        }
    }

    public async Task<GaggleNode> WaitForLeaderAsync()
    {
        GaggleNode? leader = null;
        await Eventually.True(
            () =>
            {
                var running = Nodes.Values.ToList();
                var leaders = running.Where(n => n.IsLeader).ToList();
                leader = leaders.Count == 1 && running.All(n => n.LeaderId == leaders[0].Id && n.Term == leaders[0].Term) ? leaders[0] : null;
                return leader is not null;
            },
            "every running node to agree on one leader");
        return leader!;
    }

    public List<string> CommittedTexts(string id)
    {
        var log = Committed[id];
        lock (log)
        {
            return [.. log];
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var id in Nodes.Keys.ToList())
        {
            await StopAsync(id);
        }
    }
}
