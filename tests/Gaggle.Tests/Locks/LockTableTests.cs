using Gaggle.Locks;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

[TestFixture]
public sealed class LockTableTests
{
    private static RequestId R(string node, long sequence) => new(node, 1, sequence);

    private static LockCommand Acquire(string name, long waitMs = 1000, int maxCount = 1, long leaseMs = 100) => new(LockCommandType.Acquire, name, maxCount, leaseMs, waitMs);

    [Test]
    public void GrantsQueuesInFifoOrderAndHandsOverOnRelease()
    {
        var table = new LockTable();
        table.Apply(Acquire("x"), R("a", 1), stamp: 10, index: 1);
        table.Apply(Acquire("x"), R("b", 1), stamp: 11, index: 2);
        table.Apply(Acquire("x"), R("c", 1), stamp: 12, index: 3);
        var granted = table.TakeEvents().Single(e => e.Type == LockEventType.Granted);
        Assert.That(granted.Request, Is.EqualTo(R("a", 1)));
        Assert.That(table.Describe("x", 3).QueueLength, Is.EqualTo(2));

        table.Apply(new LockCommand(LockCommandType.Release, "x", Token: granted.Token), R("a", 2), stamp: 13, index: 4);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Released, "a"), (LockEventType.Granted, "b") }));
        Assert.That(events[1].Token, Is.GreaterThan(granted.Token), "fencing tokens go up");
    }

    [Test]
    public void TryOnceIsDeniedWhenHeld()
    {
        var table = new LockTable();
        table.Apply(Acquire("x"), R("a", 1), 0, 1);
        table.Apply(Acquire("x", waitMs: 0), R("b", 1), 0, 2);
        Assert.That(table.TakeEvents().Select(e => e.Type), Is.EqualTo(new[] { LockEventType.Granted, LockEventType.Denied }));
    }

    [Test]
    public void LeasesExpireByStampedTimeAndTheNextWaiterGetsTheLock()
    {
        var table = new LockTable();
        table.Apply(Acquire("x", leaseMs: 100), R("a", 1), stamp: 1000, index: 1);
        table.Apply(Acquire("x", waitMs: 10_000), R("b", 1), stamp: 1050, index: 2);
        table.TakeEvents();
        Assert.That(table.NextDeadline, Is.EqualTo(1100));
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("leader", 1), stamp: 1099, index: 3);
        Assert.That(table.TakeEvents(), Is.Empty, "not yet");
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("leader", 2), stamp: 1100, index: 4);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Expired, "a"), (LockEventType.Granted, "b") }));
    }

    [Test]
    public void RenewalExtendsTheLeaseAndTimeNeverGoesBack()
    {
        var table = new LockTable();
        table.Apply(Acquire("x", leaseMs: 100), R("a", 1), stamp: 1000, index: 1);
        long token = table.TakeEvents()[0].Token;
        table.Apply(new LockCommand(LockCommandType.Renew, "x", LeaseMs: 100, Token: token), R("a", 2), stamp: 1080, index: 2);
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("l", 1), stamp: 500, index: 3);
        Assert.That(table.Now, Is.EqualTo(1080), "a stamp from a lagging clock does not move time back");
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("l", 2), stamp: 1150, index: 4);
        Assert.That(table.TakeEvents().Select(e => e.Type), Does.Not.Contain(LockEventType.Expired));
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("l", 3), stamp: 1180, index: 5);
        Assert.That(table.TakeEvents().Select(e => e.Type), Does.Contain(LockEventType.Expired));
    }

    [Test]
    public void SemaphoresGrantUpToMaxCountAndRefuseAMismatchedCount()
    {
        var table = new LockTable();
        for (int i = 1; i <= 4; i++)
        {
            table.Apply(Acquire("s", maxCount: 3), R("n" + i, 1), 0, i);
        }

        var events = table.TakeEvents();
        Assert.That(events.Count(e => e.Type == LockEventType.Granted), Is.EqualTo(3));
        Assert.That(table.Describe("s", 4).QueueLength, Is.EqualTo(1));
        table.Apply(Acquire("s", maxCount: 2), R("z", 1), 0, 5);
        Assert.That(table.TakeEvents().Single().Type, Is.EqualTo(LockEventType.Rejected));
    }

    [Test]
    public void ManyGrantsInOneEntryStillGetStrictlyIncreasingTokens()
    {
        var table = new LockTable();
        table.Apply(Acquire("s", maxCount: 3, leaseMs: 10), R("a", 1), 0, 1);
        table.Apply(Acquire("s", maxCount: 3, leaseMs: 10), R("b", 1), 0, 2);
        table.Apply(Acquire("s", maxCount: 3, leaseMs: 10), R("c", 1), 0, 3);
        for (int i = 0; i < 3; i++)
        {
            table.Apply(Acquire("s", maxCount: 3, waitMs: 1000), R("w" + i, 1), 0, 4 + i);
        }

        var first = table.TakeEvents().Where(e => e.Type == LockEventType.Granted).Select(e => e.Token).ToList();
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("l", 1), 10, 7);
        var second = table.TakeEvents().Where(e => e.Type == LockEventType.Granted).Select(e => e.Token).ToList();
        Assert.That(second, Has.Count.EqualTo(3), "three leases expired in one entry, three waiters granted in it");
        Assert.That(first.Concat(second), Is.Ordered.And.Unique);
    }

    [Test]
    public void ADuplicateRequestIsNotGrantedTwice()
    {
        var table = new LockTable();
        table.Apply(Acquire("s", maxCount: 2), R("a", 1), 0, 1);
        table.Apply(Acquire("s", maxCount: 2), R("a", 1), 0, 2);
        Assert.That(table.TakeEvents(), Has.Count.EqualTo(1));
        Assert.That(table.Describe("s", 2).Holders, Has.Count.EqualTo(1));
    }

    [Test]
    public void WaitsEndAtTheirDeadlineAndCanBeCancelled()
    {
        var table = new LockTable();
        table.Apply(Acquire("x", leaseMs: 10_000), R("a", 1), 0, 1);
        table.Apply(Acquire("x", waitMs: 50), R("b", 1), 0, 2);
        table.Apply(Acquire("x", waitMs: 5_000), R("c", 1), 0, 3);
        table.TakeEvents();
        table.Apply(new LockCommand(LockCommandType.CancelWait, "x", RequestSequence: 1), R("c", 9), 10, 4);
        Assert.That(table.TakeEvents().Single().Type, Is.EqualTo(LockEventType.Cancelled));
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("l", 1), 60, 5);
        Assert.That(table.TakeEvents().Single(), Has.Property("Type").EqualTo(LockEventType.Denied).And.Property("Request").EqualTo(R("b", 1)));
        Assert.That(table.Describe("x", 5).QueueLength, Is.Zero);
    }

    [TestCase(0, 100L)]
    [TestCase(1, 0L)]
    public void AnInvalidAcquireIsRejectedAndBlocksNothing(int maxCount, long leaseMs)
    {
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.Acquire, "x", maxCount, leaseMs, 1000), R("a", 1), 0, 1);
        Assert.That(table.TakeEvents().Single().Type, Is.EqualTo(LockEventType.Rejected));
        Assert.That(table.Count, Is.Zero);
    }

    [TestCase("mutex", long.MaxValue, 1000L)]
    [TestCase("mutex", 100L, long.MaxValue)]
    [TestCase("mutex", 366L * 24 * 3600 * 1000, 1000L)]
    [TestCase("write", long.MaxValue / 2, 1000L)]
    [TestCase("set", long.MaxValue, 1000L)]
    [TestCase("set", 100L, long.MaxValue)]
    public void AnAcquireWithALeaseOrWaitOutOfRangeIsRefusedAndTheTableStaysWritable(string kind, long leaseMs, long waitMs)
    {
        var type = kind switch { "mutex" => LockCommandType.Acquire, "write" => LockCommandType.AcquireWrite, _ => LockCommandType.AcquireAll };
        var table = new LockTable();
        table.Apply(Acquire("x", leaseMs: 100), R("a", 1), 1000, 1);
        var command = type == LockCommandType.AcquireAll
            ? new LockCommand(type, "x", 0, leaseMs, waitMs) { Parts = [new LockPart(LockCommandType.Acquire, "x"), new LockPart(LockCommandType.Acquire, "y")] }
            : new LockCommand(type, type == LockCommandType.Acquire ? "y" : "rw", 1, leaseMs, waitMs);
        table.Apply(command, R("b", 1), 1001, 2);
        var events = table.TakeEvents();
        Assert.That(events.Last().Type, Is.EqualTo(LockEventType.Rejected), $"lease {leaseMs} ms, wait {waitMs} ms: {string.Join(", ", events.Select(e => $"{e.Type} expiring {e.Expiry}"))}");
        Assert.DoesNotThrow(() => LockTableSnapshots.Bytes(table), "a snapshot of the table");
    }

    [Test]
    public void ARenewalWithALeaseOutOfRangeLeavesTheHoldAsItWas()
    {
        var table = new LockTable();
        table.Apply(Acquire("x", leaseMs: 100), R("a", 1), 1000, 1);
        long token = table.TakeEvents().Single().Token;
        table.Apply(new LockCommand(LockCommandType.Renew, "x", Token: token, LeaseMs: long.MaxValue / 2), R("a", 2), 1010, 2);
        Assert.That(table.Describe("x", 2).Holders.Single().LeaseExpiry, Is.EqualTo(1100), "the hold ends with its lease, not in millions of years");
    }

    [Test]
    public void TheTableSurvivesASnapshotRoundTrip()
    {
        var table = new LockTable();
        table.Apply(Acquire("x", leaseMs: 100), R("a", 1), 1000, 1);
        table.Apply(Acquire("x", waitMs: 500), R("b", 1), 1001, 2);
        table.Apply(Acquire("s", maxCount: 2), R("c", 1), 1002, 3);
        using var stream = new MemoryStream();
        table.Write(stream);
        var copy = new LockTable();
        stream.Position = 0;
        copy.Read(stream);
        Assert.That(copy.Now, Is.EqualTo(1002));
        Assert.That(copy.Describe("x", 3), Is.EqualTo(table.Describe("x", 3)).Using<LockInfo>((l, r) => l.Holders.SequenceEqual(r.Holders) && l.QueueLength == r.QueueLength && l.MaxCount == r.MaxCount));
        Assert.That(copy.NextDeadline, Is.EqualTo(table.NextDeadline));
    }

    [Test]
    public void TheNextDeadlineFollowsRenewalsReleasesAndWaitsAndSurvivesASnapshot()
    {
        var table = new LockTable();
        table.Apply(Acquire("a", leaseMs: 100), R("n1", 1), stamp: 0, index: 1);   // expires at 100
        table.Apply(Acquire("b", leaseMs: 300), R("n1", 2), stamp: 0, index: 2);   // expires at 300
        table.Apply(Acquire("a", waitMs: 50), R("n2", 1), stamp: 10, index: 3);    // waits until 60
        long aToken = table.TakeEvents().First(e => e.Type == LockEventType.Granted && e.Name == "a").Token;
        Assert.That(table.NextDeadline, Is.EqualTo(60), "the wait ends first");

        table.Apply(new LockCommand(LockCommandType.CancelWait, "a", RequestSequence: 1), R("n2", 2), stamp: 20, index: 4);
        Assert.That(table.NextDeadline, Is.EqualTo(100), "the cancelled wait is gone: a's lease is next");

        table.Apply(new LockCommand(LockCommandType.Renew, "a", Token: aToken, LeaseMs: 500), R("n1", 3), stamp: 30, index: 5);
        Assert.That(table.NextDeadline, Is.EqualTo(300), "a renewed until 530: b's lease is next");

        using var stream = new MemoryStream();
        table.Write(stream);
        var restored = new LockTable();
        stream.Position = 0;
        restored.Read(stream);
        Assert.That(restored.NextDeadline, Is.EqualTo(300), "a snapshot restores it");

        foreach (var copy in new[] { table, restored })
        {
            copy.Apply(new LockCommand(LockCommandType.Release, "b", Token: copy.Describe("b", 6).Holders[0].FencingToken), R("n1", 4), stamp: 40, index: 6);
            Assert.That(copy.NextDeadline, Is.EqualTo(530), "b released: a's renewed lease is the only deadline");
            Assert.That(copy.NextDeadline, Is.EqualTo(copy.ScanNextDeadline()));
        }
    }
}
