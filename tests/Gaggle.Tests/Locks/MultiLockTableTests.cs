using Gaggle.Locks;
using Gaggle.Tests.Simulation;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>The lock table's multi-lock requests: all of their locks in one entry or none, FIFO in every queue, no deadlock.</summary>
[TestFixture]
public sealed class MultiLockTableTests
{
    private static RequestId R(string node, long sequence = 1) => new(node, 1, sequence);

    private static LockCommand Mutex(string name, long waitMs = 1000, long leaseMs = 100) => new(LockCommandType.Acquire, name, 1, leaseMs, waitMs);

    private static LockCommand All(long waitMs, params LockPart[] parts) => new(LockCommandType.AcquireAll, parts[0].Name, 0, 100, waitMs) { Parts = parts };

    private static LockPart M(string name) => new(LockCommandType.Acquire, name);

    private static LockCommand Release(string name, long token) => new(LockCommandType.Release, name, Token: token);

    [Test]
    public void AFreeSetIsGrantedInOneEntryWithOneTokenPerLockAllFromThatIndex()
    {
        var table = new LockTable();
        table.Apply(Mutex("b"), R("x"), 0, 1);
        long bToken = table.TakeEvents().Single().Token;
        table.Apply(Release("b", bToken), R("x", 2), 0, 2);
        table.TakeEvents();

        table.Apply(All(1000, M("b"), M("a"), new LockPart(LockCommandType.Acquire, "s", 3), new LockPart(LockCommandType.AcquireRead, "rw", 0)), R("g"), 0, 7);
        var granted = table.TakeEvents();
        Assert.That(granted.Select(e => (e.Type, e.Name)), Is.EqualTo(new[]
        {
            (LockEventType.Granted, "a"), (LockEventType.Granted, "b"), (LockEventType.Granted, "rw"), (LockEventType.Granted, "s"),
        }), "one grant per lock, in ordinal order");
        Assert.That(granted.Select(e => e.Request), Is.All.EqualTo(R("g")));
        Assert.That(granted.Select(e => LockTokens.IndexOf(e.Token)), Is.All.EqualTo(7L), "every token comes from the entry that granted the set");
        Assert.That(granted.Single(e => e.Name == "b").Token, Is.GreaterThan(bToken));
        Assert.That(table.Describe("s", 7).MaxCount, Is.EqualTo(3));
        Assert.That(table.Describe("rw", 7).Holders.Single().Kind, Is.EqualTo(LockHoldKind.Read));
    }

    [Test]
    public void ASetWithOneLockTakenGetsNoneOfThemAndWaitsInEveryQueue()
    {
        var table = new LockTable();
        table.Apply(Mutex("b"), R("x"), 0, 1);
        long bToken = table.TakeEvents().Single().Token;

        table.Apply(All(1000, M("a"), M("b")), R("g"), 0, 2);
        Assert.That(table.TakeEvents(), Is.Empty, "nothing granted: not even the free lock a");
        Assert.That(table.Describe("a", 2).Holders, Is.Empty);
        Assert.That(table.Describe("a", 2).QueueLength, Is.EqualTo(1));
        Assert.That(table.Describe("b", 2).QueueLength, Is.EqualTo(1));

        table.Apply(Mutex("a"), R("y"), 0, 3);
        var y = table.TakeEvents().Single();
        Assert.That((y.Type, y.Name, y.Request.Node), Is.EqualTo((LockEventType.Granted, "a", "y")), "a waiting set holds up nobody: y gets the free lock a past it");

        table.Apply(Release("b", bToken), R("x", 2), 0, 4);
        Assert.That(table.TakeEvents().Select(e => e.Type), Is.EqualTo(new[] { LockEventType.Released }), "b is free now, but a is not: still nothing of the set");
        table.Apply(Release("a", y.Token), R("y", 2), 0, 5);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Name, e.Request.Node)), Is.EqualTo(new[]
        {
            (LockEventType.Released, "a", "y"), (LockEventType.Granted, "a", "g"), (LockEventType.Granted, "b", "g"),
        }));
        Assert.That(events.Skip(1).Select(e => LockTokens.IndexOf(e.Token)), Is.All.EqualTo(5L));

        table.Apply(Release("a", events[1].Token), R("g", 2), 0, 6);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Released, "g") }), "each lock of the set is released on its own");
        Assert.That(table.Describe("b", 6).Holders.Single().FencingToken, Is.EqualTo(events[2].Token));
    }

    [Test]
    public void TwoCallersTakingTheSameLocksInOppositeOrderNeverDeadlock()
    {
        var table = new LockTable();
        table.Apply(Mutex("a"), R("holder"), 0, 1);
        long held = table.TakeEvents().Single().Token;
        table.Apply(All(1000, M("a"), M("b")), R("first"), 0, 2);
        table.Apply(All(1000, M("b"), M("a")), R("second"), 0, 3);
        Assert.That(table.TakeEvents(), Is.Empty);

        table.Apply(Release("a", held), R("holder", 2), 0, 4);
        var first = table.TakeEvents().Where(e => e.Type == LockEventType.Granted).ToList();
        Assert.That(first.Select(e => (e.Name, e.Request.Node)), Is.EqualTo(new[] { ("a", "first"), ("b", "first") }), "the set applied first is first in both queues");

        table.Apply(Release("b", first[1].Token), R("first", 2), 0, 5);
        Assert.That(table.TakeEvents().Count(e => e.Type == LockEventType.Granted), Is.Zero, "second still needs a");
        table.Apply(Release("a", first[0].Token), R("first", 3), 0, 6);
        var second = table.TakeEvents().Where(e => e.Type == LockEventType.Granted).ToList();
        Assert.That(second.Select(e => (e.Name, e.Request.Node)), Is.EqualTo(new[] { ("a", "second"), ("b", "second") }));
    }

    [Test]
    public void ATryOnceSetIsDeniedOnceAndLeavesNoLockBehind()
    {
        var table = new LockTable();
        table.Apply(Mutex("b"), R("x"), 0, 1);
        table.TakeEvents();
        table.Apply(All(0, M("a"), M("b")), R("g"), 0, 2);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Name)), Is.EqualTo(new[] { (LockEventType.Denied, "a") }));
        Assert.That(table.Count, Is.EqualTo(1), "a, created for the request, is forgotten again");
    }

    [Test]
    public void AWaitThatRunsOutOrIsCancelledLeavesEveryQueueAndLetsTheWaitersBehindIn()
    {
        var table = new LockTable();
        table.Apply(Mutex("b", leaseMs: 10_000), R("x"), 0, 1);
        table.Apply(All(50, M("a"), M("b")), R("timed"), 0, 2);
        table.Apply(Mutex("a"), R("y"), 0, 3);
        table.TakeEvents();

        table.Apply(new LockCommand(LockCommandType.Time, ""), R("leader"), 50, 4);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Name, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Denied, "a", "timed") }),
            "the set is denied once");
        Assert.That(table.Describe("a", 4).QueueLength, Is.Zero);
        Assert.That(table.Describe("b", 4).QueueLength, Is.Zero);

        table.Apply(All(1000, M("b"), M("c")), R("cancelled"), 50, 5);
        table.TakeEvents();
        table.Apply(new LockCommand(LockCommandType.CancelWait, "c", RequestSequence: 1), R("cancelled", 9), 50, 7);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Name, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Cancelled, "b", "cancelled") }),
            "a cancel naming any of its locks withdraws the set from all of them");
        Assert.That(table.Describe("b", 7).QueueLength, Is.Zero);
        Assert.That(table.Count, Is.EqualTo(2), "c, used by the set alone, is forgotten; a (y) and b (x) are held");
        Assert.That(table.NextDeadline, Is.EqualTo(table.ScanNextDeadline()));
    }

    [Test]
    public void ASetWaitingForOneLockHoldsUpNobodyOnItsOtherLocks()
    {
        var table = new LockTable();
        var slot = new LockPart(LockCommandType.Acquire, "s", 2);
        table.Apply(Mutex("m"), R("x"), 0, 1);
        long m = table.TakeEvents().Single().Token;
        table.Apply(All(1000, slot, M("m")), R("g"), 0, 2);
        table.Apply(new LockCommand(LockCommandType.Acquire, "s", 2, 100, 1000), R("later"), 0, 3);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Name, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Granted, "s", "later") }),
            "s has room: the later request gets a slot past the set, which waits for m");

        table.Apply(Release("m", m), R("x", 2), 0, 4);
        Assert.That(table.TakeEvents().Where(e => e.Type == LockEventType.Granted).Select(e => (e.Name, e.Request.Node)),
            Is.EqualTo(new[] { ("m", "g"), ("s", "g") }), "the set, once m is free, with the slot still free");
    }

    [Test]
    public void ACallerHoldingOneLockOfAWaitingSetGetsTheSetsOtherLockAndNobodyDeadlocks()
    {
        // x holds b and then asks for a; the set {a, b} came in between. Were a kept for the set, x
        // would wait for the set and the set for x's b.
        var table = new LockTable();
        table.Apply(Mutex("b"), R("x", 1), 0, 1);
        long b = table.TakeEvents().Single().Token;
        table.Apply(All(10_000, M("a"), M("b")), R("set"), 0, 2);
        table.Apply(Mutex("a", waitMs: 10_000), R("x", 2), 0, 3);
        var a = table.TakeEvents().Single();
        Assert.That((a.Type, a.Name, a.Request), Is.EqualTo((LockEventType.Granted, "a", R("x", 2))));

        table.Apply(Release("a", a.Token), R("x", 3), 0, 4);
        Assert.That(table.TakeEvents().Select(e => e.Type), Is.EqualTo(new[] { LockEventType.Released }));
        table.Apply(Release("b", b), R("x", 4), 0, 5);
        Assert.That(table.TakeEvents().Where(e => e.Type == LockEventType.Granted).Select(e => (e.Name, e.Request.Node)), Is.EqualTo(new[] { ("a", "set"), ("b", "set") }));
    }

    [Test]
    public void AWaitingSetGoesBeforeTheRequestsThatCameAfterItOnceItFits()
    {
        var table = new LockTable();
        table.Apply(Mutex("a"), R("x"), 0, 1);
        long a = table.TakeEvents().Single().Token;
        table.Apply(All(10_000, M("a"), M("b")), R("set"), 0, 2);
        table.Apply(Mutex("a"), R("later"), 0, 3);
        Assert.That(table.TakeEvents(), Is.Empty);

        table.Apply(Release("a", a), R("x", 2), 0, 4);
        Assert.That(table.TakeEvents().Where(e => e.Type == LockEventType.Granted).Select(e => (e.Name, e.Request.Node)), Is.EqualTo(new[] { ("a", "set"), ("b", "set") }),
            "the set came first and fits: the later request waits");
    }

    [Test]
    public void ARequestOfOneLockStillHoldsUpASetBehindIt()
    {
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.AcquireRead, "rw", 0, 100, 1000), R("reader"), 0, 1);
        long read = table.TakeEvents().Single().Token;
        table.Apply(new LockCommand(LockCommandType.AcquireWrite, "rw", 0, 100, 1000), R("writer"), 0, 2);
        table.Apply(All(1000, new LockPart(LockCommandType.AcquireRead, "rw"), M("m")), R("set"), 0, 3);
        Assert.That(table.TakeEvents(), Is.Empty, "the set's read part fits, but a waiting writer came first (no writer starvation)");

        table.Apply(Release("rw", read), R("reader", 2), 0, 4);
        Assert.That(table.TakeEvents().Where(e => e.Type == LockEventType.Granted).Select(e => e.Request.Node), Is.EqualTo(new[] { "writer" }));
    }

    [Test]
    public void InvalidOrMismatchedSetsAreRejectedWithTheReasonAndChangeNothing()
    {
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.AcquireRead, "rw", 0, 100, 1000), R("x"), 0, 1);
        table.TakeEvents();
        (LockCommand Command, string Reason)[] cases =
        [
            (All(1000, M("a")), "names 1 locks"),
            (All(1000, M("a"), M("a")), "names 'a' twice"),
            (All(1000, M("a"), new LockPart(LockCommandType.Acquire, "s", 0)), "part 's'"),
            (All(1000, M("a"), new LockPart(LockCommandType.Release, "s")), "part 's'"),
            (All(1000, M("a"), M("rw")), "'rw' is in use as a reader-writer lock"),
            (All(1000, [.. Enumerable.Range(0, LockCommand.MaxParts + 1).Select(i => M($"l{i}"))]), $"names {LockCommand.MaxParts + 1} locks"),
        ];
        long sequence = 1;
        foreach (var (command, reason) in cases)
        {
            table.Apply(command, R("bad", sequence++), 0, 1 + sequence);
            var rejected = table.TakeEvents().Single();
            Assert.That(rejected.Type, Is.EqualTo(LockEventType.Rejected));
            Assert.That(rejected.Reason, Does.Contain(reason));
        }

        Assert.That(table.Count, Is.EqualTo(1), "no lock was created by a rejected request");
    }

    [Test]
    public void AWaitingSetSurvivesASnapshotAndIsStillGrantedAllAtOnce()
    {
        var table = new LockTable();
        table.Apply(Mutex("b"), R("x"), 0, 1);
        long b = table.TakeEvents().Single().Token;
        table.Apply(All(1000, M("c"), M("a"), M("b")), R("g"), 0, 2);
        table.Apply(Mutex("b"), R("y"), 0, 3);
        table.TakeEvents();

        using var stream = new MemoryStream();
        table.Write(stream);
        stream.Position = 0;
        var restored = new LockTable();
        restored.Read(stream);
        foreach (var t in new[] { table, restored })
        {
            t.Apply(Release("b", b), R("x", 2), 0, 4);
        }

        var original = table.TakeEvents();
        Assert.That(restored.TakeEvents(), Is.EqualTo(original), "the restored table answers as the original does");
        Assert.That(original.Where(e => e.Type == LockEventType.Granted).Select(e => (e.Name, e.Request.Node)),
            Is.EqualTo(new[] { ("a", "g"), ("b", "g"), ("c", "g") }), "the set, not y: it came first in b's queue");
    }

    [Test]
    public void ACommandOfAllLocksRoundTripsAndBadPartsAreNotDecoded()
    {
        var command = All(500, M("a"), new LockPart(LockCommandType.AcquireWrite, "w", 0), new LockPart(LockCommandType.Acquire, "s", 7));
        var decoded = LockCommand.TryDecode(command.Encode());
        Assert.That(decoded, Is.Not.Null);
        Assert.That(decoded!.Parts, Is.EqualTo(command.Parts));
        Assert.That(decoded, Is.EqualTo(command), "commands compare their parts one by one");
        Assert.That(decoded with { Parts = [.. command.Parts.Reverse()] }, Is.Not.EqualTo(command));

        var withRelease = All(500, M("a"), new LockPart(LockCommandType.Release, "r"));
        Assert.That(LockCommand.TryDecode(withRelease.Encode()), Is.Null, "a part must be an acquire of one lock");
        var tooMany = All(500, [.. Enumerable.Range(0, LockCommand.MaxParts + 1).Select(i => M($"l{i}"))]);
        Assert.That(LockCommand.TryDecode(tooMany.Encode()), Is.Null);
    }
}
