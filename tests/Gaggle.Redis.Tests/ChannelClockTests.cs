using Gaggle.Channels;
using Gaggle.Tests.Support;
using Microsoft.Extensions.Logging;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>The channel keeps time with the <see cref="TimeProvider"/> it is given, and a node's builder gives it the node's.</summary>
[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class ChannelClockTests
{
    /// <summary>
    /// A manual clock <paramref name="centuries"/> ahead of the system clock: an incarnation read from
    /// it cannot come from the system clock. A channel's incarnation is above every one taken before
    /// in the process, so a test that checks where an incarnation came from needs a clock ahead of
    /// every other test's.
    /// </summary>
    private static ManualTimeProvider ClockAhead(int centuries = 1)
    {
        var clock = new ManualTimeProvider();
        clock.Advance(TimeSpan.FromDays(centuries * 100 * 365));
        return clock;
    }

    private static string NewCluster() => "clock-" + Guid.NewGuid().ToString("N")[..12];

    [Test]
    public async Task ARestartedSenderIsHeardWhileTheClockStandsStill()
    {
        var configuration = await RedisServer.RequireAsync();
        string cluster = NewCluster();
        var clock = ClockAhead();
        var received = new List<byte>();
        await using var b = new RedisPubSubChannel("b", new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster });
        await b.ConnectAsync(message =>
        {
            lock (received)
            {
                received.Add(message.Payload.Span[0]);
            }
        });

        var first = new RedisPubSubChannel("a", new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster }, timeProvider: clock);
        await first.ConnectAsync(_ => { });
        for (byte i = 1; i <= 3; i++)
        {
            await first.SendAsync("b", new[] { i });
        }

        await Eventually.True(() => b.Statistics.Received == 3, "the first life's three messages");
        await first.DisposeAsync();

        // The same node restarted on the same tick of its clock: its sequence starts again at 1.
        await using var second = new RedisPubSubChannel("a", new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster }, timeProvider: clock);
        await second.ConnectAsync(_ => { });
        await second.SendAsync("b", new byte[] { 4 });
        await Eventually.True(() => b.Statistics.Received == 4 || b.Statistics.Dropped > 0, "the second life's message to arrive");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(first.Incarnation, Is.GreaterThanOrEqualTo((ulong)clock.GetUtcNow().UtcTicks), "taken from the channel's clock");
            Assert.That(second.Incarnation, Is.GreaterThan(first.Incarnation));
            Assert.That(b.Statistics.DroppedFor(DropReason.Duplicate), Is.Zero, "the new life is not mistaken for a replay of the old one");
            Assert.That(received, Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
        }

        // A late envelope of the first life is now stale.
        await using var raw = await ConnectionMultiplexer.ConnectAsync(configuration);
        var late = new RedisEnvelope(cluster, "a", first.Incarnation, 99, new byte[] { 5 }).Encode(null);
        await raw.GetSubscriber().PublishAsync(RedisChannel.Literal(b.ChannelPrefix + "node:b"), late);
        await Eventually.True(() => b.Statistics.DroppedFor(DropReason.StaleIncarnation) == 1, "the old life's envelope to be dropped as stale");
    }

    [Test]
    public async Task DropWarningsAreThrottledOnTheChannelsClock()
    {
        var configuration = await RedisServer.RequireAsync();
        var clock = new ManualTimeProvider();
        var logging = new CapturingLoggerFactory();
        await using var channel = new RedisPubSubChannel("b", new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = NewCluster() }, logging, clock);
        await channel.ConnectAsync(_ => { });
        await using var raw = await ConnectionMultiplexer.ConnectAsync(configuration);
        var own = RedisChannel.Literal(channel.ChannelPrefix + "node:b");
        int Warnings() => logging.Lines.Count(l => l.Level == LogLevel.Warning && l.Message.Contains("Malformed", StringComparison.Ordinal));

        async Task SendGarbage(int dropsAfter)
        {
            await raw.GetSubscriber().PublishAsync(own, new byte[] { 42 });
            await Eventually.True(() => channel.Statistics.DroppedFor(DropReason.Malformed) == dropsAfter, $"{dropsAfter} malformed drops");
        }

        await SendGarbage(1);
        await SendGarbage(2);
        Assert.That(Warnings(), Is.EqualTo(1), "the first drop is logged, the next within 10 s is not");
        clock.Advance(TimeSpan.FromSeconds(9));
        await SendGarbage(3);
        Assert.That(Warnings(), Is.EqualTo(1));
        clock.Advance(TimeSpan.FromSeconds(1));
        await SendGarbage(4);
        // A drop is counted before it is logged: wait for the line rather than read the log at once.
        await Eventually.True(() => Warnings() == 2, "10 s later on the channel's clock, the next drop to be logged again", TimeSpan.FromSeconds(5));
        Assert.That(Warnings(), Is.EqualTo(2));
    }

    [Test]
    public async Task UseRedisGivesTheChannelTheNodesClock()
    {
        var configuration = await RedisServer.RequireAsync();
        string cluster = NewCluster();
        var clock = ClockAhead(centuries: 2);
        await using var raw = await ConnectionMultiplexer.ConnectAsync(configuration);
        var envelopes = await raw.GetSubscriber().SubscribeAsync(RedisChannel.Pattern($"gaggle:{{{cluster}}}:*"));
        var options = new GaggleOptions { NodeId = "a", Members = ["a", "b"] };
        ulong built = (ulong)clock.GetUtcNow().UtcTicks;
        await using var node = new GaggleNodeBuilder(options).UseTimeProvider(clock).UseRedis(configuration, redis => redis.ClusterName = cluster).Build();
        await node.StartAsync();

        // The node's clock drives its election timeout; its first campaign message reaches Redis.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var read = envelopes.ReadAsync(timeout.Token).AsTask();
        while (!read.IsCompleted)
        {
            clock.Advance(TimeSpan.FromMilliseconds(50));
            await Task.WhenAny(read, Task.Delay(5));
        }

        byte[] data = (await read).Message!;
        Assert.That(RedisEnvelope.TryDecode(data, null, out var envelope), Is.Null);
        Assert.That(envelope.Incarnation, Is.GreaterThanOrEqualTo(built), "the incarnation comes from the node's clock, two centuries ahead");
    }
}
