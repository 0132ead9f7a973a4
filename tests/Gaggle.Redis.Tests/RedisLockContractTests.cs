using System.Collections.Concurrent;
using Gaggle.Benchmarks;
using Gaggle.Channels;
using Gaggle.Tests.Locks.Contract;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>
/// The lock contract through Gaggle's own API over Redis, a cluster name per test. Redis has no
/// partitions of its own to inject, so a cut drops every message to and from the node at its
/// channel (<see cref="CuttableChannel"/>), as if its connections had gone.
/// </summary>
[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class RedisLockContractTests : LockContractTests
{
    protected override Task<LockContractCluster> StartClusterAsync(TimeSpan lease) => StartRedisClusterAsync(lease);

    protected override ILockContractClient ClientOf(GaggleNode node) => new NativeLockClient(node);

    /// <summary>Three nodes on Redis, in a cluster of their own; a cut drops the node's traffic at its channel.</summary>
    internal static async Task<LockContractCluster> StartRedisClusterAsync(TimeSpan lease)
    {
        string configuration = await RedisServer.RequireAsync();
        string cluster = "locks-" + Guid.NewGuid().ToString("N")[..12];
        var channels = new ConcurrentDictionary<string, CuttableChannel>();
        return await LockContractCluster.StartAsync(
            lease,
            id => channels[id] = new CuttableChannel(new RedisPubSubChannel(id, new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster })),
            id => channels[id].Cut());
    }
}

/// <summary>The multi-lock contract over Redis, a cluster name per test; cuts as for <see cref="RedisLockContractTests"/>.</summary>
[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class RedisMultiLockContractTests : MultiLockContractTests
{
    protected override Task<LockContractCluster> StartClusterAsync(TimeSpan lease) => RedisLockContractTests.StartRedisClusterAsync(lease);
}
