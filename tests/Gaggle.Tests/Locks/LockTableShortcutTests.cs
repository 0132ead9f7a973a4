using Gaggle.Locks;
using NUnit.Framework;
using static Gaggle.Tests.Locks.LockTableSnapshots;

namespace Gaggle.Tests.Locks;

/// <summary>
/// The shortcuts of the grant pass (a lone acquire granted at once; an acquire that cannot fit queued
/// without a pass; a pass over one lock's queue of single requests) decide exactly what the general
/// pass decides: every command is applied to a default table and to one that decides by the general
/// pass alone (<see cref="LockTable.GeneralPassOnly"/>), and both must give the same events in the same
/// order, the same state and the same next deadline, after every entry. The random runs lean on single
/// requests, try-once acquires, cancels, duplicate request ids and entries that run out of tokens.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class LockTableShortcutTests
{
    private static RequestId R(string node, long sequence = 1) => new(node, 1, sequence);

    private static LockCommand Generation(long holdOffMs = 0) => new(LockCommandType.Generation, "", Token: 1, LeaseMs: holdOffMs);

    private static LockCommand Read(string name, long waitMs = 10_000, long leaseMs = 1000) => new(LockCommandType.AcquireRead, name, 0, leaseMs, waitMs);

    private static LockCommand Write(string name, long waitMs = 10_000, long leaseMs = 1000) => new(LockCommandType.AcquireWrite, name, 0, leaseMs, waitMs);

    private static LockCommand Mutex(string name, long waitMs = 10_000, long leaseMs = 1000) => new(LockCommandType.Acquire, name, 1, leaseMs, waitMs);

    private static LockCommand Sem(string name, int max, long waitMs = 10_000, long leaseMs = 1000) => new(LockCommandType.Acquire, name, max, leaseMs, waitMs);

    private static LockCommand All(long waitMs, params LockPart[] parts) => new(LockCommandType.AcquireAll, parts[0].Name, 0, 1000, waitMs) { Parts = parts };

    private static LockCommand Release(string name, long token) => new(LockCommandType.Release, name, Token: token);

    private static LockCommand Cancel(string name, long sequence) => new(LockCommandType.CancelWait, name, RequestSequence: sequence);

    private static LockCommand Time() => new(LockCommandType.Time, "");

    /// <summary>An event as text, what an inspection found included (its holders are an array).</summary>
    private static string Show(LockEvent e)
        => e with { Info = null } + (e.Info is { } info ? $" {info with { Holders = [] }} [{string.Join(", ", info.Holders)}]" : "");

    /// <summary>A default table and a general-pass-only one, fed the same entries and compared after each.</summary>
    private sealed class Pair
    {
        public LockTable Table { get; } = new();

        public LockTable Reference { get; } = new() { GeneralPassOnly = true };

        public long Index { get; private set; } = 1;

        public List<LockEvent> Apply(LockCommand command, RequestId request, long stamp, string? what = null)
        {
            long at = Index++;
            Table.Apply(command, request, stamp, at);
            Reference.Apply(command, request, stamp, at);
            var events = Table.TakeEvents();
            string where = $"{what} index {at} ({command.Type} '{command.Name}' by {request.Node}/{request.Sequence})";
            Assert.That(Reference.TakeEvents().Select(Show), Is.EqualTo(events.Select(Show)), $"{where}: events");
            Assert.That(Bytes(Table), Is.EqualTo(Bytes(Reference)), $"{where}: state");
            Assert.That(Table.NextDeadline, Is.EqualTo(Reference.NextDeadline), $"{where}: NextDeadline");
            Assert.That(Table.NextDeadline, Is.EqualTo(Table.ScanNextDeadline()), $"{where}: NextDeadline against a scan");
            return events;
        }
    }

    [Test]
    public void AReleaseHandingAMutexOverGrantsTheNextSingleAsTheGeneralPassDoes()
    {
        var pair = new Pair();
        long held = pair.Apply(Mutex("m"), R("h"), 0).Single().Token;
        pair.Apply(Mutex("m"), R("w1"), 0);
        pair.Apply(Mutex("m", waitMs: 0), R("try"), 0);   // denied: w1 waits ahead of it
        pair.Apply(Mutex("m"), R("w2"), 0);
        var events = pair.Apply(Release("m", held), R("h", 2), 5);
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Released, "h"), (LockEventType.Granted, "w1") }));
    }

    [Test]
    public void AWriterLeavingTheFrontGrantsTheReadersBehindItAsTheGeneralPassDoes()
    {
        var pair = new Pair();
        pair.Apply(Read("rw"), R("r0"), 0);
        pair.Apply(Write("rw"), R("w"), 0);
        pair.Apply(Read("rw"), R("r1"), 0);
        pair.Apply(Read("rw"), R("r2"), 0);
        pair.Apply(Write("rw"), R("w2"), 0);
        pair.Apply(Read("rw", waitMs: 0), R("try"), 0);
        var events = pair.Apply(Cancel("rw", 1), R("w", 2), 5);
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Cancelled, "w"), (LockEventType.Granted, "r1"), (LockEventType.Granted, "r2") }));
    }

    [Test]
    public void ASetReachingTheFrontAfterASingleWasHandedTheLockIsGrantedInTheSamePassAndReportedByName()
    {
        // rw held by a writer; queue: r1, the set {rw: read, a}, r2, a writer, r3. The writer's release
        // grants r1 (a queue of singles), then the set (a is free) and r2 behind it; the writer waits.
        var pair = new Pair();
        pair.Apply(Write("rw"), R("w"), 0);
        pair.Apply(Read("rw"), R("r1"), 0);
        pair.Apply(All(10_000, new LockPart(LockCommandType.AcquireRead, "rw"), new LockPart(LockCommandType.Acquire, "a")), R("set"), 0);
        pair.Apply(Read("rw"), R("r2"), 0);
        pair.Apply(Write("rw"), R("w2"), 0);
        pair.Apply(Read("rw"), R("r3"), 0);
        long writer = pair.Table.Describe("rw", 0).Holders.Single().FencingToken;
        var events = pair.Apply(Release("rw", writer), R("w", 2), 5);
        Assert.That(events.Select(e => (e.Type, e.Name, e.Request.Node)), Is.EqualTo(new[]
        {
            (LockEventType.Released, "rw", "w"),
            (LockEventType.Granted, "a", "set"), (LockEventType.Granted, "rw", "r1"), (LockEventType.Granted, "rw", "set"), (LockEventType.Granted, "rw", "r2"),
        }));
    }

    [Test]
    public void ATryOnceBehindASetThatCannotFitIsGrantedPastIt()
    {
        var pair = new Pair();
        pair.Apply(Mutex("a"), R("ha"), 0);
        pair.Apply(All(10_000, new LockPart(LockCommandType.Acquire, "a"), new LockPart(LockCommandType.Acquire, "b")), R("set"), 0);
        var events = pair.Apply(Mutex("b", waitMs: 0), R("try"), 0);
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Granted, "try") }));
        events = pair.Apply(Mutex("b", waitMs: 0), R("try2"), 0);
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Denied, "try2") }));
    }

    [Test]
    public void AnEntryOutOfTokensKeepsTheLockAlikeForASingleAndForASet()
    {
        // A writer holds d; 256 readers, then the set {d: read, b}, then 3 more readers wait. The writer's
        // release grants 256 readers (the entry's tokens of d); the set fits but is kept for the next entry,
        // its lock b too: an acquire of b in that entry queues behind it, and a try-once is denied.
        var pair = new Pair();
        pair.Apply(Generation(), R("founder"), 0);
        long writer = pair.Apply(Write("d"), R("writer"), 0).Single().Token;
        for (int i = 0; i < 256; i++)
        {
            pair.Apply(Read("d"), R($"r{i}"), 0);
        }

        pair.Apply(All(10_000, new LockPart(LockCommandType.AcquireRead, "d"), new LockPart(LockCommandType.Acquire, "b")), R("set"), 0);
        for (int i = 0; i < 3; i++)
        {
            pair.Apply(Read("d"), R($"late{i}"), 0);
        }

        var events = pair.Apply(Release("d", writer), R("writer", 2), 10);
        Assert.That(events.Count(e => e.Type == LockEventType.Granted), Is.EqualTo(256));
        Assert.That(pair.Table.NextDeadline, Is.EqualTo(10), "due at once: the set fits");

        // The next entry (a try-once on b, applied at the same time): the set is granted first.
        events = pair.Apply(Mutex("b", waitMs: 0), R("try"), 10);
        Assert.That(events.Select(e => (e.Type, e.Name, e.Request.Node)), Is.EqualTo(new[]
        {
            (LockEventType.Granted, "b", "set"), (LockEventType.Granted, "d", "set"),
            (LockEventType.Granted, "d", "late0"), (LockEventType.Granted, "d", "late1"), (LockEventType.Granted, "d", "late2"),
            (LockEventType.Denied, "b", "try"),
        }));
    }

    [Test]
    public void AWriterCancelledInTheEntryThatGrantsTheKeptReadersLetsTheReadersBehindItIn()
    {
        // 258 readers behind a writer of d: its release grants 256 and keeps d for the other two. The next
        // entry's first pass (a deadline due at once) grants them; its command, the cancel of the writer
        // waiting behind them, touches d alone: the reader behind the writer gets the entry's third token.
        var pair = new Pair();
        pair.Apply(Generation(), R("founder"), 0);
        long writer = pair.Apply(Write("d"), R("writer"), 0).Single().Token;
        for (int i = 0; i < 258; i++)
        {
            pair.Apply(Read("d"), R($"r{i}"), 0);
        }

        pair.Apply(Write("d"), R("w2"), 0);
        pair.Apply(Read("d"), R("after"), 0);
        var events = pair.Apply(Release("d", writer), R("writer", 2), 10);
        Assert.That(events.Count(e => e.Type == LockEventType.Granted), Is.EqualTo(256));
        events = pair.Apply(Cancel("d", 1), R("w2", 2), 10);
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[]
        {
            (LockEventType.Granted, "r256"), (LockEventType.Granted, "r257"), (LockEventType.Cancelled, "w2"), (LockEventType.Granted, "after"),
        }));
        Assert.That(events[^1].Token - events[0].Token, Is.EqualTo(2));
    }

    [Test]
    public void AForgottenLockTouchedAloneIsForgottenAlike()
    {
        var pair = new Pair();
        long token = pair.Apply(Mutex("m", leaseMs: 10), R("h"), 0).Single().Token;
        pair.Apply(Mutex("m", waitMs: 5), R("w"), 0);
        pair.Apply(Time(), R("leader"), 20);   // w's wait and h's lease end: m is forgotten
        Assert.That(pair.Table.Count, Is.Zero);
        pair.Apply(Release("m", token), R("h", 2), 20);
        pair.Apply(Cancel("m", 1), R("w", 2), 20);
        pair.Apply(Mutex("m", waitMs: 0), R("again"), 20);
        Assert.That(pair.Table.Count, Is.EqualTo(1));
    }

    /// <summary>Seeds of the random runs: 20 by default, GAGGLE_LOCK_SHORTCUT_SEEDS to run more.</summary>
    public static IEnumerable<int> Seeds => Enumerable.Range(1, SeedCount(20));

    /// <summary>Seeds of the runs with bursts of readers beyond an entry's tokens (slower): 4 by default, GAGGLE_LOCK_SHORTCUT_SEEDS to run more.</summary>
    public static IEnumerable<int> BurstSeeds => Enumerable.Range(1, SeedCount(4));

    private static int SeedCount(int byDefault)
        => int.Parse(Environment.GetEnvironmentVariable("GAGGLE_LOCK_SHORTCUT_SEEDS") ?? byDefault.ToString(System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    private static readonly string[] Names = ["a", "b", "c", "d", "e", "f"];

    private static LockPart PartFor(string name, Random random) => name switch
    {
        "a" or "b" => new LockPart(LockCommandType.Acquire, name, 1),
        "c" => new LockPart(LockCommandType.Acquire, name, 2),
        "f" => new LockPart(LockCommandType.Acquire, name, 3),
        _ => new LockPart(random.Next(3) == 0 ? LockCommandType.AcquireWrite : LockCommandType.AcquireRead, name, 0),
    };

    [TestCaseSource(nameof(Seeds))]
    public void RandomSingleHeavyTrafficIsDecidedAsByTheGeneralPass(int seed) => Run(seed, elastic: false);

    [TestCaseSource(nameof(BurstSeeds))]
    public void RandomSingleHeavyTrafficWithEntriesOutOfTokensIsDecidedAsByTheGeneralPass(int seed) => Run(seed, elastic: true);

    private static void Run(int seed, bool elastic)
    {
        var random = new Random(seed);
        var pair = new Pair();
        LockTable? copy = null;
        long now = 0;
        var held = new List<(string Name, long Token, RequestId Request)>();
        var waiting = new List<(RequestId Request, string Name, LockCommand Command)>();
        long sequence = 0;
        if (elastic)
        {
            pair.Apply(Generation(), R("founder"), 0);
        }

        void Note(List<LockEvent> events, RequestId request, LockCommand command)
        {
            foreach (var e in events)
            {
                switch (e.Type)
                {
                    case LockEventType.Granted:
                        held.Add((e.Name, e.Token, e.Request));
                        waiting.RemoveAll(w => w.Request == e.Request);
                        break;
                    case LockEventType.Released or LockEventType.Expired:
                        held.RemoveAll(h => h.Name == e.Name && h.Token == e.Token);
                        break;
                    case LockEventType.Denied or LockEventType.Cancelled:
                        waiting.RemoveAll(w => w.Request == e.Request);
                        break;
                }
            }

            if (command.Type.IsAcquire() && !events.Any(e => e.Request == request) && !waiting.Any(w => w.Request == request))
            {
                waiting.Add((request, command.Name, command));
            }
        }

        List<LockEvent> Apply(LockCommand command, RequestId request, string what)
        {
            var events = pair.Apply(command, request, now, what);
            if (copy is not null)
            {
                copy.Apply(command, request, now, pair.Index - 1);
                Assert.That(copy.TakeEvents().Select(Show), Is.EquivalentTo(events.Select(Show)), $"{what}: a restored table's events");
                Assert.That(Bytes(copy), Is.EqualTo(Bytes(pair.Table)), $"{what}: a restored table's state");
                Assert.That(copy.NextDeadline, Is.EqualTo(pair.Table.NextDeadline), $"{what}: a restored table's NextDeadline");
            }

            Note(events, request, command);
            return events;
        }

        for (int step = 0; step < 400; step++)
        {
            string what = $"seed {seed} step {step}";
            if (elastic && random.Next(60) == 0)
            {
                // A burst: a writer, then 250 to 300 readers (some try-once), maybe a set among them, queue on d or e.
                string name = random.Next(2) == 0 ? "d" : "e";
                Apply(Write(name, waitMs: 3000, leaseMs: random.Next(10, 60)), R("bw", ++sequence), $"{what} burst writer");
                int readers = 250 + random.Next(50);
                int setAt = random.Next(2) == 0 ? random.Next(readers) : -1;
                for (int i = 0; i < readers; i++)
                {
                    if (i == setAt)
                    {
                        string other = Names.Where(n => n != name).OrderBy(_ => random.Next()).First();
                        Apply(All(3000, new LockPart(LockCommandType.AcquireRead, name), PartFor(other, random)), R("bs", ++sequence), $"{what} burst set");
                    }

                    Apply(Read(name, waitMs: random.Next(20) == 0 ? 0 : 3000, leaseMs: random.Next(20, 300)), R($"br{random.Next(3)}", ++sequence), $"{what} burst reader {i}");
                }
            }

            var request = R($"n{random.Next(4)}", ++sequence);
            LockCommand command;
            int op = random.Next(100);
            long wait = random.Next(5) switch { 0 or 1 => 0, 2 => random.Next(1, 50), _ => 2000 };
            long lease = random.Next(5, 150);
            if (op < 38)
            {
                var part = PartFor(Names[random.Next(Names.Length)], random);
                command = new LockCommand(part.Type, part.Name, part.MaxCount, lease, wait);
            }
            else if (op < 48)
            {
                var set = Names.OrderBy(_ => random.Next()).Take(random.Next(2, 4)).Select(n => PartFor(n, random)).ToArray();
                command = new LockCommand(LockCommandType.AcquireAll, set[0].Name, 0, lease, wait) { Parts = set };
            }
            else if (op < 66 && held.Count > 0)
            {
                var (name, token, _) = held[random.Next(held.Count)];
                command = Release(name, token);
            }
            else if (op < 70 && held.Count > 0)
            {
                var (name, token, _) = held[random.Next(held.Count)];
                command = new LockCommand(LockCommandType.Renew, name, Token: token, LeaseMs: lease);
            }
            else if (op < 82 && waiting.Count > 0)
            {
                var (target, name, acquire) = waiting[random.Next(waiting.Count)];
                if (acquire.Type == LockCommandType.AcquireAll && random.Next(2) == 0)
                {
                    name = acquire.Parts[random.Next(acquire.Parts.Count)].Name;
                }

                request = target with { Sequence = ++sequence };
                command = Cancel(name, target.Sequence);
            }
            else if (op < 85 && waiting.Count > 0)
            {
                // A request id used again (a retried append): the same acquire, or another lock's.
                var (target, _, acquire) = waiting[random.Next(waiting.Count)];
                request = target;
                command = random.Next(2) == 0 ? acquire : Mutex("b", waitMs: wait, leaseMs: lease);
            }
            else if (op < 87 && held.Count > 0)
            {
                // A holder asks again under the id it holds with: for its lock (ignored), or another.
                var (name, _, holder) = held[random.Next(held.Count)];
                request = holder;
                var part = PartFor(random.Next(2) == 0 ? name : Names[random.Next(Names.Length)], random);
                command = new LockCommand(part.Type, part.Name, part.MaxCount, lease, wait);
            }
            else if (op < 89 && elastic)
            {
                command = Generation(random.Next(0, 100));
            }
            else if (op < 90)
            {
                command = new LockCommand(LockCommandType.Inspect, Names[random.Next(Names.Length)]);
            }
            else
            {
                command = Time();
            }

            now += random.Next(3) == 0 ? 0 : random.Next(0, 30);
            Apply(command, request, what);

            if (random.Next(25) == 0)
            {
                copy = Restore(pair.Table);
            }
        }
    }
}
