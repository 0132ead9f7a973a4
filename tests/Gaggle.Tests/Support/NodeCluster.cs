using System.Collections.Concurrent;
using System.Text;
using Gaggle.Channels;
using Gaggle.Storage;

namespace Gaggle.Tests.Support;

/// <summary>A cluster of <see cref="GaggleNode"/>s over an <see cref="InMemoryNetwork"/>, for tests.</summary>
internal sealed class NodeCluster : IAsyncDisposable
{
    private readonly Action<GaggleOptions>? _configure;
    private readonly Dictionary<string, InMemoryRaftStorage> _storage = [];

    public NodeCluster(int size, Action<GaggleOptions>? configure = null, int seed = 1)
    {
        Ids = Enumerable.Range(0, size).Select(i => ((char)('a' + i)).ToString()).ToArray();
        Network = new InMemoryNetwork(seed);
        _configure = configure;
    }

    public string[] Ids { get; }

    public InMemoryNetwork Network { get; }

    public ConcurrentDictionary<string, GaggleNode> Nodes { get; } = new();

    /// <summary>Committed payloads (as strings) per node, in the order the node delivered them.</summary>
    public ConcurrentDictionary<string, List<(long Index, string Text)>> Committed { get; } = new();

    public GaggleNode this[string id] => Nodes[id];

    public static GaggleOptions FastOptions(string id, IEnumerable<string> members) => new()
    {
        NodeId = id,
        Members = members.ToList(),
        HeartbeatInterval = TimeSpan.FromMilliseconds(20),
        ElectionTimeoutMin = TimeSpan.FromMilliseconds(150),
        ElectionTimeoutMax = TimeSpan.FromMilliseconds(300),
    };

    public async Task<GaggleNode> StartAsync(string id)
    {
        var options = FastOptions(id, Ids);
        _configure?.Invoke(options);
        if (!_storage.TryGetValue(id, out var storage))
        {
            storage = new InMemoryRaftStorage();
            _storage[id] = storage;
        }

        var node = new GaggleNode(options, Network.CreateChannel(id), storage);
        var log = Committed.GetOrAdd(id, _ => []);
        lock (log)
        {
            log.Clear();
        }

        node.Committed += (_, entry) =>
        {
            lock (log)
            {
                log.Add((entry.Index, Encoding.UTF8.GetString(entry.Data.Span)));
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

    /// <summary>Waits until every running node agrees on one leader, and returns it.</summary>
    public async Task<GaggleNode> WaitForLeaderAsync(TimeSpan? deadline = null)
    {
        return await Eventually.Get(
            () =>
            {
                var running = Nodes.Values.ToList();
                var leaders = running.Where(n => n.IsLeader).ToList();
                if (leaders.Count != 1)
                {
                    return null;
                }

                var leader = leaders[0];
                return running.All(n => n.LeaderId == leader.Id && n.Term == leader.Term) ? leader : null;
            },
            "every running node to agree on one leader",
            deadline);
    }

    public GaggleNode AnyFollower(GaggleNode leader) => Nodes.Values.First(n => n != leader);

    public List<string> CommittedTexts(string id)
    {
        var log = Committed[id];
        lock (log)
        {
            return log.Select(e => e.Text).ToList();
        }
    }

    public Task WaitForCommittedEverywhereAsync(string text)
        => Eventually.True(() => Nodes.Keys.All(id => CommittedTexts(id).Contains(text)), $"'{text}' committed on every running node");

    public async ValueTask DisposeAsync()
    {
        foreach (var id in Nodes.Keys.ToList())
        {
            await StopAsync(id);
        }
    }
}
