using Gaggle.Channels;
using Gaggle.Locks;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>The lock table's reader-writer locks: shared readers, a lone writer, FIFO without writer starvation.</summary>
[TestFixture]
public sealed class ReaderWriterLockTableTests
{
    private static RequestId R(string node, long sequence = 1) => new(node, 1, sequence);

    private static LockCommand Read(string name, long waitMs = 1000, long leaseMs = 100) => new(LockCommandType.AcquireRead, name, 0, leaseMs, waitMs);

    private static LockCommand Write(string name, long waitMs = 1000, long leaseMs = 100) => new(LockCommandType.AcquireWrite, name, 0, leaseMs, waitMs);

    private static LockCommand Release(string name, long token) => new(LockCommandType.Release, name, Token: token);

    [Test]
    public void ReadersShareTheLockAndAWriterWaitsForAllOfThem()
    {
        var table = new LockTable();
        table.Apply(Read("rw"), R("a"), stamp: 0, index: 1);
        table.Apply(Read("rw"), R("b"), stamp: 0, index: 2);
        table.Apply(Write("rw"), R("w"), stamp: 0, index: 3);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Granted, "a"), (LockEventType.Granted, "b") }));
        Assert.That(table.Describe("rw", 3).Holders.Select(h => h.Kind), Is.EqualTo(new[] { LockHoldKind.Read, LockHoldKind.Read }));
        Assert.That(table.Describe("rw", 3).MaxCount, Is.Zero);

        table.Apply(Release("rw", events[0].Token), R("a", 2), 0, 4);
        Assert.That(table.TakeEvents().Select(e => e.Type), Is.EqualTo(new[] { LockEventType.Released }), "one reader still holds it");
        table.Apply(Release("rw", events[1].Token), R("b", 2), 0, 5);
        var handOver = table.TakeEvents();
        Assert.That(handOver.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Released, "b"), (LockEventType.Granted, "w") }));
        Assert.That(handOver[1].Token, Is.GreaterThan(events[1].Token));
        Assert.That(table.Describe("rw", 5).Holders.Single().Kind, Is.EqualTo(LockHoldKind.Write));
    }

    [Test]
    public void AReaderThatComesWhileAWriterWaitsQueuesBehindIt()
    {
        var table = new LockTable();
        table.Apply(Read("rw"), R("a"), 0, 1);
        table.Apply(Write("rw"), R("w"), 0, 2);
        table.Apply(Read("rw"), R("late"), 0, 3);
        table.Apply(Read("rw", waitMs: 0), R("once"), 0, 4);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Granted, "a"), (LockEventType.Denied, "once") }),
            "the writer waits for the reader; the later reader waits for the writer; a try-once reader is denied");

        table.Apply(Release("rw", events[0].Token), R("a", 2), 0, 5);
        var writer = table.TakeEvents().Single(e => e.Type == LockEventType.Granted);
        Assert.That(writer.Request.Node, Is.EqualTo("w"));
        table.Apply(Release("rw", writer.Token), R("w", 2), 0, 6);
        Assert.That(table.TakeEvents().Single(e => e.Type == LockEventType.Granted).Request.Node, Is.EqualTo("late"));
    }

    [Test]
    public void AWritersReleaseGrantsEveryReaderAtTheFrontOfTheQueueUpToTheNextWriter()
    {
        var table = new LockTable();
        table.Apply(Write("rw"), R("w1"), 0, 1);
        table.Apply(Read("rw"), R("r1"), 0, 2);
        table.Apply(Read("rw"), R("r2"), 0, 3);
        table.Apply(Write("rw"), R("w2"), 0, 4);
        table.Apply(Read("rw"), R("r3"), 0, 5);
        long token = table.TakeEvents().Single().Token;

        table.Apply(Release("rw", token), R("w1", 2), 0, 6);
        var granted = table.TakeEvents().Where(e => e.Type == LockEventType.Granted).ToList();
        Assert.That(granted.Select(e => e.Request.Node), Is.EqualTo(new[] { "r1", "r2" }));
        Assert.That(granted[1].Token, Is.GreaterThan(granted[0].Token), "grants in one entry still get increasing tokens");
        Assert.That(table.Describe("rw", 6).QueueLength, Is.EqualTo(2));
    }

    [Test]
    public void AWriterThatStopsWaitingLetsTheReadersBehindItIn()
    {
        // Found by the lock simulation: a cancelled wait at the front of the queue left readers waiting beside readers holding.
        var table = new LockTable();
        table.Apply(Read("rw"), R("a"), 0, 1);
        table.Apply(Write("rw"), R("w", 7), 0, 2);
        table.Apply(Read("rw"), R("r1"), 0, 3);
        table.Apply(Read("rw"), R("r2"), 0, 4);
        table.TakeEvents();
        table.Apply(new LockCommand(LockCommandType.CancelWait, "rw", RequestSequence: 7), R("w", 8), 0, 5);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)),
            Is.EqualTo(new[] { (LockEventType.Cancelled, "w"), (LockEventType.Granted, "r1"), (LockEventType.Granted, "r2") }));
        Assert.That(table.Describe("rw", 5).QueueLength, Is.Zero);
    }

    [Test]
    public void AWriterWhoseWaitRunsOutLetsTheReadersBehindItIn()
    {
        var table = new LockTable();
        table.Apply(Read("rw", leaseMs: 10_000), R("a"), stamp: 1000, index: 1);
        table.Apply(Write("rw", waitMs: 100), R("w"), stamp: 1000, index: 2);
        table.Apply(Read("rw", waitMs: 10_000), R("r1"), stamp: 1010, index: 3);
        table.TakeEvents();
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("leader"), stamp: 1100, index: 4);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Denied, "w"), (LockEventType.Granted, "r1") }));
    }

    [Test]
    public void ReadersBeyondOneEntrysTokensAreGrantedByTheNextEntryAndNoTwoShareAToken()
    {
        // In a generation an entry has 256 tokens per lock (65,536 otherwise: the same rule, too slow to show here).
        const int perEntry = 256;
        var table = new LockTable();
        long index = 0;
        table.Apply(new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 0), R("founder"), 0, ++index);

        table.Apply(Write("rw", leaseMs: 100_000), R("w"), 0, ++index);
        int readers = perEntry + 44;
        for (int i = 0; i < readers; i++)
        {
            table.Apply(Read("rw", waitMs: 100_000, leaseMs: 100_000), R($"r{i}"), 0, ++index);
        }

        long writer = table.TakeEvents().Single(e => e.Type == LockEventType.Granted).Token;
        table.Apply(Release("rw", writer), R("w", 2), 0, ++index);
        Assert.That(table.TakeEvents().Count(e => e.Type == LockEventType.Granted), Is.EqualTo(perEntry), "one entry's tokens");
        Assert.That(table.NextDeadline, Is.EqualTo(table.Now), "the rest are due at once: the leader's next time entry grants them");
        Assert.That(table.ScanNextDeadline(), Is.EqualTo(table.NextDeadline));

        table.Apply(new LockCommand(LockCommandType.Time, ""), R("leader"), 0, ++index);
        Assert.That(table.TakeEvents().Count(e => e.Type == LockEventType.Granted), Is.EqualTo(44));
        var holders = table.Describe("rw", index).Holders;
        Assert.That(holders, Has.Count.EqualTo(readers));
        Assert.That(holders.Select(h => h.FencingToken), Is.Unique.And.Ordered, "no two readers share a token");

        // Each reader's release ends its own hold.
        var last = holders[^1];
        table.Apply(Release("rw", last.FencingToken), R("last", 2), 0, ++index);
        Assert.That(table.TakeEvents().Single(e => e.Type == LockEventType.Released).Request.Node, Is.EqualTo($"r{readers - 1}"));
    }

    [Test]
    public void ReadersAndWritersWaitOutAGenerationsHoldOffInTheirOrder()
    {
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 500), R("founder"), stamp: 1000, index: 1);
        table.Apply(Read("rw", waitMs: 10_000), R("r1"), 1000, 2);
        table.Apply(Write("rw", waitMs: 10_000), R("w"), 1010, 3);
        table.Apply(Read("rw", waitMs: 0), R("once"), 1020, 4);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Denied, "once") }), "nothing is granted during the hold-off");
        Assert.That(table.NextDeadline, Is.EqualTo(1500));

        table.Apply(new LockCommand(LockCommandType.Time, ""), R("leader"), stamp: 1500, index: 5);
        var granted = table.TakeEvents().Single(e => e.Type == LockEventType.Granted);
        Assert.That(granted.Request.Node, Is.EqualTo("r1"), "the reader first in line; the writer behind it waits");
        Assert.That(granted.Token, Is.EqualTo((1L << 48) + (5 << 8)));
    }

    [Test]
    public void AnExpiredWriterHandsTheLockToTheReadersWaiting()
    {
        var table = new LockTable();
        table.Apply(Write("rw", leaseMs: 100), R("w"), stamp: 1000, index: 1);
        table.Apply(Read("rw", waitMs: 10_000), R("r1"), stamp: 1010, index: 2);
        table.Apply(Read("rw", waitMs: 10_000), R("r2"), stamp: 1020, index: 3);
        table.TakeEvents();
        table.Apply(new LockCommand(LockCommandType.Time, ""), R("leader"), stamp: 1100, index: 4);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)),
            Is.EqualTo(new[] { (LockEventType.Expired, "w"), (LockEventType.Granted, "r1"), (LockEventType.Granted, "r2") }));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void ANameInUseAsAMutexOrSemaphoreRefusesAReaderWriterRequestAndTheOtherWayRound(bool writer)
    {
        var type = writer ? LockCommandType.AcquireWrite : LockCommandType.AcquireRead;
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.Acquire, "m", 1, 100, 1000), R("a"), 0, 1);
        table.Apply(new LockCommand(type, "m", 0, 100, 1000), R("b"), 0, 2);
        table.Apply(new LockCommand(type, "rw", 0, 100, 1000), R("c"), 0, 3);
        table.Apply(new LockCommand(LockCommandType.Acquire, "rw", 3, 100, 1000), R("d"), 0, 4);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[]
        {
            (LockEventType.Granted, "a"), (LockEventType.Rejected, "b"), (LockEventType.Granted, "c"), (LockEventType.Rejected, "d"),
        }));
        Assert.That(events[1].Reason, Is.EqualTo("'m' is in use as a mutex; this request asked for a reader-writer lock."));
        Assert.That(events[3].Reason, Is.EqualTo("'rw' is in use as a reader-writer lock; this request asked for a semaphore with a maximum of 3 holders."));
    }

    [Test]
    public void ReadersAndWritersSurviveASnapshotRoundTripAndATableWithoutThemWritesWhatItDidBefore()
    {
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.Acquire, "m", 1, 100, 1000), R("a"), 0, 1);
        byte[] mutexOnly = Snapshot(table);

        table.Apply(Read("rw"), R("r1"), 0, 2);
        table.Apply(Write("rw"), R("w"), 0, 3);
        table.Apply(Read("rw"), R("r2"), 0, 4);
        var copy = new LockTable();
        copy.Read(new MemoryStream(Snapshot(table)));
        Assert.That(Snapshot(copy), Is.EqualTo(Snapshot(table)));
        Assert.That(copy.Describe("rw", 4).Holders.Single().Kind, Is.EqualTo(LockHoldKind.Read));

        // The restored queue still knows its writer: the reader's release goes to it, not to the reader behind it.
        long readerToken = table.TakeEvents().First(e => e.Request.Node == "r1").Token;
        copy.Apply(Release("rw", readerToken), R("r1", 2), 0, 5);
        Assert.That(copy.TakeEvents().Single(e => e.Type == LockEventType.Granted).Request.Node, Is.EqualTo("w"));

        var plain = new LockTable();
        plain.Read(new MemoryStream(mutexOnly));
        Assert.That(Snapshot(plain), Is.EqualTo(mutexOnly));
    }

    [Test]
    public void ASnapshotThatNamesAReaderWriterLockItDoesNotHoldIsRefused()
    {
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.Acquire, "m", 1, 100, 1000), R("a"), 0, 1);
        var bytes = new List<byte>(Snapshot(table)) { 1, 1, (byte)'m', 1 };
        var error = Assert.Throws<FormatException>(() => new LockTable().Read(new MemoryStream([.. bytes])));
        Assert.That(error!.Message, Does.Contain("'m' as a reader-writer lock"));
    }

    [Test]
    public void ASnapshotThatLeavesOutAReaderWriterLocksWritersOrGivesAnImpossibleMaxCountIsRefused()
    {
        var table = new LockTable();
        table.Apply(Write("rw"), R("w"), 0, 1);
        table.Apply(Read("rw2"), R("x"), 0, 2);
        byte[] full = Snapshot(table);
        byte[] section = [2, 2, (byte)'r', (byte)'w', 1, 3, (byte)'r', (byte)'w', (byte)'2', 0];
        Assert.That(full[^section.Length..], Is.EqualTo(section), "the trailing section: two locks, each with its flags");

        var cutOff = Assert.Throws<FormatException>(() => new LockTable().Read(new MemoryStream(full[..^section.Length])));
        Assert.That(cutOff!.Message, Does.Contain("does not say which of their holders and waiters are writers"));
        byte[] oneLeftOut = [.. full[..^section.Length], 1, 3, (byte)'r', (byte)'w', (byte)'2', 0];
        var leftOut = Assert.Throws<FormatException>(() => new LockTable().Read(new MemoryStream(oneLeftOut)));
        Assert.That(leftOut!.Message, Does.Contain("reader-writer lock 'rw' are writers"));

        // A semaphore whose slot count would wrap to 0 (a reader-writer lock) as an int.
        var writer = new WireWriter();
        writer.VarLong(0);
        writer.VarUInt(1);
        writer.String("s");
        writer.VarLong(1L << 32);
        writer.VarUInt(0);
        writer.VarUInt(1);
        writer.String("a");
        writer.VarUInt(1);
        writer.VarLong(1);
        writer.VarLong(100);
        writer.VarLong(1000);
        writer.VarLong(0);
        writer.VarLong(0);
        var error = Assert.Throws<FormatException>(() => new LockTable().Read(new MemoryStream(writer.ToArray())));
        Assert.That(error!.Message, Does.Contain("gives 's' a maximum of 4294967296 holders"));
    }

    [Test]
    public void TheCommandsRoundTripOnTheWire()
    {
        foreach (var command in new[] { Read("rw", 5, 7), Write("rw", 0, 9) })
        {
            Assert.That(LockCommand.TryDecode(command.Encode()), Is.EqualTo(command));
        }
    }

    private static byte[] Snapshot(LockTable table)
    {
        using var stream = new MemoryStream();
        table.Write(stream);
        return stream.ToArray();
    }
}
