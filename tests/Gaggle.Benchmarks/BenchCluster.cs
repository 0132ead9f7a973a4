using System.Diagnostics;
using Gaggle.Channels;
using Gaggle.Redis;
using StackExchange.Redis;

namespace Gaggle.Benchmarks;

/// <summary>
/// The nodes of a Gaggle cluster that live in this process: all of them, over the in-memory network or
/// over Redis pub/sub (a connection per node, as separate processes would have), or, in a node process
/// of <c>--processes</c>, just one member of a cluster over Redis.
/// </summary>
internal sealed class BenchCluster : IAsyncDisposable
{
    private readonly LoadSettings _settings;
    private readonly InMemoryNetwork? _network;
    private readonly List<RedisPubSubChannel> _redisChannels = [];
    private readonly Dictionary<string, CuttableChannel> _cuttable = [];
    private readonly HashSet<GaggleNode> _stopped = [];

    /// <param name="ids">The member list; empty in elastic mode, where <paramref name="localIds"/> are display names and each node gets a member id of its own.</param>
    private BenchCluster(LoadSettings settings, string clusterName, string[] ids, IEnumerable<string> localIds)
    {
        _settings = settings;
        _network = settings.IsRedis ? null : new InMemoryNetwork();
        ClusterName = clusterName;
        foreach (var id in localIds)
        {
            var builder = new GaggleNodeBuilder(new GaggleOptions { NodeId = id, Members = ids });
            if (_network is not null)
            {
                builder.UseInMemory(_network);
            }
            else
            {
                builder.UseChannel(options =>
                {
                    var channel = new RedisPubSubChannel(options.NodeId, new RedisPubSubChannelOptions
                    {
                        Configuration = settings.Redis,
                        ClusterName = ClusterName,
                        Members = ids.Length > 0 ? ids : null,
                    });
                    var cuttable = new CuttableChannel(channel);
                    lock (_redisChannels)
                    {
                        _redisChannels.Add(channel);
                        _cuttable[options.NodeId] = cuttable;
                    }

                    return cuttable;
                });
            }

            Nodes.Add(builder.Build());
        }
    }

    public string ClusterName { get; }

    /// <summary>The member ids of a cluster of <paramref name="nodes"/> nodes: n1, n2, ...</summary>
    public static string[] MemberIds(int nodes) => Enumerable.Range(0, nodes).Select(i => $"n{i + 1}").ToArray();

    /// <summary>A cluster name no earlier run used, so runs never hear each other's messages.</summary>
    public static string NewClusterName() => $"bench-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Builds (does not start) the one member <paramref name="id"/> of a cluster whose other members run elsewhere.</summary>
    public static BenchCluster HostOne(LoadSettings settings, string clusterName, string[] members, string id)
        => new(settings, clusterName, members, [id]);

    public List<GaggleNode> Nodes { get; } = [];

    public IEnumerable<GaggleNode> Running => Nodes.Where(n => !_stopped.Contains(n));

    /// <summary>PUBLISHes so far, summed over every node's Redis channel (0 in memory).</summary>
    public long RedisPublished => RedisSum(static s => s.Published);

    /// <summary>Envelopes accepted and handed to a node so far, summed over every node's Redis channel (0 in memory).</summary>
    public long RedisReceived => RedisSum(static s => s.Received);

    /// <summary>Inbound envelopes dropped so far (every reason), summed over every node's Redis channel (0 in memory).</summary>
    public long RedisDropped => RedisSum(static s => s.Dropped);

    /// <summary>Messages the in-memory network delivered so far (0 over Redis).</summary>
    public long MemoryDelivered => _network?.Delivered ?? 0;

    /// <summary>
    /// Starts every node at once and measures the time until all running nodes agree on a leader or, in
    /// elastic mode, until the cluster has formed (<see cref="FormedAsync"/>); an elastic cluster is then
    /// also waited on until it grants its first lock (a new generation holds locks off for a while).
    /// </summary>
    public static async Task<(BenchCluster Cluster, StartFigures Start)> StartAsync(LoadSettings settings, TimeSpan timeout)
    {
        string[] ids = MemberIds(settings.Nodes);
        var cluster = new BenchCluster(settings, NewClusterName(), settings.IsElastic ? [] : ids, ids);
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(cluster.Nodes.Select(n => n.StartAsync())).ConfigureAwait(false);
        if (!settings.IsElastic)
        {
            var leader = await cluster.AgreedLeaderAsync(timeout, previousTerm: 0).ConfigureAwait(false);
            double electionMs = clock.Elapsed.TotalMilliseconds;
            Console.Error.WriteLine($"leader {leader.Id} elected in term {leader.Term} after {electionMs:0.0} ms");
            return (cluster, new StartFigures(electionMs, null));
        }

        var founder = await cluster.FormedAsync(timeout).ConfigureAwait(false);
        double formedMs = clock.Elapsed.TotalMilliseconds;
        Console.Error.WriteLine($"generation {founder.Generation} formed after {formedMs:0.0} ms: leader {founder.Id}, {founder.Membership}");
        await using (await founder.Locks.AcquireAsync("bench:hold-off", HoldOffTimeout).ConfigureAwait(false))
        {
        }

        double firstLockMs = clock.Elapsed.TotalMilliseconds;
        Console.Error.WriteLine($"first lock granted after {firstLockMs:0.0} ms");
        return (cluster, new StartFigures(formedMs, firstLockMs));
    }

    /// <summary>Longer than the hold-off of a new generation with default options (about 8.5 s).</summary>
    private static readonly TimeSpan HoldOffTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Elastic mode: waits until one leader leads every running node, its configuration has
    /// <see cref="ExpectedVoters"/> voters and every running node is a member that sees that same configuration.
    /// </summary>
    public async Task<GaggleNode> FormedAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var running = Running.ToList();
            var leaders = running.Where(n => n.IsLeader).ToList();
            if (leaders is [var leader] && leader.Membership is var membership && membership.Voters.Count == ExpectedVoters
                && running.All(n => membership.Contains(n.Id) && n.Membership == membership && n.LeaderId == leader.Id))
            {
                return leader;
            }

            await Task.Delay(5).ConfigureAwait(false);
        }

        throw new TimeoutException($"The elastic cluster did not form within {timeout.TotalSeconds:0} s: " +
            string.Join(", ", Running.Select(n => $"{n.Id}={n.Role}/generation {n.Generation}/leader {n.LeaderId ?? "-"}/{n.Membership}")));
    }

    /// <summary>Voters an elastic cluster of this size promotes: the default <see cref="GaggleOptions.Voters"/> (3), or every node when fewer.</summary>
    public int ExpectedVoters => Math.Min(3, Nodes.Count);

    /// <summary>Waits until every running node names the same leader, in a term after <paramref name="previousTerm"/>.</summary>
    public async Task<GaggleNode> AgreedLeaderAsync(TimeSpan timeout, long previousTerm)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var running = Running.ToList();
            var leader = running.FirstOrDefault(n => n.IsLeader && n.Term > previousTerm);
            if (leader is not null && running.All(n => n.LeaderId == leader.Id && n.Term == leader.Term))
            {
                return leader;
            }

            await Task.Delay(1).ConfigureAwait(false);
        }

        throw new TimeoutException($"No agreed leader within {timeout.TotalSeconds:0} s: " +
            string.Join(", ", Running.Select(n => $"{n.Id}={n.Role}/term {n.Term}/leader {n.LeaderId ?? "-"}")));
    }

    /// <summary>
    /// Between phases: waits (2 s at most) until every running node has applied what the leader
    /// committed, so a phase does not pay for the previous one's backlog, then collects garbage.
    /// </summary>
    public async Task SettleAsync()
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(2))
        {
            var running = Running.ToList();
            long target = running.Max(n => n.CommitIndex);
            if (running.All(n => n.CommitIndex == target && n.LastLogIndex == target))
            {
                break;
            }

            await Task.Delay(5).ConfigureAwait(false);
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>
    /// Stops <paramref name="node"/> as a crash would: cut off first (from the in-memory network, or
    /// its Redis channel stops sending and delivering), so no hand-over reaches anyone, then disposed.
    /// With <paramref name="clean"/>, it is only disposed: a clean leave, where a leader hands
    /// leadership to an up-to-date follower.
    /// </summary>
    /// <returns>The disposal, which the caller awaits when it suits its timing.</returns>
    public Task StopAsync(GaggleNode node, bool clean = false)
    {
        _stopped.Add(node);
        if (!clean)
        {
            _network?.Isolate(node.Id);
            lock (_redisChannels)
            {
                if (_cuttable.TryGetValue(node.Id, out var channel))
                {
                    channel.Cut();
                }
            }
        }

        return node.DisposeAsync().AsTask();
    }

    private long RedisSum(Func<RedisPubSubChannelStatistics, long> counter)
    {
        lock (_redisChannels)
        {
            return _redisChannels.Sum(c => counter(c.Statistics));
        }
    }

    public string StopMethod => _network is null
        ? "leader's Redis channel cut (sends and deliveries dropped), then DisposeAsync: a crash, no hand-over"
        : "network.Isolate(leader) then DisposeAsync: a crash, no hand-over reaches anyone";

    public async ValueTask DisposeAsync()
    {
        var disposals = Nodes.Select(n => n.DisposeAsync().AsTask());
        await Task.WhenAny(Task.WhenAll(disposals), Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        if (_settings.IsElastic && _settings.Redis is { } configuration)
        {
            // Each run's cluster name is new: its generation key would otherwise stay in Redis for good.
            await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
            await redis.GetDatabase().KeyDeleteAsync($"gaggle:{{{ClusterName}}}:generation").ConfigureAwait(false);
        }
    }
}

/// <summary>
/// How the cluster started: <paramref name="ElectionMs"/> until every node agreed on a leader (static) or the
/// cluster had formed (elastic); <paramref name="FirstLockMs"/> (elastic only) until it granted its first lock.
/// </summary>
internal sealed record StartFigures(double ElectionMs, double? FirstLockMs);
