using Gaggle.Channels;
using Gaggle.Tests.Support;
using NUnit.Framework;
using static Gaggle.Tests.Channels.InMemoryNetworkTests;

namespace Gaggle.Tests.Channels;

[TestFixture]
public sealed class InMemoryNetworkFaultTests
{
    private const int Messages = 200;

    [TestCase(0.0, Messages, 0)]
    [TestCase(1.0, 0, Messages)]
    public async Task Drop_rate_decides_how_many_messages_are_lost(double dropRate, int expectedDelivered, int expectedDropped)
    {
        var network = new InMemoryNetwork(seed: 7);
        network.SetDefaultFaults(new LinkFaults { DropRate = dropRate });
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        await SendNumbersAsync(a, "b", Messages);

        Assert.That(bInbox.Count, Is.EqualTo(expectedDelivered));
        Assert.That(network.Delivered, Is.EqualTo(expectedDelivered));
        Assert.That(network.Dropped, Is.EqualTo(expectedDropped));
    }

    [Test]
    public async Task The_same_seed_drops_the_same_messages()
    {
        async Task<IReadOnlyList<int>> RunAsync()
        {
            var network = new InMemoryNetwork(seed: 42);
            network.SetDefaultFaults(new LinkFaults { DropRate = 0.5 });
            var (a, _) = await ConnectAsync(network, "a");
            var (_, bInbox) = await ConnectAsync(network, "b");
            await SendNumbersAsync(a, "b", Messages);
            return bInbox.Numbers;
        }

        var first = await RunAsync();
        var second = await RunAsync();

        Assert.That(first, Has.Count.InRange(50, 150));
        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public async Task Duplicate_rate_one_delivers_every_message_twice()
    {
        var network = new InMemoryNetwork(seed: 7);
        network.SetDefaultFaults(new LinkFaults { DuplicateRate = 1.0 });
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        await SendNumbersAsync(a, "b", 3);

        Assert.That(bInbox.Numbers, Is.EqualTo(new[] { 0, 0, 1, 1, 2, 2 }));
        Assert.That(network.Delivered, Is.EqualTo(6));
    }

    [Test]
    public async Task Link_faults_override_the_default_for_one_direction()
    {
        var network = new InMemoryNetwork(seed: 7);
        network.SetDefaultFaults(new LinkFaults { DropRate = 1.0 });
        network.SetLinkFaults("a", "b", LinkFaults.None);
        var (a, aInbox) = await ConnectAsync(network, "a");
        var (b, bInbox) = await ConnectAsync(network, "b");

        await a.SendAsync("b", RecordingReceiver.Number(1));
        await b.SendAsync("a", RecordingReceiver.Number(2));

        Assert.That(bInbox.Count, Is.EqualTo(1));
        Assert.That(aInbox.Count, Is.Zero);
    }

    [Test]
    public async Task A_delayed_message_arrives_only_when_its_delay_has_passed()
    {
        var time = new ManualTimeProvider();
        var network = new InMemoryNetwork(seed: 7, time);
        network.SetLinkFaults("a", "b", new LinkFaults { MinDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(50) });
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        await a.SendAsync("b", RecordingReceiver.Number(1));
        time.Advance(TimeSpan.FromMilliseconds(49));
        Assert.That(bInbox.Count, Is.Zero);

        time.Advance(TimeSpan.FromMilliseconds(1));
        await bInbox.WaitForCountAsync(1);
        Assert.That(network.Delivered, Is.EqualTo(1));
    }

    [Test]
    public async Task A_delayed_message_arrives_on_the_system_clock()
    {
        var network = new InMemoryNetwork(seed: 7);
        network.SetDefaultFaults(new LinkFaults { MinDelay = TimeSpan.FromMilliseconds(5), MaxDelay = TimeSpan.FromMilliseconds(10) });
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        await SendNumbersAsync(a, "b", 10);

        await bInbox.WaitForCountAsync(10);
        Assert.That(bInbox.Numbers, Is.EquivalentTo(Enumerable.Range(0, 10)));
    }

    [Test]
    public async Task A_message_in_flight_to_a_channel_that_disconnects_is_dropped()
    {
        var time = new ManualTimeProvider();
        var network = new InMemoryNetwork(seed: 7, time);
        network.SetDefaultFaults(new LinkFaults { MinDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(10) });
        var (a, _) = await ConnectAsync(network, "a");
        var (b, bInbox) = await ConnectAsync(network, "b");

        await a.SendAsync("b", RecordingReceiver.Number(1));
        await b.DisconnectAsync();
        time.Advance(TimeSpan.FromMilliseconds(10));

        Assert.That(bInbox.Count, Is.Zero);
        Assert.That(network.Dropped, Is.EqualTo(1));
    }

    [Test]
    public async Task Reorder_rate_makes_some_messages_overtake_others()
    {
        var time = new ManualTimeProvider();
        var network = new InMemoryNetwork(seed: 7, time);
        network.SetDefaultFaults(new LinkFaults { ReorderRate = 0.2 });
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        await SendNumbersAsync(a, "b", Messages);
        var arrivedAtOnce = bInbox.Count;
        time.Advance(TimeSpan.FromMilliseconds(2));
        await bInbox.WaitForCountAsync(Messages);

        var numbers = bInbox.Numbers;
        Assert.That(arrivedAtOnce, Is.InRange(100, Messages - 10), "about a fifth of the messages is held back");
        Assert.That(numbers, Is.EquivalentTo(Enumerable.Range(0, Messages)), "nothing lost or duplicated");
        Assert.That(numbers, Is.Not.Ordered, "some messages arrived out of order");
    }

    [Test]
    public async Task Random_delays_reorder_messages()
    {
        var time = new ManualTimeProvider();
        var network = new InMemoryNetwork(seed: 7, time);
        network.SetDefaultFaults(new LinkFaults { MaxDelay = TimeSpan.FromMilliseconds(20) });
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");

        await SendNumbersAsync(a, "b", Messages);
        time.Advance(TimeSpan.FromMilliseconds(20));
        await bInbox.WaitForCountAsync(Messages);

        Assert.That(bInbox.Numbers, Is.EquivalentTo(Enumerable.Range(0, Messages)));
        Assert.That(bInbox.Numbers, Is.Not.Ordered);
    }

    [Test]
    public async Task Isolate_cuts_every_link_of_the_node_both_ways_and_heal_restores_them()
    {
        var network = new InMemoryNetwork(seed: 7);
        var (a, aInbox) = await ConnectAsync(network, "a");
        var (b, bInbox) = await ConnectAsync(network, "b");
        var (c, cInbox) = await ConnectAsync(network, "c");

        network.Isolate("a");
        await a.BroadcastAsync(RecordingReceiver.Number(1));
        await b.SendAsync("a", RecordingReceiver.Number(2));
        await b.SendAsync("c", RecordingReceiver.Number(3));

        Assert.That(aInbox.Count, Is.Zero);
        Assert.That(bInbox.Count, Is.Zero);
        Assert.That(cInbox.Numbers, Is.EqualTo(new[] { 3 }));

        network.Heal();
        await c.SendAsync("a", RecordingReceiver.Number(4));
        Assert.That(aInbox.Numbers, Is.EqualTo(new[] { 4 }));
    }

    [Test]
    public async Task Partition_lets_nodes_talk_only_within_their_group()
    {
        var network = new InMemoryNetwork(seed: 7);
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");
        var (c, cInbox) = await ConnectAsync(network, "c");
        var (_, unlistedInbox) = await ConnectAsync(network, "unlisted");

        network.Partition(["a", "b"], ["c"]);
        await a.BroadcastAsync(RecordingReceiver.Number(1));
        await c.BroadcastAsync(RecordingReceiver.Number(2));

        Assert.That(bInbox.Numbers, Is.EqualTo(new[] { 1 }));
        Assert.That(cInbox.Count, Is.Zero);
        Assert.That(unlistedInbox.Count, Is.Zero, "a node in no group is cut off from everyone");

        network.Partition(["a", "b", "c"]);
        await c.SendAsync("b", RecordingReceiver.Number(3));
        Assert.That(bInbox.Numbers, Is.EqualTo(new[] { 1, 3 }), "a new partition replaces the old one");
    }

    [Test]
    public void Partition_rejects_a_node_in_two_groups()
    {
        var network = new InMemoryNetwork(seed: 7);

        Assert.That(
            () => network.Partition(["a", "b"], ["b"]),
            Throws.ArgumentException.With.Message.Contains("'b'"));
    }

    [Test]
    public async Task Cut_blocks_one_link_in_both_directions_only()
    {
        var network = new InMemoryNetwork(seed: 7);
        var (a, aInbox) = await ConnectAsync(network, "a");
        var (b, bInbox) = await ConnectAsync(network, "b");
        var (_, cInbox) = await ConnectAsync(network, "c");

        network.Cut("a", "b");
        await a.BroadcastAsync(RecordingReceiver.Number(1));
        await b.SendAsync("a", RecordingReceiver.Number(2));

        Assert.That(bInbox.Count, Is.Zero);
        Assert.That(aInbox.Count, Is.Zero);
        Assert.That(cInbox.Numbers, Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public async Task Heal_keeps_link_faults_and_clear_faults_removes_everything()
    {
        var network = new InMemoryNetwork(seed: 7);
        var (a, _) = await ConnectAsync(network, "a");
        var (_, bInbox) = await ConnectAsync(network, "b");
        network.SetLinkFaults("a", "b", new LinkFaults { DropRate = 1.0 });
        network.Isolate("b");

        network.Heal();
        await a.SendAsync("b", RecordingReceiver.Number(1));
        Assert.That(bInbox.Count, Is.Zero);

        network.Isolate("b");
        network.ClearFaults();
        await a.SendAsync("b", RecordingReceiver.Number(2));
        Assert.That(bInbox.Numbers, Is.EqualTo(new[] { 2 }));
    }

    [TestCase(nameof(LinkFaults.DropRate), 1.5)]
    [TestCase(nameof(LinkFaults.DuplicateRate), -0.25)]
    [TestCase(nameof(LinkFaults.ReorderRate), 2.0)]
    [TestCase(nameof(LinkFaults.DropRate), double.NaN)]
    public void A_rate_outside_zero_to_one_is_rejected_naming_the_setting_and_value(string setting, double value)
    {
        Assert.That(
            () => WithRate(setting, value),
            Throws.TypeOf<ArgumentOutOfRangeException>()
                .With.Property("ParamName").EqualTo(setting)
                .And.Message.Contains(value.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .And.Message.Contains("between 0 and 1"));
    }

    [Test]
    public void A_negative_delay_is_rejected_naming_the_setting_and_value()
    {
        Assert.That(
            () => new LinkFaults { MinDelay = TimeSpan.FromMilliseconds(-3) },
            Throws.TypeOf<ArgumentOutOfRangeException>()
                .With.Property("ParamName").EqualTo("MinDelay")
                .And.Message.Contains("-00:00:00.0030000")
                .And.Message.Contains("must not be negative"));
    }

    [Test]
    public void A_maximum_delay_below_the_minimum_is_rejected_when_the_faults_are_set()
    {
        var network = new InMemoryNetwork(seed: 7);
        var faults = new LinkFaults { MinDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(5) };

        Assert.That(
            () => network.SetLinkFaults("a", "b", faults),
            Throws.TypeOf<ArgumentOutOfRangeException>()
                .With.Property("ParamName").EqualTo("MaxDelay")
                .And.Message.Contains("00:00:00.0050000")
                .And.Message.Contains("must not be less than MinDelay"));
        Assert.That(() => network.SetDefaultFaults(faults), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    private static LinkFaults WithRate(string setting, double value) => setting switch
    {
        nameof(LinkFaults.DropRate) => new LinkFaults { DropRate = value },
        nameof(LinkFaults.DuplicateRate) => new LinkFaults { DuplicateRate = value },
        _ => new LinkFaults { ReorderRate = value },
    };

    private static async Task SendNumbersAsync(IChannel sender, string to, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await sender.SendAsync(to, RecordingReceiver.Number(i));
        }
    }
}
