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
    protected override async Task<LockContractCluster> StartClusterAsync(TimeSpan lease)
    {
        string configuration = await RedisServer.RequireAsync();
        string cluster = "locks-" + Guid.NewGuid().ToString("N")[..12];
        var channels = new ConcurrentDictionary<string, CuttableChannel>();
        return await LockContractCluster.StartAsync(
            lease,
            id => channels[id] = new CuttableChannel(new RedisPubSubChannel(id, new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster })),
            id => channels[id].Cut());
    }

    protected override ILockContractClient ClientOf(GaggleNode node) => new NativeLockClient(node);
}
