using System.Diagnostics;
using Gaggle.Channels;
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
            Assert.That(ElasticCluster.GenerationNumber(await redis.GetDatabase().StringGetAsync(key)), Is.EqualTo(1));
            Assert.That(await redis.GetDatabase().KeyTimeToLiveAsync(key), Is.Null, "the key never expires");

            // The key is lost (evicted, flushed, a failover without it): a newcomer reads no generation,
            // hears the live leader before its founding wait ends, and joins the live cluster.
            Assert.That(await redis.GetDatabase().KeyDeleteAsync(key), Is.True);
            var late = await StartAsync(configuration, cluster, "late");
            nodes.Add(late);
            await Eventually.True(() => OneClusterOf(nodes, 3), "the newcomer a member of the live cluster");
            Assert.That(late.Generation, Is.EqualTo(1), "it joined the live generation; it did not found a new one");
            Assert.That(nodes.Select(n => n.Generation), Is.All.EqualTo(1L));
            await UntilAsync(async () => ElasticCluster.GenerationNumber(await redis.GetDatabase().StringGetAsync(key)) == 1, "the leader to restore the key");
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

            Assert.That(ElasticCluster.GenerationNumber(await redis.GetDatabase().StringGetAsync(key)), Is.EqualTo(1), "no claim of generation 2");
            deaf!.Deaf = false;
            await Eventually.True(() => OneClusterOf(nodes, 3), "it hears again and joins the live cluster");
            Assert.That(nodes.Select(n => n.Generation), Is.All.EqualTo(1L));
        }
        finally
        {
            await StopAllAsync(nodes);
        }
    }

    /// <summary>
    /// The generation fence over a real Redis. Two nodes form generation 1 and one takes a lock; then the
    /// pub/sub bus is partitioned (as a Redis Cluster's bus can be): each side hears only itself, both
    /// reach the key. A newcomer on the other side hears no member for the member timeout and founds
    /// generation 2. The old leader's confirmation finds the key changed, so it appends nothing once
    /// generation 2 acts; its holder loses the hold (no renewal commits) before the newcomer is granted the lock,
    /// with a larger token; once the partition heals, all form one cluster of a later generation and the
    /// append the old leader held fails.
    /// </summary>
    [Test]
    public async Task A_generation_that_newcomers_cannot_hear_stops_acting_before_the_one_they_found_acts()
    {
        var configuration = await RedisServer.RequireAsync();
        var (cluster, key) = NewCluster();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
        var nodes = new List<GaggleNode>();
        var channels = new List<DeafChannel>();
        Task<GaggleNode> StartListeningAsync(string name) => StartPartitionableAsync(configuration, cluster, name, nodes, channels);

        try
        {
            var (oldLeader, hold, lost) = await FormGenerationOneHoldingALockAsync(StartListeningAsync, nodes);

            var old = nodes.Select(n => n.Id).ToHashSet();
            foreach (var channel in channels)
            {
                channel.Hears = old.Contains;
            }

            var newcomer = await StartListeningAsync("new");
            channels[^1].Hears = from => !old.Contains(from);
            await Eventually.True(() => newcomer.Generation == 2 && newcomer.IsLeader, "the newcomer, hearing nobody, founds generation 2");
            Assert.That(ElasticCluster.GenerationNumber(await redis.GetDatabase().StringGetAsync(key)), Is.EqualTo(2));

            // Generation 1 may act until its leader's last confirmation goes stale; generation 2 acts
            // only after that (its founder waits the settle time): from its first append on, the old
            // leader appends nothing.
            await newcomer.AppendAsync("generation 2"u8.ToArray());
            var held = oldLeader.AppendAsync("while generation 2 acts"u8.ToArray());

            var granted = await newcomer.Locks.AcquireAsync("resource", TimeSpan.FromSeconds(30));
            Assert.That(lost.Before(Stopwatch.GetTimestamp()), Is.True, "the old hold was lost before the new grant");
            Assert.That(granted.FencingToken, Is.GreaterThan(hold.FencingToken));
            Assert.That(held.IsCompletedSuccessfully, Is.False, "generation 1's leader appended while generation 2 acts");

            foreach (var channel in channels)
            {
                channel.Hears = null;
            }

            try
            {
                // While the partition lasts, each side takes the other for gone (generation 1's members,
                // their cluster over, may found generation 3 in turn): once it heals, one cluster remains.
                await Eventually.True(() => OneClusterOf(nodes, 3) && nodes.All(n => n.Generation >= 2 && n.Generation == nodes[0].Generation), "the partition heals: one cluster, of a generation after 1");
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException(e.Message + " " + string.Join("; ", nodes.Select(n => $"{n.Id}: g{n.Generation} t{n.Term} leader {n.LeaderId} {n.Membership} last {n.LastLogIndex}")) + $" key {(string?)await redis.GetDatabase().StringGetAsync(key)}");
            }
            await Assert.ThatAsync(() => held, Throws.InstanceOf<InvalidOperationException>(), "the held append failed: its outcome is unknown to the caller");
        }
        finally
        {
            await StopAllAsync(nodes);
        }
    }

    /// <summary>
    /// The generation fence when Redis also loses the key. Two nodes form generation 1 and one takes a
    /// lock; the bus is partitioned and the old side cannot reach Redis either (a frozen VM, as far as
    /// the key can tell); the key is deleted. A newcomer founds generation 1 again, under another tag.
    /// When the old side reaches Redis again, its leader finds the key naming the other generation of
    /// its number and appends nothing while the newcomer's acts; once the partition heals, one cluster
    /// remains, the one the key names, and the held append fails.
    /// </summary>
    [Test]
    public async Task A_generation_founded_again_under_the_same_number_after_the_key_is_lost_never_acts_beside_the_live_one()
    {
        var configuration = await RedisServer.RequireAsync();
        var (cluster, key) = NewCluster();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
        var nodes = new List<GaggleNode>();
        var channels = new List<DeafChannel>();
        Task<GaggleNode> StartListeningAsync(string name) => StartPartitionableAsync(configuration, cluster, name, nodes, channels);

        try
        {
            var (oldLeader, _, lost) = await FormGenerationOneHoldingALockAsync(StartListeningAsync, nodes);
            var oldChannel = channels[nodes.IndexOf(oldLeader)];

            var old = nodes.Select(n => n.Id).ToHashSet();
            foreach (var channel in channels)
            {
                channel.Hears = old.Contains;
                channel.StoreCut = true;
            }

            Assert.That(await redis.GetDatabase().KeyDeleteAsync(key), Is.True);
            var newcomer = await StartListeningAsync("new");
            channels[^1].Hears = from => !old.Contains(from);
            await Eventually.True(() => newcomer.IsLeader && newcomer.Generation == 1, "the newcomer, hearing nobody on an empty key, founds generation 1 again (under another tag)");
            await newcomer.AppendAsync("the second generation 1"u8.ToArray());

            long confirmed = oldChannel.ConfirmsAnswered;
            foreach (var channel in channels)
            {
                channel.StoreCut = false;
            }

            var held = oldLeader.AppendAsync("while the other generation 1 acts"u8.ToArray());
            await Eventually.True(() => oldChannel.ConfirmsAnswered >= confirmed + 8, "the old leader's confirmations reach Redis again (two seconds of them)");
            Assert.That(held.IsCompleted, Is.False, "the first generation 1's leader appended while the second acts");
            var granted = await newcomer.Locks.AcquireAsync("resource", TimeSpan.FromSeconds(30));
            Assert.That(lost.Before(Stopwatch.GetTimestamp()), Is.True, "the old hold was lost before the new grant");
            Assert.That(held.IsCompleted, Is.False);

            foreach (var channel in channels)
            {
                channel.Hears = null;
            }

            long named = await channels[^1].ReadGenerationAsync();
            await Eventually.True(() => OneClusterOf(nodes, 3) && nodes.All(n => n.GenerationId == named), "the partition heals: one cluster, the generation the key names");
            Assert.That(granted.FencingToken >> 48, Is.EqualTo(1));
            await Assert.ThatAsync(() => held, Throws.InstanceOf<InvalidOperationException>(), "the held append failed: its outcome is unknown to the caller");
        }
        finally
        {
            await StopAllAsync(nodes);
        }
    }

    /// <summary>Two nodes form generation 1 and its leader takes the lock "resource"; <c>Lost</c> records when that hold is lost.</summary>
    private static async Task<(GaggleNode Leader, Gaggle.Locks.GaggleLockHandle Hold, HoldLoss Lost)> FormGenerationOneHoldingALockAsync(Func<string, Task<GaggleNode>> start, List<GaggleNode> nodes)
    {
        await start("old");
        await start("old");
        await Eventually.True(() => OneClusterOf(nodes, 1), "two nodes form generation 1");
        var leader = nodes.Single(n => n.IsLeader);
        var hold = await leader.Locks.AcquireAsync("resource");
        var lost = new HoldLoss();
        hold.HandleLostToken.Register(lost.Record);
        return (leader, hold, lost);
    }

    /// <summary>When a hold was lost (its <c>HandleLostToken</c> fired), if it was.</summary>
    private sealed class HoldLoss
    {
        private long _atTicks = -1;

        public void Record() => Interlocked.CompareExchange(ref _atTicks, Stopwatch.GetTimestamp(), -1);

        /// <summary>Whether the hold was lost, before <paramref name="timestamp"/> (a <see cref="Stopwatch"/> timestamp).</summary>
        public bool Before(long timestamp) => Interlocked.Read(ref _atTicks) is > -1 and var at && at < timestamp;
    }

    /// <summary>
    /// Starts a node whose Redis channel the test can make deaf, partition or cut from the store
    /// (<see cref="DeafChannel"/>). A member timeout well above the lock's hold-off, so a newcomer's grant
    /// comes before the old side, its cluster over, founds a generation of its own in turn.
    /// </summary>
    private static async Task<GaggleNode> StartPartitionableAsync(string configuration, string cluster, string name, List<GaggleNode> nodes, List<DeafChannel> channels)
    {
        var options = new GaggleOptions { NodeId = name, LockLeaseDuration = TimeSpan.FromSeconds(2), MemberTimeout = TimeSpan.FromSeconds(4) };
        Fast(options);
        var node = new GaggleNodeBuilder(options).UseChannel(nodeOptions =>
        {
            var channelOptions = new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster };
            channelOptions.Validate(nodeOptions);
            var channel = new DeafChannel(new RedisPubSubChannel(nodeOptions.NodeId, channelOptions)) { Deaf = false };
            channels.Add(channel);
            return channel;
        }).Build();
        await node.StartAsync();
        nodes.Add(node);
        return node;
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

    /// <summary>
    /// A Redis channel whose subscription is "down" while <see cref="Deaf"/>: nothing is delivered and no
    /// echo counted; sends and the store work. While <see cref="Hears"/> is set, only messages from the
    /// senders it accepts are delivered (a partition of the pub/sub bus; echoes still count).
    /// </summary>
    private sealed class DeafChannel(RedisPubSubChannel inner) : Gaggle.Channels.IChannel, Gaggle.Channels.IClusterGenerationStore, Gaggle.Channels.IEchoingChannel
    {
        public volatile bool Deaf = true;

        public volatile Func<string, bool>? Hears;

        /// <summary>While set, every call to the store fails, as for a node that cannot reach Redis.</summary>
        public volatile bool StoreCut;

        private long _confirmsAnswered;

        /// <summary>Confirmations the store answered.</summary>
        public long ConfirmsAnswered => Interlocked.Read(ref _confirmsAnswered);

        public string NodeId => inner.NodeId;

        public long EchoesHeard => Deaf ? 0 : ((Gaggle.Channels.IEchoingChannel)inner).EchoesHeard;

        public ValueTask ConnectAsync(Action<Gaggle.Channels.InboundMessage> receiver, CancellationToken cancellationToken = default)
            => inner.ConnectAsync(message =>
            {
                if (!Deaf && Hears?.Invoke(message.From) != false)
                {
                    receiver(message);
                }
            }, cancellationToken);

        public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

        public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.SendAsync(to, payload, cancellationToken);

        public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.BroadcastAsync(payload, cancellationToken);

        public ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default) => ThrowIfCut(inner.ReadGenerationAsync, cancellationToken);

        public ValueTask<bool> TryClaimGenerationAsync(long expected, long claimed, CancellationToken cancellationToken = default) => ThrowIfCut(token => inner.TryClaimGenerationAsync(expected, claimed, token), cancellationToken);

        public ValueTask<bool> TryReleaseClaimAsync(long claimed, long expected, CancellationToken cancellationToken = default) => ThrowIfCut(token => inner.TryReleaseClaimAsync(claimed, expected, token), cancellationToken);

        public async ValueTask<GenerationConfirmation> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default)
        {
            await ThrowIfCut(_ => ValueTask.FromResult(0L), cancellationToken);
            var answer = await inner.ConfirmGenerationAsync(generation, cancellationToken);
            Interlocked.Increment(ref _confirmsAnswered);
            return answer;
        }

        private ValueTask<T> ThrowIfCut<T>(Func<CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
            => StoreCut ? ValueTask.FromException<T>(new InvalidOperationException("Redis is out of reach (the test cut this node's store off)")) : call(cancellationToken);

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
