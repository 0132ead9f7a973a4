using System.Diagnostics;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>
/// Elastic mode (no member list) over a real Redis, in one process: nodes given only the cluster's
/// name form one cluster and record its generation in <c>gaggle:{cluster}:generation</c>; a live
/// cluster outlives the loss of that key.
/// </summary>
[TestFixture]
[Category("Redis")]
[NonParallelizable] // six nodes at 20 ms heartbeats: kept apart from the timing-sensitive Redis tests
public sealed class ElasticOverRedisTests
{
    private static async Task<GaggleNode> StartAsync(string configuration, string cluster, string name, Action<GaggleOptions>? configure = null)
    {
        var options = new GaggleOptions { NodeId = name };
        Fast(options);
        configure?.Invoke(options);
        var node = new GaggleNodeBuilder(options).UseRedis(configuration, redis => redis.ClusterName = cluster).Build();
        await node.StartAsync();
        return node;
    }

    /// <summary>One leader that every node follows, <paramref name="voters"/> voters, every node a member, the same configuration everywhere.</summary>
    private static bool OneClusterOf(IReadOnlyList<GaggleNode> nodes, int voters)
    {
        var leaders = nodes.Where(n => n.IsLeader).ToList();
        if (leaders.Count != 1)
        {
            return false;
        }

        var membership = leaders[0].Membership;
        return membership.Voters.Count == voters
            && nodes.All(n => membership.Contains(n.Id) && n.Membership == membership && n.LeaderId == leaders[0].Id);
    }

    [Test]
    public async Task FiveNodesFormOneClusterOfGenerationOneAndANewcomerJoinsItAfterTheKeyIsLost()
    {
        var configuration = await RedisServer.RequireAsync();
        var (cluster, key) = NewCluster();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
        var nodes = new List<GaggleNode>();
        try
        {
            nodes.AddRange(await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => StartAsync(configuration, cluster, "web"))));
            await Eventually.True(() => OneClusterOf(nodes, 3), "five nodes: one cluster, three voters, two learners");
            Assert.That(nodes.Select(n => n.Generation), Is.All.EqualTo(1L));
            Assert.That((string?)await redis.GetDatabase().StringGetAsync(key), Is.EqualTo("1"));
            Assert.That(await redis.GetDatabase().KeyTimeToLiveAsync(key), Is.Null, "the key never expires");

            // The key is lost (evicted, flushed, a failover without it): a newcomer reads no generation,
            // hears the live leader before its founding wait ends, and joins the live cluster.
            Assert.That(await redis.GetDatabase().KeyDeleteAsync(key), Is.True);
            var late = await StartAsync(configuration, cluster, "late");
            nodes.Add(late);
            await Eventually.True(() => OneClusterOf(nodes, 3), "the newcomer a member of the live cluster");
            Assert.That(late.Generation, Is.EqualTo(1), "it joined the live generation; it did not found a new one");
            Assert.That(nodes.Select(n => n.Generation), Is.All.EqualTo(1L));
            await UntilAsync(async () => (string?)await redis.GetDatabase().StringGetAsync(key) == "1", "the leader to restore the key");
        }
        finally
        {
            await StopAllAsync(nodes);
        }
    }

    /// <summary>
    /// A newcomer whose subscription is down while its commands still reach Redis (a half-open socket, a
    /// proxy, a channel ACL) hears neither the live cluster nor its own announcements: it waits, through
    /// three member timeouts, and founds nothing beside the live cluster. Once it hears again it joins
    /// it. (Counting its deafness as silence, it claimed generation 2 after one member timeout and
    /// led a second cluster beside the first.)
    /// </summary>
    [Test]
    public async Task A_newcomer_whose_subscription_is_down_founds_nothing_beside_the_live_cluster()
    {
        var configuration = await RedisServer.RequireAsync();
        var (cluster, key) = NewCluster();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
        var nodes = new List<GaggleNode>();
        try
        {
            nodes.AddRange(await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => StartAsync(configuration, cluster, "web", ShortMemberTimeout))));
            await Eventually.True(() => OneClusterOf(nodes, 1), "two nodes: one cluster");

            DeafChannel? deaf = null;
            var options = new GaggleOptions { NodeId = "deaf" };
            Fast(options);
            ShortMemberTimeout(options);
            var newcomer = new GaggleNodeBuilder(options).UseChannel(nodeOptions =>
            {
                var channelOptions = new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster };
                channelOptions.Validate(nodeOptions);
                return deaf = new DeafChannel(new RedisPubSubChannel(nodeOptions.NodeId, channelOptions));
            }).Build();
            await newcomer.StartAsync();
            nodes.Add(newcomer);

            var until = Stopwatch.StartNew();
            while (until.Elapsed < 3 * options.MemberTimeout)
            {
                Assert.That((newcomer.Generation, newcomer.IsLeader), Is.EqualTo((1L, false)).Or.EqualTo((0L, false)), "the deaf newcomer founds nothing");
                await Task.Delay(50);
            }

            Assert.That((string?)await redis.GetDatabase().StringGetAsync(key), Is.EqualTo("1"), "no claim of generation 2");
            deaf!.Deaf = false;
            await Eventually.True(() => OneClusterOf(nodes, 3), "it hears again and joins the live cluster");
            Assert.That(nodes.Select(n => n.Generation), Is.All.EqualTo(1L));
        }
        finally
        {
            await StopAllAsync(nodes);
        }
    }

    /// <summary>A cluster name of its own for one test, and its generation key.</summary>
    private static (string Cluster, RedisKey Key) NewCluster()
    {
        string cluster = "elastic-" + Guid.NewGuid().ToString("N")[..12];
        return (cluster, new RedisKey($"gaggle:{{{cluster}}}:generation"));
    }

    private static async Task StopAllAsync(IEnumerable<GaggleNode> nodes)
    {
        foreach (var node in nodes)
        {
            await node.DisposeAsync();
        }
    }

    private static void Fast(GaggleOptions options)
    {
        options.HeartbeatInterval = TimeSpan.FromMilliseconds(20);
        options.ElectionTimeoutMin = TimeSpan.FromMilliseconds(150);
        options.ElectionTimeoutMax = TimeSpan.FromMilliseconds(300);
    }

    private static void ShortMemberTimeout(GaggleOptions options) => options.MemberTimeout = TimeSpan.FromMilliseconds(1500);

    /// <summary>A Redis channel whose subscription is "down" while <see cref="Deaf"/>: nothing is delivered and no echo counted; sends and the store work.</summary>
    private sealed class DeafChannel(RedisPubSubChannel inner) : Gaggle.Channels.IChannel, Gaggle.Channels.IClusterGenerationStore, Gaggle.Channels.IEchoingChannel
    {
        public volatile bool Deaf = true;

        public string NodeId => inner.NodeId;

        public long EchoesHeard => Deaf ? 0 : ((Gaggle.Channels.IEchoingChannel)inner).EchoesHeard;

        public ValueTask ConnectAsync(Action<Gaggle.Channels.InboundMessage> receiver, CancellationToken cancellationToken = default)
            => inner.ConnectAsync(message =>
            {
                if (!Deaf)
                {
                    receiver(message);
                }
            }, cancellationToken);

        public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

        public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.SendAsync(to, payload, cancellationToken);

        public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.BroadcastAsync(payload, cancellationToken);

        public ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default) => inner.ReadGenerationAsync(cancellationToken);

        public ValueTask<bool> TryClaimGenerationAsync(long expected, CancellationToken cancellationToken = default) => inner.TryClaimGenerationAsync(expected, cancellationToken);

        public ValueTask<bool> TryReleaseClaimAsync(long claimed, CancellationToken cancellationToken = default) => inner.TryReleaseClaimAsync(claimed, cancellationToken);

        public ValueTask<long> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default) => inner.ConfirmGenerationAsync(generation, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var limit = TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Gave up after {limit.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(20);
        }
    }
}
