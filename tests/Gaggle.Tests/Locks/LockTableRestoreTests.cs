using Gaggle.Locks;
using NUnit.Framework;
using static Gaggle.Tests.Locks.LockTableSnapshots;

namespace Gaggle.Tests.Locks;

/// <summary>
/// A lock table read from a snapshot answers every later entry as the table that wrote it: same state,
/// same events in the same order (nodes compare both), with mutexes, semaphores, reader-writer locks and
/// multi-lock requests, waits, cancels, expiries, hold-offs and entries that run out of tokens. Random
/// runs also check the bounds, tokens and all-at-once grants after every entry, and that a table deciding
/// by the general grant pass alone (no shortcuts for queues of single requests) answers the same.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class LockTableRestoreTests
{
    private static RequestId R(string node, long sequence = 1) => new(node, 1, sequence);

    private static LockCommand Mutex(string name, long waitMs = 10_000, long leaseMs = 100) => new(LockCommandType.Acquire, name, 1, leaseMs, waitMs);

    private static LockCommand Sem(string name, int max, long waitMs = 10_000, long leaseMs = 100) => new(LockCommandType.Acquire, name, max, leaseMs, waitMs);

    private static LockCommand All(long waitMs, params LockPart[] parts) => new(LockCommandType.AcquireAll, parts[0].Name, 0, 100, waitMs) { Parts = parts };

    private static LockCommand Release(string name, long token) => new(LockCommandType.Release, name, Token: token);

    private static LockCommand Time() => new(LockCommandType.Time, "");

    [Test]
    public void AStaleDeadlineLeftByAReleaseChangesNothingATableReadFromASnapshotWouldNotDo()
    {
        var table = new LockTable();
        table.Apply(Mutex("m", leaseMs: 40), R("hm"), 0, 1);
        table.Apply(Mutex("k", leaseMs: 100), R("hk"), 0, 2);
        table.Apply(Sem("l", 2, leaseMs: 50), R("h1"), 0, 3);
        long h1 = table.TakeEvents().Last().Token;
        table.Apply(Release("l", h1), R("h1", 2), 10, 4);          // leaves l@50 behind m@40 in the heap
        table.Apply(All(10_000, new LockPart(LockCommandType.Acquire, "k"), new LockPart(LockCommandType.Acquire, "l", 2)), R("g"), 10, 5);
        table.Apply(Sem("l", 2), R("w"), 10, 6);                    // behind the set in l's queue
        table.TakeEvents();

        var restored = Restore(table);
        Assert.That(Bytes(restored), Is.EqualTo(Bytes(table)));

        table.Apply(Time(), R("leader"), 100, 7);
        restored.Apply(Time(), R("leader"), 100, 7);
        var fromLog = table.TakeEvents().Select(e => (e.Type, e.Name, e.Request.Node)).ToList();
        var fromSnapshot = restored.TakeEvents().Select(e => (e.Type, e.Name, e.Request.Node)).ToList();
        Assert.That(Bytes(restored), Is.EqualTo(Bytes(table)), "same state");
        Assert.That(fromSnapshot, Is.EqualTo(fromLog), "same events in the same order");
    }
    [Test]
    public void ASetWaitingForTheNextEntrysTokensIsGrantedAlikeByALogAppliedAndARestoredTable()
    {
        var table = new LockTable();
        long index = 1;
        table.Apply(new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 0), R("founder"), 0, index++);
        table.Apply(Mutex("d", leaseMs: 100), R("hd"), 0, index++);
        table.Apply(new LockCommand(LockCommandType.AcquireWrite, "a", 0, 100, 10_000), R("writer"), 0, index++);
        long writer = table.TakeEvents().Last().Token;
        for (int i = 0; i < 256; i++)
        {
            table.Apply(new LockCommand(LockCommandType.AcquireRead, "a", 0, 100, 10_000), R($"r{i}"), 0, index++);
        }

        table.Apply(All(10_000, new LockPart(LockCommandType.AcquireRead, "a"), new LockPart(LockCommandType.Acquire, "c", 2)), R("g"), 0, index++);
        table.Apply(Sem("c", 2), R("w"), 0, index++);
        Assert.That(table.TakeEvents().Single().Request.Node, Is.EqualTo("w"), "c has room: w gets a slot past the waiting set");
        table.Apply(Release("a", writer), R("writer", 2), 10, index++);
        Assert.That(table.TakeEvents().Count(e => e.Type == LockEventType.Granted), Is.EqualTo(256), "one entry's tokens of 'a'; the set waits for the next entry");
        Assert.That(table.NextDeadline, Is.EqualTo(10));

        var restored = Restore(table);
        table.Apply(Time(), R("leader"), 100, index);
        restored.Apply(Time(), R("leader"), 100, index);
        var fromLog = table.TakeEvents().Select(e => (e.Type, e.Name, e.Request.Node)).ToList();
        var fromSnapshot = restored.TakeEvents().Select(e => (e.Type, e.Name, e.Request.Node)).ToList();
        Assert.That(Bytes(restored), Is.EqualTo(Bytes(table)), "same state");
        Assert.That(fromSnapshot, Is.EqualTo(fromLog), "same events in the same order");
    }
    [Test]
    public void ARequestIdWaitingForOneLockIsNotQueuedForAnotherToo()
    {
        // Only a buggy or hostile member reuses a request id; were it queued in two queues, a table read
        // from a snapshot would take the two for one multi-lock request, and nodes would disagree.
        var table = new LockTable();
        table.Apply(Mutex("l1"), new RequestId("h1", 1, 1), 0, 1);
        table.Apply(Mutex("l2"), new RequestId("h2", 1, 1), 0, 2);
        long h2 = table.TakeEvents().Last().Token;
        var reused = new RequestId("bad", 1, 7);
        table.Apply(Mutex("l1"), reused, 0, 3);
        table.Apply(Mutex("l2"), reused, 0, 4);
        table.Apply(All(10_000, new LockPart(LockCommandType.Acquire, "l3"), new LockPart(LockCommandType.Acquire, "l4")), reused, 0, 5);
        Assert.That(table.TakeEvents(), Is.Empty);
        Assert.That(table.Describe("l2", 5).QueueLength, Is.Zero, "the id already waits for l1");
        Assert.That(table.Count, Is.EqualTo(2), "nothing was created for the ignored requests");

        var restored = Restore(table);
        var release = Release("l2", h2);
        table.Apply(release, new RequestId("h2", 1, 2), 10, 6);
        restored.Apply(release, new RequestId("h2", 1, 2), 10, 6);
        Assert.That(restored.TakeEvents(), Is.EqualTo(table.TakeEvents()));
        Assert.That(Bytes(restored), Is.EqualTo(Bytes(table)));
    }

    [Test]
    public void AnEntryStaysCheapWithAThousandSetsWaitingAtTheFrontOfAQueue()
    {
        // Every set waits for the held mutex m and at the front of l's queue: each acquire of l looks at
        // all of them, and must tell at a glance that m has no room.
        var table = new LockTable();
        long index = 1;
        table.Apply(new LockCommand(LockCommandType.Acquire, "m", 1, 1_000_000, 0), new RequestId("holder", 1, 1), 0, index++);
        for (int i = 0; i < 1000; i++)
        {
            table.Apply(All(1_000_000, new LockPart(LockCommandType.Acquire, "l", 1_000_000), new LockPart(LockCommandType.Acquire, "m")), new RequestId("s", 1, i), 0, index++);
        }

        table.TakeEvents();
        long steps = 0;
        for (int i = 0; i < 10; i++)
        {
            table.Apply(new LockCommand(LockCommandType.Acquire, "l", 1_000_000, 1000, 1_000_000), new RequestId("x", 1, i), 0, index++);
            steps += table.TakeEvents().Count;
        }

        Assert.That(steps, Is.EqualTo(10), "each single is granted past the sets");
        Assert.That(table.LastPassWork, Is.LessThan(5_000), "queue positions walked by the last grant pass");
    }

    private static readonly string[] Names = ["a", "b", "c", "d", "e"];

    private static LockPart PartFor(string name, Random random) => name switch
    {
        "a" or "b" => new LockPart(LockCommandType.Acquire, name, 1),
        "c" => new LockPart(LockCommandType.Acquire, name, 2),
        _ => new LockPart(random.Next(2) == 0 ? LockCommandType.AcquireRead : LockCommandType.AcquireWrite, name, 0),
    };

    /// <summary>Seeds of the random runs: 25 by default, GAGGLE_LOCK_FUZZ_SEEDS to run more.</summary>
    public static IEnumerable<int> Seeds => Enumerable.Range(1, int.Parse(Environment.GetEnvironmentVariable("GAGGLE_LOCK_FUZZ_SEEDS") ?? "25", System.Globalization.CultureInfo.InvariantCulture));

    [TestCaseSource(nameof(Seeds))]
    public void RandomCommandsLeaveARestoredTableAnsweringAsTheOriginal(int seed) => Run(seed, bursts: false);

    [TestCaseSource(nameof(Seeds))]
    public void RandomCommandsWithBurstsOfReadersBeyondAnEntrysTokens(int seed) => Run(seed, bursts: true);

    private static void Run(int seed, bool bursts)
    {
        var random = new Random(seed);
        var table = new LockTable();
        // Decides by the general grant pass alone: the shortcuts for queues of single requests must decide the same.
        var reference = new LockTable { GeneralPassOnly = true };
        LockTable? copy = null;
        long now = 0;
        long index = 1;
        bool elastic = random.Next(3) == 0;
        var waiting = new List<(RequestId Request, string Name)>();
        var held = new List<(string Name, long Token)>();
        var lastToken = new Dictionary<string, long>();
        var parts = new Dictionary<RequestId, int>();
        var orderOnly = new List<string>();
        if (elastic)
        {
            reference.Apply(new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 0), new RequestId("f", 1, 0), 0, index);
            table.Apply(new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 0), new RequestId("f", 1, 0), 0, index++);
        }

        if (bursts)
        {
            elastic = true;
            reference.Apply(new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 0), new RequestId("f", 1, 0), 0, index);
            table.Apply(new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 0), new RequestId("f", 1, 0), 0, index++);
        }

        for (int step = 0; step < 400; step++)
        {
            if (bursts && random.Next(40) == 0)
            {
                string burstName = random.Next(2) == 0 ? "d" : "e";
                for (int i = 0; i < 250 + random.Next(20); i++)
                {
                    var reader = new RequestId($"burst{step}", 1, i);
                    table.Apply(new LockCommand(LockCommandType.AcquireRead, burstName, 0, 500, 5000), reader, now, index);
                    copy?.Apply(new LockCommand(LockCommandType.AcquireRead, burstName, 0, 500, 5000), reader, now, index);
                    reference.Apply(new LockCommand(LockCommandType.AcquireRead, burstName, 0, 500, 5000), reader, now, index);
                    index++;
                    var burstEvents = table.TakeEvents();
                    Assert.That(reference.TakeEvents(), Is.EqualTo(burstEvents), $"seed {seed} step {step} burst reader {i}: the general grant pass answered otherwise");
                    Assert.That(reference.NextDeadline, Is.EqualTo(table.NextDeadline), $"seed {seed} step {step} burst reader {i}: the general grant pass's NextDeadline");
                    foreach (var e in burstEvents)
                    {
                        if (e.Type == LockEventType.Granted)
                        {
                            lastToken[e.Name] = e.Token;
                            held.Add((e.Name, e.Token));
                        }
                    }

                    copy?.TakeEvents();
                    Assert.That(table.NextDeadline, Is.EqualTo(table.ScanNextDeadline()));
                }
            }

            var request = new RequestId($"n{random.Next(4)}", 1, step + 1);
            LockCommand command;
            int op = random.Next(100);
            long wait = random.Next(4) switch { 0 => 0, 1 => 30, _ => 2000 };
            long lease = random.Next(20, 200);
            if (op < 25)
            {
                var part = PartFor(Names[random.Next(Names.Length)], random);
                command = new LockCommand(part.Type, part.Name, part.MaxCount, lease, wait);
            }
            else if (op < 50)
            {
                var set = Names.OrderBy(_ => random.Next()).Take(random.Next(2, 4)).Select(n => PartFor(n, random)).ToArray();
                command = new LockCommand(LockCommandType.AcquireAll, set[0].Name, 0, lease, wait) { Parts = set };
                parts[request] = set.Length;
            }
            else if (op < 65 && held.Count > 0)
            {
                var (name, token) = held[random.Next(held.Count)];
                command = new LockCommand(LockCommandType.Release, name, Token: token);
            }
            else if (op < 72 && held.Count > 0)
            {
                var (name, token) = held[random.Next(held.Count)];
                command = new LockCommand(LockCommandType.Renew, name, Token: token, LeaseMs: lease);
            }
            else if (op < 80 && waiting.Count > 0)
            {
                var (target, name) = waiting[random.Next(waiting.Count)];
                request = target with { Sequence = 100_000 + step };
                command = new LockCommand(LockCommandType.CancelWait, name, RequestSequence: target.Sequence);
            }
            else if (op < 82 && elastic)
            {
                command = new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: random.Next(0, 150));
            }
            else
            {
                command = new LockCommand(LockCommandType.Time, "");
            }

            now += random.Next(3) == 0 ? 0 : random.Next(0, 40);
            long at = index++;
            table.Apply(command, request, now, at);
            var events = table.TakeEvents();
            Assert.That(table.NextDeadline, Is.EqualTo(table.ScanNextDeadline()), $"seed {seed} step {step} index {at}: NextDeadline");
            reference.Apply(command, request, now, at);
            Assert.That(reference.TakeEvents(), Is.EqualTo(events), $"seed {seed} step {step} index {at}: the general grant pass answered otherwise");
            Assert.That(Bytes(reference), Is.EqualTo(Bytes(table)), $"seed {seed} step {step} index {at}: the general grant pass left another state");
            Assert.That(reference.NextDeadline, Is.EqualTo(table.NextDeadline), $"seed {seed} step {step} index {at}: the general grant pass's NextDeadline");

            if (copy is not null)
            {
                copy.Apply(command, request, now, at);
                var copied = copy.TakeEvents();
                Assert.That(Bytes(copy), Is.EqualTo(Bytes(table)), $"seed {seed} step {step} index {at}: restored table state differs");
                Assert.That(copied.Count, Is.EqualTo(events.Count), $"seed {seed} step {step}: event count");
                Assert.That(copied, Is.EquivalentTo(events), $"seed {seed} step {step}: event multiset differs");
                if (!copied.SequenceEqual(events))
                {
                    orderOnly.Add($"step {step} index {at}");
                }

                Assert.That(copy.NextDeadline, Is.EqualTo(table.NextDeadline), $"seed {seed} step {step}: restored NextDeadline");
            }

            if (random.Next(15) == 0)
            {
                copy = Restore(table);
            }

            var grantsByRequest = new Dictionary<RequestId, int>();
            foreach (var e in events)
            {
                switch (e.Type)
                {
                    case LockEventType.Granted:
                        Assert.That(e.Token, Is.GreaterThan(lastToken.GetValueOrDefault(e.Name, -1)), $"seed {seed} step {step}: token of {e.Name} did not increase");
                        lastToken[e.Name] = e.Token;
                        held.Add((e.Name, e.Token));
                        waiting.RemoveAll(w => w.Request == e.Request);
                        grantsByRequest[e.Request] = grantsByRequest.GetValueOrDefault(e.Request) + 1;
                        break;
                    case LockEventType.Released or LockEventType.Expired:
                        held.Remove((e.Name, e.Token));
                        break;
                    case LockEventType.Denied or LockEventType.Cancelled or LockEventType.Rejected:
                        waiting.RemoveAll(w => w.Request == e.Request);
                        break;
                }
            }

            foreach (var (granted, count) in grantsByRequest)
            {
                Assert.That(count, Is.EqualTo(parts.GetValueOrDefault(granted, 1)), $"seed {seed} step {step}: {granted} granted {count} locks in one entry");
            }

            if (command.Type.IsAcquire() && !events.Any(e => e.Request == request))
            {
                waiting.Add((request, command.Name));
            }

            foreach (var name in Names)
            {
                var info = table.Describe(name, at);
                int writers = info.Holders.Count(h => h.Kind == LockHoldKind.Write);
                Assert.That(info.MaxCount == 0 ? (writers == 0 || info.Holders.Count == 1) : info.Holders.Count <= info.MaxCount, Is.True,
                    $"seed {seed} step {step}: {name} has holders {string.Join(",", info.Holders.Select(h => h.Kind))}");
            }
        }

        Assert.That(orderOnly, Is.Empty, $"seed {seed}: the restored table answered in another order");
    }
}
