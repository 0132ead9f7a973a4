using System.Text;
using Gaggle.Channels;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Channels;

[TestFixture]
public sealed class InMemoryNetworkTests
{
    private static readonly ReadOnlyMemory<byte> Hello = Encoding.UTF8.GetBytes("hello");

    [Test]
    public async Task Send_delivers_the_payload_with_the_sender_id()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        await a.SendAsync("b", Hello);

        Assert.That(bInbox.Messages, Has.Count.EqualTo(1));
        Assert.That(bInbox.Messages[0].From, Is.EqualTo("a"));
        Assert.That(bInbox.Messages[0].Payload.ToArray(), Is.EqualTo(Hello.ToArray()));
        Assert.That(network.Delivered, Is.EqualTo(1));
        Assert.That(network.Dropped, Is.Zero);
    }

    [Test]
    public async Task Broadcast_reaches_every_other_node_but_not_the_sender()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, aInbox) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");
        var (_, cInbox) = await ConnectAsync(network, "c");

        await a.BroadcastAsync(Hello);

        Assert.That(aInbox.Count, Is.Zero);
        Assert.That(bInbox.Messages.Select(m => m.From), Is.EqualTo(new[] { "a" }));
        Assert.That(cInbox.Messages.Select(m => m.From), Is.EqualTo(new[] { "a" }));
    }

    [Test]
    public async Task A_channel_is_unreachable_until_it_connects()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var b = network.CreateChannel("b");

        await a.SendAsync("b", Hello);

        Assert.That(network.Dropped, Is.EqualTo(1));
        Assert.That(b.IsConnected, Is.False);
    }

    [Test]
    public async Task Disconnect_stops_delivery_and_frees_the_id_for_a_restarted_node()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var (b, oldInbox) = await ConnectAsync(network, "b");

        await b.DisconnectAsync();
        await b.DisconnectAsync();
        await a.SendAsync("b", Hello);
        await b.SendAsync("a", Hello);

        Assert.That(oldInbox.Count, Is.Zero);
        Assert.That(network.Dropped, Is.EqualTo(2), "a send to and a send from a disconnected channel are dropped");

        var (_, newInbox) = await ConnectAsync(network, "b");
        await a.SendAsync("b", Hello);

        Assert.That(newInbox.Count, Is.EqualTo(1));
        Assert.That(oldInbox.Count, Is.Zero);
    }

    [Test]
    public async Task Dispose_disconnects()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var (b, bInbox) = await ConnectAsync(network, "b");

        await b.DisposeAsync();
        await a.SendAsync("b", Hello);

        Assert.That(bInbox.Count, Is.Zero);
        Assert.That(() => network.CreateChannel("b"), Throws.Nothing);
    }

    [Test]
    public async Task A_disconnected_channel_cannot_connect_again()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, inbox) = await ConnectAsync(network, "a");
        await a.DisconnectAsync();

        Assert.That(
            async () => await a.ConnectAsync(inbox.Receive),
            Throws.InvalidOperationException.With.Message.Contains("'a'").And.Message.Contains("new channel"));
    }

    [Test]
    public async Task Creating_a_channel_with_the_id_of_a_connected_one_throws_naming_the_id()
    {
        var network = new InMemoryNetwork(seed: 1);
        await ConnectAsync(network, "node-7");

        Assert.That(
            () => network.CreateChannel("node-7"),
            Throws.ArgumentException.With.Message.Contains("'node-7'").And.Property("ParamName").EqualTo("nodeId"));
    }

    [Test]
    public async Task Connecting_a_second_channel_with_the_same_id_throws_naming_the_id()
    {
        var network = new InMemoryNetwork(seed: 1);
        var first = network.CreateChannel("a");
        var second = network.CreateChannel("a");
        await first.ConnectAsync(_ => { });

        Assert.That(
            async () => await second.ConnectAsync(_ => { }),
            Throws.InvalidOperationException.With.Message.Contains("'a'"));
        Assert.That(second.IsConnected, Is.False);
    }

    [Test]
    public void An_unseeded_network_exposes_the_seed_it_chose()
    {
        var network = new InMemoryNetwork();
        var replay = new InMemoryNetwork(network.Seed);

        Assert.That(replay.Seed, Is.EqualTo(network.Seed));
    }

    [Test]
    public async Task The_receiver_is_never_called_concurrently_with_itself()
    {
        const int Senders = 4;
        const int MessagesPerSender = 2_000;
        var network = new InMemoryNetwork(seed: 1);
        var inside = 0;
        var overlaps = 0;
        var inbox = new RecordingReceiver();
        var target = network.CreateChannel("target");
        await target.ConnectAsync(message =>
        {
            if (Interlocked.Increment(ref inside) != 1)
            {
                Interlocked.Increment(ref overlaps);
            }

            inbox.Receive(message);
            Interlocked.Decrement(ref inside);
        });
        var senders = new List<IChannel>();
        for (var i = 0; i < Senders; i++)
        {
            senders.Add((await ConnectAsync(network, $"sender-{i}")).Channel);
        }

        // Dedicated threads: a barrier on thread-pool threads would wait for the pool to grow.
        using var start = new Barrier(Senders);
        var threads = senders.Select(sender => new Thread(() =>
        {
            start.SignalAndWait();
            for (var n = 0; n < MessagesPerSender; n++)
            {
                _ = sender.SendAsync("target", Hello);
            }
        })).ToList();
        threads.ForEach(thread => thread.Start());
        threads.ForEach(thread => thread.Join());

        await inbox.WaitForCountAsync(Senders * MessagesPerSender);
        Assert.That(overlaps, Is.Zero);
        Assert.That(network.Delivered, Is.EqualTo(Senders * MessagesPerSender));
    }

    [Test]
    public async Task A_send_from_inside_the_receiver_is_delivered_after_it_returns()
    {
        var network = new InMemoryNetwork(seed: 1);
        var channel = network.CreateChannel("a");
        var depth = 0;
        var maxDepth = 0;
        var calls = 0;
        await channel.ConnectAsync(message =>
        {
            maxDepth = Math.Max(maxDepth, ++depth);
            if (++calls < 3)
            {
                _ = channel.SendAsync("a", Hello);
            }

            depth--;
        });

        await channel.SendAsync("a", Hello);

        Assert.That(calls, Is.EqualTo(3));
        Assert.That(maxDepth, Is.EqualTo(1));
    }

    [Test]
    public async Task Disconnect_waits_for_a_receiver_call_in_progress_on_another_thread()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var b = network.CreateChannel("b");
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var calls = 0;
        await b.ConnectAsync(_ =>
        {
            Interlocked.Increment(ref calls);
            entered.Set();
            release.Wait();
        });

        var sending = Task.Run(async () => await a.SendAsync("b", Hello));
        Assert.That(entered.Wait(TimeSpan.FromSeconds(5)), Is.True);
        var disconnecting = Task.Run(async () => await b.DisconnectAsync());
        Assert.That(SpinWait.SpinUntil(() => !b.IsConnected, TimeSpan.FromSeconds(5)), Is.True);
        await a.SendAsync("b", Hello);

        Assert.That(disconnecting.IsCompleted, Is.False, "the receiver is still running");
        release.Set();
        await Task.WhenAll(sending, disconnecting).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(calls, Is.EqualTo(1));
    }

    [Test]
    public async Task A_receiver_may_disconnect_its_own_channel()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var b = network.CreateChannel("b");
        var calls = 0;
        await b.ConnectAsync(message =>
        {
            calls++;
            _ = a.SendAsync("b", Hello);
            _ = b.DisconnectAsync();
        });

        await a.SendAsync("b", Hello);

        Assert.That(calls, Is.EqualTo(1));
        Assert.That(b.IsConnected, Is.False);
    }

    [Test]
    public async Task A_throwing_receiver_loses_the_message_without_failing_the_sender()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var b = network.CreateChannel("b");
        await b.ConnectAsync(_ => throw new InvalidOperationException("receiver bug"));

        Assert.That(async () => await a.SendAsync("b", Hello), Throws.Nothing);
        Assert.That(network.Dropped, Is.EqualTo(1));
        Assert.That(network.Delivered, Is.Zero);
    }

    [Test]
    public async Task A_cancelled_send_throws_and_sends_nothing()
    {
        var network = new InMemoryNetwork(seed: 1);
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        Assert.That(
            async () => await a.SendAsync("b", Hello, new CancellationToken(canceled: true)),
            Throws.InstanceOf<OperationCanceledException>());
        Assert.That(bInbox.Count, Is.Zero);
    }

    internal static async Task<(IChannel Channel, RecordingReceiver Inbox)> ConnectAsync(InMemoryNetwork network, string nodeId)
    {
        var inbox = new RecordingReceiver();
        var channel = network.CreateChannel(nodeId);
        await channel.ConnectAsync(inbox.Receive);
        return (channel, inbox);
    }
}
