using System.Text;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class RedisClusterTests
{
    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    [TestCase(3)]
    [TestCase(5)]
    public async Task ElectsCommitsFromEveryNodeAndReElects(int size)
    {
        await using var cluster = new RedisCluster(await RedisServer.RequireAsync(), size);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var appends = cluster.Nodes.Values.SelectMany(n => Enumerable.Range(0, 20).Select(i => n.AppendAsync(Bytes($"{n.Id}-{i}"), TimeSpan.FromSeconds(20)))).ToList();
        await Task.WhenAll(appends);
        int expected = size * 20;
        await Eventually.True(() => cluster.Ids.All(id => cluster.CommittedTexts(id).Count == expected), $"{expected} entries on every node");
        var reference = cluster.CommittedTexts("a");
        Assert.That(reference, Is.Unique);
        foreach (var id in cluster.Ids)
        {
            Assert.That(cluster.CommittedTexts(id), Is.EqualTo(reference), $"node {id}'s committed log");
        }

        await cluster.StopAsync(leader.Id);
        var successor = await cluster.WaitForLeaderAsync();
        Assert.That(successor.Id, Is.Not.EqualTo(leader.Id));
        var follower = cluster.Nodes.Values.First(n => n != successor);
        await follower.AppendAsync(Bytes("after re-election"), TimeSpan.FromSeconds(20));
        await Eventually.True(() => cluster.Nodes.Keys.All(id => cluster.CommittedTexts(id).Contains("after re-election")), "the entry everywhere");
    }

    [Test]
    public async Task BuilderUseRedisFormsACluster()
    {
        var configuration = await RedisServer.RequireAsync();
        string cluster = "builder-" + Guid.NewGuid().ToString("N")[..12];
        string[] ids = ["a", "b", "c"];
        var nodes = ids.Select(id => new GaggleNodeBuilder(new GaggleOptions { NodeId = id, Members = ids })
            .UseRedis(configuration, redis => redis.ClusterName = cluster)
            .Build()).ToList();
        try
        {
            foreach (var node in nodes)
            {
                await node.StartAsync();
            }

            long index = await nodes[1].AppendAsync(Bytes("via builder"), TimeSpan.FromSeconds(20));
            await Eventually.True(() => nodes.All(n => n.CommitIndex >= index), "the commit everywhere");
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task ASharedConnectionIsNotDisposedByTheChannel()
    {
        var configuration = await RedisServer.RequireAsync();
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(configuration);
        var channel = new RedisPubSubChannel("a", new RedisPubSubChannelOptions { Connection = connection, ClusterName = "shared-" + Guid.NewGuid().ToString("N")[..8] });
        await channel.ConnectAsync(_ => { });
        await channel.DisposeAsync();
        Assert.That(connection.IsConnected, Is.True);
        Assert.That(await connection.GetDatabase().PingAsync(), Is.GreaterThan(TimeSpan.Zero));
    }
}
