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
    private static async Task<GaggleNode> StartAsync(string configuration, string cluster, string name)
    {
        var options = new GaggleOptions
        {
            NodeId = name,
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            ElectionTimeoutMin = TimeSpan.FromMilliseconds(150),
            ElectionTimeoutMax = TimeSpan.FromMilliseconds(300),
        };
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
        string cluster = "elastic-" + Guid.NewGuid().ToString("N")[..12];
        await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
        var key = new RedisKey($"gaggle:{{{cluster}}}:generation");
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
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
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
