using System.Collections.Concurrent;
using System.Text;
using Gaggle.Channels;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>What every <see cref="IChannel"/> must do; run against each implementation.</summary>
public abstract class ChannelContractTests
{
    /// <summary>Creates an unconnected channel for <paramref name="nodeId"/> in the cluster of this test.</summary>
    protected abstract Task<IChannel> CreateAsync(string nodeId);

    /// <summary>A fresh cluster (name) per test, so tests never see each other's traffic.</summary>
    protected abstract Task NewClusterAsync();

    private readonly List<IChannel> _channels = [];

    [SetUp]
    public Task SetUpAsync() => NewClusterAsync();

    [TearDown]
    public async Task TearDownAsync()
    {
        foreach (var channel in _channels)
        {
            await channel.DisposeAsync();
        }

        _channels.Clear();
    }

    private async Task<(IChannel Channel, ConcurrentQueue<InboundMessage> Inbox)> ConnectAsync(string id)
    {
        var channel = await CreateAsync(id);
        var inbox = new ConcurrentQueue<InboundMessage>();
        await channel.ConnectAsync(message => inbox.Enqueue(message with { Payload = message.Payload.ToArray() }));
        _channels.Add(channel);
        return (channel, inbox);
    }

    private static string Text(InboundMessage message) => Encoding.UTF8.GetString(message.Payload.Span);

    [Test]
    public async Task SendReachesOnlyItsTarget()
    {
        var a = await ConnectAsync("a");
        var b = await ConnectAsync("b");
        var c = await ConnectAsync("c");
        await a.Channel.SendAsync("b", "hello b"u8.ToArray());
        await Eventually.True(() => b.Inbox.Count == 1, "b to receive");
        await a.Channel.BroadcastAsync("fence"u8.ToArray());
        await Eventually.True(() => c.Inbox.Count == 1, "c to receive the fence broadcast");
        Assert.That(b.Inbox.Select(m => (m.From, Text(m))), Is.EqualTo(new[] { ("a", "hello b"), ("a", "fence") }));
        Assert.That(c.Inbox.Select(Text), Is.EqualTo(new[] { "fence" }), "c never sees what was sent to b");
    }

    [Test]
    public async Task BroadcastReachesEveryOtherNodeButNotItsSender()
    {
        var a = await ConnectAsync("a");
        var b = await ConnectAsync("b");
        var c = await ConnectAsync("c");
        await a.Channel.BroadcastAsync("to all"u8.ToArray());
        await b.Channel.SendAsync("a", "after"u8.ToArray());
        await Eventually.True(() => b.Inbox.Count == 1 && c.Inbox.Count == 1 && a.Inbox.Count == 1, "everyone else to receive");
        Assert.That(a.Inbox.Select(Text), Is.EqualTo(new[] { "after" }), "a broadcast is not delivered back to its sender");
        Assert.That(a.Channel is IEchoingChannel, Is.EqualTo(this is RedisChannelContractTests), "Redis pub/sub echoes a publish to its publisher; the in-memory network does not report it");
        if (a.Channel is IEchoingChannel echoing)
        {
            // Not delivered, but counted: the sender hears that its subscription works.
            await Eventually.True(() => echoing.EchoesHeard == 1, "a's broadcast to come back to it as an echo");
            await b.Channel.SendAsync("a", "not an echo"u8.ToArray());
            await Eventually.True(() => a.Inbox.Count == 2, "a to receive b's message");
            Assert.That(echoing.EchoesHeard, Is.EqualTo(1), "only its own broadcasts count");
        }
    }

    [Test]
    public async Task MessagesFromOneSenderArriveInOrder()
    {
        var a = await ConnectAsync("a");
        var b = await ConnectAsync("b");
        for (int i = 0; i < 2000; i++)
        {
            await a.Channel.SendAsync("b", Encoding.UTF8.GetBytes(i.ToString()));
        }

        await Eventually.True(() => b.Inbox.Count == 2000, "2000 messages");
        Assert.That(b.Inbox.Select(m => int.Parse(Text(m))), Is.Ordered.And.Unique);
    }

    [Test]
    public async Task DisconnectStopsDeliveryAndTheIdCanReconnect()
    {
        var a = await ConnectAsync("a");
        var b = await ConnectAsync("b");
        await b.Channel.DisconnectAsync();
        await a.Channel.SendAsync("b", "lost"u8.ToArray());
        await b.Channel.SendAsync("a", "dropped too"u8.ToArray());
        var again = await ConnectAsync("b");
        await a.Channel.SendAsync("b", "found"u8.ToArray());
        await Eventually.True(() => again.Inbox.Count == 1, "the reconnected b to receive");
        Assert.That(again.Inbox.Select(Text), Is.EqualTo(new[] { "found" }));
        Assert.That(b.Inbox, Is.Empty);
        Assert.That(a.Inbox, Is.Empty, "sends from a disconnected channel are dropped");
    }
}

[TestFixture]
public sealed class InMemoryChannelContractTests : ChannelContractTests
{
    private InMemoryNetwork _network = new(1);

    protected override Task NewClusterAsync()
    {
        _network = new InMemoryNetwork(1);
        return Task.CompletedTask;
    }

    protected override Task<IChannel> CreateAsync(string nodeId) => Task.FromResult<IChannel>(_network.CreateChannel(nodeId));
}

[TestFixture]
[Category("Redis")]
public sealed class RedisChannelContractTests : ChannelContractTests
{
    private string _configuration = "";
    private string _cluster = "";

    protected override async Task NewClusterAsync()
    {
        _configuration = await RedisServer.RequireAsync();
        _cluster = "contract-" + Guid.NewGuid().ToString("N")[..12];
    }

    protected override Task<IChannel> CreateAsync(string nodeId)
        => Task.FromResult<IChannel>(new RedisPubSubChannel(nodeId, new RedisPubSubChannelOptions { Configuration = _configuration, ClusterName = _cluster }));
}
