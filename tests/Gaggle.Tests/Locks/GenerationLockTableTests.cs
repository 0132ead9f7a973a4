using Gaggle.Locks;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>The lock table of an elastic cluster's generation: the hold-off after it forms, and tokens carrying the generation.</summary>
[TestFixture]
public sealed class GenerationLockTableTests
{
    private static RequestId R(string node, long sequence) => new(node, 1, sequence);

    private static LockCommand Acquire(string name, long waitMs = 10_000, int maxCount = 1, long leaseMs = 100) => new(LockCommandType.Acquire, name, maxCount, leaseMs, waitMs);

    private static LockCommand Time() => new(LockCommandType.Time, "");

    [Test]
    public void A_new_generation_grants_nothing_until_its_hold_off_ends_then_the_queue_moves_up_in_order()
    {
        var table = new LockTable();
        table.StartGeneration(2, grantsFrom: 1000);
        table.Apply(Acquire("x"), R("a", 1), stamp: 10, index: 3);
        table.Apply(Acquire("x", waitMs: 0), R("b", 1), stamp: 20, index: 4);
        table.Apply(Acquire("y", maxCount: 2), R("c", 1), stamp: 30, index: 5);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Denied, "b") }), "held off: waits queue, a try-once is denied");
        Assert.That(table.NextDeadline, Is.EqualTo(1000), "the end of the hold-off is a deadline: the leader appends a time entry then");
        Assert.That(table.NextDeadline, Is.EqualTo(table.ScanNextDeadline()));

        table.Apply(Time(), R("leader", 1), stamp: 999, index: 6);
        Assert.That(table.TakeEvents(), Is.Empty, "not yet");
        table.Apply(Time(), R("leader", 2), stamp: 1000, index: 7);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Granted, "a"), (LockEventType.Granted, "c") }));
        table.Apply(Acquire("z", waitMs: 0), R("d", 1), stamp: 1001, index: 8);
        Assert.That(table.TakeEvents().Single().Type, Is.EqualTo(LockEventType.Granted), "after the hold-off, grants are immediate");
    }

    [Test]
    public void The_hold_off_survives_a_snapshot_taken_while_it_runs()
    {
        var table = new LockTable();
        table.StartGeneration(3, grantsFrom: 500);
        table.Apply(Acquire("x"), R("a", 1), stamp: 10, index: 2);
        using var snapshot = new MemoryStream();
        table.Write(snapshot);

        var restored = new LockTable();
        restored.StartGeneration(3, grantsFrom: 500);
        snapshot.Position = 0;
        restored.Read(snapshot);
        Assert.That(restored.NextDeadline, Is.EqualTo(500));
        restored.Apply(Time(), R("leader", 1), stamp: 500, index: 3);
        Assert.That(restored.TakeEvents().Single().Type, Is.EqualTo(LockEventType.Granted));
    }

    [Test]
    public void Tokens_of_a_later_generation_are_larger_than_any_of_an_earlier_one()
    {
        var first = new LockTable();
        first.StartGeneration(1, grantsFrom: 0);
        first.Apply(Acquire("x", leaseMs: 10), R("a", 1), stamp: 0, index: (1L << 40) - 1);
        long oldToken = first.TakeEvents().Single().Token;

        var second = new LockTable();
        second.StartGeneration(2, grantsFrom: 0);
        second.Apply(Acquire("x"), R("b", 1), stamp: 0, index: 2);
        long newToken = second.TakeEvents().Single().Token;

        Assert.That(newToken, Is.GreaterThan(oldToken));
        Assert.That(newToken >> 48, Is.EqualTo(2), "the generation is in the high bits");
        Assert.That(oldToken, Is.GreaterThan(0));
    }

    [Test]
    public void Static_mode_keeps_its_tokens()
    {
        var table = new LockTable();
        table.Apply(Acquire("x"), R("a", 1), stamp: 0, index: 7);
        Assert.That(table.TakeEvents().Single().Token, Is.EqualTo(7L << 16));
    }

    [TestCase(1, 10_000 + 500 - 2_000)]
    [TestCase(2, 0)]
    [TestCase(9, 0)]
    [TestCase(0, 0)]
    public void The_hold_off_covers_what_the_founding_wait_did_not(long generation, long expectedMs)
    {
        // Defaults: 10 s lease, 500 ms election timeout max (bootstrap wait 4 x 500 ms), 15 s member timeout.
        var settings = new ElasticSettings(MemberTimeoutUs: 15_000_000, BootstrapWaitUs: 2_000_000, HoldLimitMs: 10_500);
        Assert.That(settings.HoldOffMs(generation), Is.EqualTo(expectedMs));
    }
}
