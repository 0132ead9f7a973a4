using Gaggle.Locks;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>The lock table of an elastic cluster's generation: the hold-off after it forms, and tokens carrying the generation.</summary>
[TestFixture]
public sealed class GenerationLockTableTests
{
    private static RequestId R(string node, long sequence) => new(node, 1, sequence);

    private static LockCommand Acquire(string name, long waitMs = 10_000, int maxCount = 1, long leaseMs = 100) => new(LockCommandType.Acquire, name, maxCount, leaseMs, waitMs);

    private static LockCommand Time() => new(LockCommandType.Time, "");

    private static LockCommand Generation(long generation, long holdOffMs) => new(LockCommandType.Generation, "", Token: generation, LeaseMs: holdOffMs);

    [Test]
    public void A_new_generation_grants_nothing_until_its_hold_off_ends_then_the_queue_moves_up_in_order()
    {
        var table = new LockTable();
        table.Apply(Generation(2, holdOffMs: 1000), R("founder", 1), stamp: 0, index: 2);
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

    /// <summary>
    /// Found by the simulation (unheard-generations seed 11, the store losing its value while the cluster
    /// ran): a leader that restored the value logs a hold-off (another generation may have held the value
    /// meanwhile); the hold-off entry's own time ended a lease, and the waiter next in line was granted
    /// at that very entry, before the hold-off took effect.
    /// </summary>
    [Test]
    public void A_hold_off_entry_binds_the_expiries_it_finds_due()
    {
        var table = new LockTable();
        table.Apply(Generation(1, holdOffMs: 0), R("founder", 1), stamp: 0, index: 2);
        table.Apply(Acquire("x", leaseMs: 100), R("a", 1), stamp: 10, index: 3);
        table.Apply(Acquire("x"), R("b", 1), stamp: 20, index: 4);
        table.TakeEvents();
        table.Apply(Generation(1, holdOffMs: 1000), R("leader", 1), stamp: 500, index: 5);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Expired, "a") }), "a's lease ended; b waits out the hold-off");
        Assert.That(table.GrantsFrom, Is.EqualTo(1500));
        table.Apply(Time(), R("leader", 2), stamp: 1500, index: 6);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Granted, "b") }));
    }

    [Test]
    public void The_generation_and_its_hold_off_survive_a_snapshot_taken_while_it_runs()
    {
        var table = new LockTable();
        table.Apply(Generation(3, holdOffMs: 500), R("founder", 1), stamp: 0, index: 2);
        table.Apply(Acquire("x"), R("a", 1), stamp: 10, index: 3);
        using var snapshot = new MemoryStream();
        table.Write(snapshot);

        var restored = new LockTable();
        snapshot.Position = 0;
        restored.Read(snapshot);
        Assert.That((restored.Generation, restored.GrantsFrom, restored.NextDeadline), Is.EqualTo((3L, 500L, 500L)));
        restored.Apply(Time(), R("leader", 1), stamp: 500, index: 4);
        var granted = restored.TakeEvents().Single();
        Assert.That((granted.Type, granted.Token >> 48), Is.EqualTo((LockEventType.Granted, 3L)));
    }

    [Test]
    public void Tokens_change_generation_at_the_entry_that_opens_it_and_keep_increasing()
    {
        var table = new LockTable();
        table.Apply(Generation(1, holdOffMs: 0), R("founder", 1), stamp: 0, index: 2);
        table.Apply(Acquire("x", leaseMs: 10), R("a", 1), stamp: 0, index: (1L << 40) - 10);
        long oldToken = table.TakeEvents().Single().Token;

        // A forced generation continues the same log: grants before its opening entry keep their tokens on every replica.
        table.Apply(new LockCommand(LockCommandType.Release, "x", Token: oldToken), R("a", 2), stamp: 1, index: (1L << 40) - 9);
        table.Apply(Generation(2, holdOffMs: 0), R("survivor", 1), stamp: 1, index: (1L << 40) - 8);
        table.Apply(Acquire("x"), R("b", 1), stamp: 2, index: (1L << 40) - 7);
        var events = table.TakeEvents();
        long newToken = events.Single(e => e.Type == LockEventType.Granted).Token;
        Assert.That(newToken, Is.GreaterThan(oldToken));
        Assert.That((oldToken >> 48, newToken >> 48), Is.EqualTo((1L, 2L)), "the generation is in the high bits");
    }

    [Test]
    public void Static_mode_keeps_its_tokens_and_reads_snapshots_written_before_generations()
    {
        var table = new LockTable();
        table.Apply(Acquire("x"), R("a", 1), stamp: 0, index: 7);
        Assert.That(table.TakeEvents().Single().Token, Is.EqualTo(7L << 16));

        using var snapshot = new MemoryStream();
        table.Write(snapshot);
        var older = snapshot.ToArray()[..^2]; // without the generation and hold-off (both 0: one byte each)
        var restored = new LockTable();
        restored.Read(new MemoryStream(older));
        Assert.That((restored.Generation, restored.GrantsFrom, restored.IsHeld("x", 7L << 16)), Is.EqualTo((0L, 0L, true)));
    }
}
