using System.Collections.Concurrent;
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

    /// <summary>A channel whose traffic can be cut in both directions at once (nothing sent or delivered from then on).</summary>
    private sealed class CuttableChannel(IChannel inner) : IChannel
    {
        private volatile bool _cut;

        public string NodeId => inner.NodeId;

        public void Cut() => _cut = true;

        public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default)
            => inner.ConnectAsync(message =>
            {
                if (!_cut)
                {
                    receiver(message);
                }
            }, cancellationToken);

        public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

        public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
            => _cut ? ValueTask.CompletedTask : inner.SendAsync(to, payload, cancellationToken);

        public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
            => _cut ? ValueTask.CompletedTask : inner.BroadcastAsync(payload, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
