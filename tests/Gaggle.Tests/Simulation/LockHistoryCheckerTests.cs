using Gaggle.Locks;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>The lock checker accepts what the table does and catches each kind of violation it is there for.</summary>
[TestFixture]
public sealed class LockHistoryCheckerTests
{
    /// <summary>A lock table fed commands one log index at a time; its events may be tampered with before the checker sees them.</summary>
    private sealed class History
    {
        private readonly LockTable _table = new();
        private long _index;
        private long _sequence;

        public LockHistoryChecker Checker { get; } = new();

        public List<LockEvent> Apply(LockCommand command, string node, long stamp, Func<List<LockEvent>, List<LockEvent>>? tamper = null)
        {
            long index = ++_index;
            long sequence = ++_sequence;
            _table.Apply(command, new RequestId(node, 1, sequence), stamp, index);
            var events = _table.TakeEvents();
            events = tamper?.Invoke(events) ?? events;
            var envelope = new EntryEnvelope(EntryPayloadKind.Lock, stamp, node, 1, sequence, command.Encode());
            Checker.ObserveApplied("n1", _table, index, envelope, command, events);
            return events;
        }

        public long Index => _index;

        public long NextIndex => _index + 1;
    }

    private static LockCommand Acquire(string name, long waitMs = 1000, int maxCount = 1, long leaseMs = 100) => new(LockCommandType.Acquire, name, maxCount, leaseMs, waitMs);

    private static LockCommand Release(string name, long token) => new(LockCommandType.Release, name, Token: token);

    private static LockCommand Time() => new(LockCommandType.Time, "");

    [Test]
    public void AHistoryTheTableProducedPasses()
    {
        var history = new History();
        long a = history.Apply(Acquire("x"), "a", 10).Single().Token;
        history.Apply(Acquire("x"), "b", 11);
        history.Apply(Acquire("x", waitMs: 0), "c", 12);
        history.Apply(Acquire("x", waitMs: 40), "d", 13);
        history.Apply(new LockCommand(LockCommandType.Renew, "x", LeaseMs: 100, Token: a), "a", 50);
        history.Apply(Release("x", a), "a", 60);
        history.Apply(Time(), "l", 200);
        for (int i = 0; i < 4; i++)
        {
            history.Apply(Acquire("s", maxCount: 3, waitMs: 500), "n" + i, 210);
        }

        history.Apply(new LockCommand(LockCommandType.CancelWait, "s", RequestSequence: history.Index), "n3", 220);
        history.Apply(Acquire("s", maxCount: 5), "z", 230);
        Assert.That(history.Checker.Stats.Granted, Is.EqualTo(5));
        Assert.That(history.Checker.Stats.Expired, Is.EqualTo(1), "b's hold, handed over from a, ran out");
        Assert.That(history.Checker.Stats.WaitsTimedOut, Is.EqualTo(1), "d's wait ran out");
        Assert.That(history.Checker.Stats.Rejected, Is.EqualTo(1));
    }

    private static LockCommand ReadLock(string name, long waitMs = 1000) => new(LockCommandType.AcquireRead, name, 0, 100, waitMs);

    private static LockCommand WriteLock(string name, long waitMs = 1000) => new(LockCommandType.AcquireWrite, name, 0, 100, waitMs);

    [Test]
    public void AReaderWriterHistoryTheTableProducedPasses()
    {
        var history = new History();
        long r1 = history.Apply(ReadLock("rw"), "r1", 10).Single().Token;
        history.Apply(ReadLock("rw"), "r2", 11);
        history.Apply(WriteLock("rw"), "w", 12);
        history.Apply(ReadLock("rw"), "r3", 13);
        history.Apply(ReadLock("rw", waitMs: 0), "r4", 14);
        history.Apply(new LockCommand(LockCommandType.CancelWait, "rw", RequestSequence: 3), "w", 15);
        history.Apply(Acquire("rw"), "m", 16);
        history.Apply(Release("rw", r1), "r1", 17);
        history.Apply(Time(), "l", 200);
        history.Apply(WriteLock("rw"), "w2", 201);
        Assert.That(history.Checker.Stats.ReaderWriterGrants, Is.EqualTo(new long[] { 3, 1 }), "r1, r2 and r3 (once the writer stopped waiting) read, w2 wrote");
        Assert.That(history.Checker.Stats.MostReadersTogether, Is.EqualTo(3));
        Assert.That(history.Checker.Stats.Rejected, Is.EqualTo(1), "a mutex request for a reader-writer lock's name");
    }

    private static LockCommand All(long waitMs, params string[] names)
        => new(LockCommandType.AcquireAll, names[0], 0, 100, waitMs) { Parts = [.. names.Select(n => new LockPart(LockCommandType.Acquire, n))] };

    [Test]
    public void AMultiLockHistoryTheTableProducedPasses()
    {
        var history = new History();
        long b = history.Apply(Acquire("b"), "x", 10).Single().Token;
        history.Apply(All(1000, "a", "b"), "g1", 11);
        history.Apply(All(1000, "b", "a"), "g2", 12);
        var passing = history.Apply(Acquire("a"), "y", 13);
        Assert.That(passing.Single().Type, Is.EqualTo(LockEventType.Granted), "y is granted 'a' past g1 and g2: waiting sets hold up nobody");
        history.Apply(All(0, "c", "a"), "try", 14);
        history.Apply(All(20, "b", "c"), "timed", 15);
        history.Apply(All(1000, "c", "b"), "cancelled", 16);
        history.Apply(new LockCommand(LockCommandType.CancelWait, "c", RequestSequence: 7), "cancelled", 17);
        history.Apply(Time(), "l", 40);
        Assert.That(history.Apply(Release("a", passing[0].Token), "y", 41).Where(e => e.Type == LockEventType.Granted), Is.Empty, "g1 still misses 'b'");
        var granted = history.Apply(Release("b", b), "x", 42).Where(e => e.Type == LockEventType.Granted).ToList();
        Assert.That(granted.Select(e => (e.Name, e.Request.Node)), Is.EqualTo(new[] { ("a", "g1"), ("b", "g1") }), "g1 came before g2");
        history.Apply(new LockCommand(LockCommandType.AcquireAll, "s", 0, 100, 1000) { Parts = [new(LockCommandType.Acquire, "s", 2), new(LockCommandType.Acquire, "b", 3)] }, "kinds", 43);
        history.Apply(Release("a", granted[0].Token), "g1", 44);
        history.Apply(Release("b", granted[1].Token), "g1", 45);

        var stats = history.Checker.Stats;
        Assert.That((stats.GroupGrants, stats.GroupGrantsFromQueue, stats.GroupsQueued), Is.EqualTo((2L, 2L, 4L)), "g1 then g2, each after waiting in both queues");
        Assert.That((stats.GroupTriesDenied, stats.GroupWaitsTimedOut, stats.GroupsCancelled, stats.GroupsRejected), Is.EqualTo((1L, 1L, 1L, 1L)));
        Assert.That(stats.GrantsPastSets, Is.EqualTo(1), "y");
    }

    [Test]
    public void ASetGrantedInPartIsCaught()
    {
        var history = new History();
        Assert.That(
            () => history.Apply(All(1000, "a", "b"), "g", 10, events => [.. events.Where(e => e.Name != "b")]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("was granted [a] by this entry"));
    }

    [Test]
    public void ASingleWaiterGrantedPastAnotherSingleWaiterAheadOfItIsCaught()
    {
        var history = new History();
        long a = history.Apply(Acquire("a"), "x", 10).Single().Token;
        history.Apply(Acquire("b", leaseMs: 10_000), "z", 11);
        history.Apply(All(1000, "a", "b"), "g", 12);
        history.Apply(Acquire("a"), "y1", 13);
        history.Apply(Acquire("a"), "y2", 14);
        Assert.That(
            () => history.Apply(Release("a", a), "x", 15, events => [.. events.Select(e => e.Type == LockEventType.Granted ? e with { Request = new RequestId("y2", 1, 5) } : e)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("past waiter " + new RequestId("y1", 1, 4)));
    }

    [Test]
    public void ALaterRequestTakingTheRoomOfAnEarlierSetThatFitsIsCaught()
    {
        var history = new History();
        history.Apply(Acquire("a", leaseMs: 20), "x", 10);
        history.Apply(Acquire("b", leaseMs: 20), "z", 10);
        history.Apply(All(1000, "a", "b"), "g", 11);
        history.Apply(Acquire("b"), "s", 12);
        long index = history.NextIndex;
        Assert.That(
            () => history.Apply(Time(), "l", 40, events => [.. events.Where(e => e.Type != LockEventType.Granted), new LockEvent(LockEventType.Granted, "b", new RequestId("s", 1, 4), index << 16, 140)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("took the room of multi-lock request"));
    }

    [Test]
    public void ASetThatFitsLeftWaitingIsCaught()
    {
        var history = new History();
        long b = history.Apply(Acquire("b"), "x", 10).Single().Token;
        history.Apply(All(1000, "a", "b"), "g", 11);
        Assert.That(
            () => history.Apply(Release("b", b), "x", 12, events => [.. events.Where(e => e.Type != LockEventType.Granted)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("multi-lock request " + new RequestId("g", 1, 2) + " for [a, b] has room in each of its locks"));
    }

    [Test]
    public void ASingleLeftWaitingBehindASetThatDoesNotFitIsCaught()
    {
        var history = new History();
        long a = history.Apply(Acquire("a"), "w", 10).Single().Token;
        history.Apply(Acquire("b"), "x", 11);
        history.Apply(All(1000, "a", "b"), "g", 12);
        history.Apply(Acquire("a"), "y", 13);
        Assert.That(
            () => history.Apply(Release("a", a), "w", 14, events => [.. events.Where(e => e.Type != LockEventType.Granted)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("waiter " + new RequestId("y", 1, 4) + " of 'a' has room in each of its locks"));
    }

    [Test]
    public void ASingleQueuedBehindOnlyWaitingSetsWhileItsLockHasRoomIsCaught()
    {
        var history = new History();
        history.Apply(Acquire("b"), "x", 10);
        history.Apply(All(1000, "a", "b"), "g", 11);
        Assert.That(
            () => history.Apply(Acquire("a"), "y", 12, events => []),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("queued for 'a' while it had room for it and only multi-lock requests waited"));
    }

    [Test]
    public void GrantsOfAPassOutOfLockOrderAreCaught()
    {
        var history = new History();
        history.Apply(Acquire("a", leaseMs: 20), "x", 10);
        history.Apply(Acquire("b", leaseMs: 20), "z", 10);
        history.Apply(Acquire("a"), "y1", 11);
        history.Apply(Acquire("b"), "y2", 11);
        Assert.That(
            () => history.Apply(Time(), "l", 40, events => [.. events.Where(e => e.Type != LockEventType.Granted), .. events.Where(e => e.Type == LockEventType.Granted).Reverse()]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("not ordered by lock, then token"));
    }

    [Test]
    public void ASetWhoseWaitEndsInTheNameOfAnotherLockIsCaught()
    {
        var history = new History();
        history.Apply(Acquire("b", leaseMs: 10_000), "x", 10);
        history.Apply(All(20, "b", "a"), "g", 11);
        Assert.That(
            () => history.Apply(Time(), "l", 40, events => [.. events.Select(e => e with { Name = "b" })]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("not of its first lock"));
    }

    [Test]
    public void ASetWithdrawnTwiceIsCaught()
    {
        var history = new History();
        history.Apply(Acquire("b", leaseMs: 10_000), "x", 10);
        history.Apply(All(1000, "a", "b"), "g", 11);
        Assert.That(
            () => history.Apply(new LockCommand(LockCommandType.CancelWait, "b", RequestSequence: 2), "g", 12, events => [.. events, new LockEvent(LockEventType.Cancelled, "a", new RequestId("g", 1, 2))]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("not waiting for 'a'"));
    }

    [Test]
    public void AClientThatSeesPartOfASetGrantedIsCaught()
    {
        var history = new History();
        var granted = history.Apply(All(1000, "a", "b"), "g", 10);
        var request = granted[0].Request;
        history.Checker.ObserveClientGrant("g.c0", request, [.. granted.Select(e => (e.Name, e.Token))], 1);
        Assert.That(history.Checker.Stats.ClientGroupGrants, Is.EqualTo(1));
        Assert.That(
            () => history.Checker.ObserveClientGrant("g.c0", request, [(granted[0].Name, granted[0].Token)], 1),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("saw 1 locks granted"));
    }

    [Test]
    public void AReaderBesideAWriterAndAWriterBesideReadersAreCaught()
    {
        var history = new History();
        history.Apply(WriteLock("rw"), "w", 10);
        long index = history.NextIndex;
        Assert.That(
            () => history.Apply(ReadLock("rw"), "r", 20, events => [.. events, new LockEvent(LockEventType.Granted, "rw", new RequestId("r", 1, 2), index << 16, 120)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("for reading while held by 1"));

        var readers = new History();
        readers.Apply(ReadLock("rw"), "r", 10);
        long next = readers.NextIndex;
        Assert.That(
            () => readers.Apply(WriteLock("rw"), "w", 20, events => [.. events, new LockEvent(LockEventType.Granted, "rw", new RequestId("w", 1, 2), next << 16, 120)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("for writing while held by 1"));
    }

    [Test]
    public void ReadersLeftWaitingWhenTheWriterAheadOfThemStoppedWaitingAreCaught()
    {
        var history = new History();
        history.Apply(ReadLock("rw"), "r1", 10);
        history.Apply(WriteLock("rw"), "w", 11);
        history.Apply(ReadLock("rw"), "r2", 12);
        Assert.That(
            () => history.Apply(new LockCommand(LockCommandType.CancelWait, "rw", RequestSequence: 2), "w", 13, events => [.. events.Where(e => e.Type != LockEventType.Granted)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("of 'rw' has room in each of its locks"));
    }

    [Test]
    public void ClientsThatBelieveTheyWriteWhileAnotherReadsAreCaughtButReadersMayShare()
    {
        var checker = new LockHistoryChecker();
        checker.BeginBelief(new ClientBelief("a", "rw", 0, 1 << 16, startUs: 0, startStep: 1) { SafeUntilRealUs = 1000, Kind = LockHoldKind.Read });
        checker.BeginBelief(new ClientBelief("b", "rw", 0, 2 << 16, startUs: 10, startStep: 2) { SafeUntilRealUs = 1000, Kind = LockHoldKind.Read });
        Assert.That(
            () => checker.BeginBelief(new ClientBelief("c", "rw", 0, 3 << 16, startUs: 20, startStep: 3) { SafeUntilRealUs = 1000, Kind = LockHoldKind.Write }),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("for Write"));
        Assert.That(
            () => checker.BeginBelief(new ClientBelief("d", "rw", 1, 4 << 16, startUs: 30, startStep: 4) { SafeUntilRealUs = 1000 }),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("max 1"), "a mutex hold of a name held as a reader-writer lock");
    }

    [Test]
    public void ASecondHolderOfAMutexIsCaught()
    {
        var history = new History();
        history.Apply(Acquire("x"), "a", 10);
        long index = history.NextIndex;
        Assert.That(
            () => history.Apply(Acquire("x"), "b", 20, events => [.. events, new LockEvent(LockEventType.Granted, "x", new RequestId("b", 1, 2), index << 16, 120)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("while held by 1"));
    }

    [Test]
    public void AGrantOutOfQueueOrderIsCaught()
    {
        var history = new History();
        long a = history.Apply(Acquire("x"), "a", 10).Single().Token;
        history.Apply(Acquire("x"), "b", 11);
        history.Apply(Acquire("x"), "c", 12);
        Assert.That(
            () => history.Apply(Release("x", a), "a", 13, events => events.Select(e => e.Type == LockEventType.Granted ? e with { Request = new RequestId("c", 1, 3) } : e).ToList()),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("FIFO"));
    }

    [Test]
    public void AHoldEndedBeforeItsLeaseRanOutIsCaught()
    {
        var history = new History();
        long a = history.Apply(Acquire("x", leaseMs: 100), "a", 10).Single().Token;
        Assert.That(
            () => history.Apply(Time(), "l", 50, events => [.. events, new LockEvent(LockEventType.Expired, "x", new RequestId("a", 1, 1), a)]),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("before its lease ran out"));
    }

    [Test]
    public void AHoldOutlivingItsLeaseIsCaught()
    {
        var history = new History();
        history.Apply(Acquire("x", leaseMs: 100), "a", 10);
        Assert.That(
            () => history.Apply(Time(), "l", 500, events => events.Where(e => e.Type != LockEventType.Expired).ToList()),
            Throws.TypeOf<LockSimViolation>());
    }

    [Test]
    public void TablesThatDifferAtOneIndexAreCaught()
    {
        var checker = new LockHistoryChecker();
        var (first, second) = (new LockTable(), new LockTable());
        var command = Acquire("x");
        first.Apply(command, new RequestId("a", 1, 1), 10, 1);
        second.Apply(command, new RequestId("a", 1, 1), 11, 1);
        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, 10, "a", 1, 1, command.Encode());
        checker.ObserveApplied("n1", first, 1, envelope, command, first.TakeEvents());
        Assert.That(
            () => checker.ObserveApplied("n2", second, 1, envelope with { Stamp = 11 }, command, second.TakeEvents()),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("differs"));
    }

    [Test]
    public void AnAcknowledgedReleaseOfAHoldStillInPlaceIsCaught()
    {
        var history = new History();
        long a = history.Apply(Acquire("x"), "a", 10).Single().Token;
        Assert.That(() => history.Checker.ObserveReleaseAcknowledged("a.c0", "x", a, 1), Throws.TypeOf<LockSimViolation>().With.Message.Contains("remains"));
    }

    [Test]
    public void ClientsThatBelieveTheyHoldAMutexAtOnceAreCaught()
    {
        var checker = new LockHistoryChecker();
        checker.BeginBelief(new ClientBelief("a", "x", 1, 1 << 16, startUs: 0, startStep: 1) { SafeUntilRealUs = 900 });
        checker.BeginBelief(new ClientBelief("late", "x", 1, 2 << 16, startUs: 950, startStep: 2) { SafeUntilRealUs = 800 });
        checker.BeginBelief(new ClientBelief("b", "x", 1, 3 << 16, startUs: 900, startStep: 3) { SafeUntilRealUs = 1800 });
        Assert.That(
            () => checker.BeginBelief(new ClientBelief("c", "x", 1, 4 << 16, startUs: 1700, startStep: 4) { SafeUntilRealUs = 2600 }),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("b (token"));
        Assert.That(checker.Stats.LostOnArrival, Is.EqualTo(1), "a grant seen after its safe deadline is never believed");
    }

    [Test]
    public void MoreSemaphoreHoldersThanSlotsAreCaught()
    {
        var checker = new LockHistoryChecker();
        checker.BeginBelief(new ClientBelief("a", "s", 2, 1 << 16, startUs: 0, startStep: 1) { SafeUntilRealUs = 1000 });
        checker.BeginBelief(new ClientBelief("b", "s", 2, 2 << 16, startUs: 10, startStep: 2) { SafeUntilRealUs = 1000 });
        Assert.That(
            () => checker.BeginBelief(new ClientBelief("c", "s", 2, 3 << 16, startUs: 20, startStep: 3) { SafeUntilRealUs = 1000 }),
            Throws.TypeOf<LockSimViolation>().With.Message.Contains("max 2"));
    }
}
