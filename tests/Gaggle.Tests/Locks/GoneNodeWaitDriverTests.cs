using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using Gaggle.Tests.Simulation;
using Gaggle.Tests.Support;
using NUnit.Framework;
using static Gaggle.Tests.Locks.GoneNodeLogs;

namespace Gaggle.Tests.Locks;

/// <summary>
/// A node ending its earlier processes' waits (<see cref="LockCommandType.IncarnationEnded"/>), driven tick by tick, and the
/// configuration that forces a new generation, which grants nothing (a lock table and the simulation's checker).
/// </summary>
[TestFixture]
public sealed class GoneNodeWaitDriverTests
{
    private const long TickUs = DriverHarness.TickUs;
    private readonly DriverHarness _harness = new();

    [Test]
    public void A_late_IncarnationEnded_of_a_dead_process_does_not_end_the_wait_of_the_live_process_after_it()
    {
        var leader = _harness.StartLeader("b");
        long holdToken = AcquireOwn(leader, "job");
        Assert.That(holdToken, Is.GreaterThan(0));

        // a#2 (incarnation 2) saw a#1's wait while catching up and sent its IncarnationEnded; the
        // forward is delayed. a#2 then dies; a#3 (incarnation 3) starts, ends a#1's wait itself, and queues.
        byte[] lateIncarnationEnded = Envelope("a", 2, 1, new LockCommand(LockCommandType.IncarnationEnded, ""));
        leader.Receive("a", new ForwardAppend([Envelope("a", 1, 7, new LockCommand(LockCommandType.Acquire, "job", 1, 5_000, 600_000))], 0));
        _harness.Pump(leader);
        leader.Receive("a", new ForwardAppend([Envelope("a", 3, 1, new LockCommand(LockCommandType.IncarnationEnded, "", Token: 1))], 0));
        _harness.Pump(leader);
        Assert.That(leader.PeekLock("job").QueueLength, Is.Zero, "a#3 ended a#1's wait");
        leader.Receive("a", new ForwardAppend([Envelope("a", 3, 2, new LockCommand(LockCommandType.Acquire, "job", 1, 5_000, 600_000))], 0));
        _harness.Pump(leader);
        Assert.That(leader.PeekLock("job").QueueLength, Is.EqualTo(1), "a#3, alive, waits");

        var rejected = new List<LockEvent>();
        leader.Machines.Observer = (_, _, _) => rejected.AddRange(leader.Machines.Locks.LastEvents.Where(e => e.Type == LockEventType.Rejected));
        // The dead a#2's forward arrives now.
        leader.Receive("a", new ForwardAppend([lateIncarnationEnded], 0));
        _harness.Pump(leader);

        Assert.That(rejected.Select(e => e.Request.Incarnation), Is.Empty,
            $"a#2's IncarnationEnded ended the live a#3's wait: {string.Join("; ", rejected.Select(e => $"{e.Request} {e.Reason}"))}");
        Assert.That(leader.PeekLock("job").QueueLength, Is.EqualTo(1));
    }

    [Test]
    public void A_forced_generations_configuration_grants_nothing_even_when_a_lock_was_due_at_once()
    {
        var machines = Elastic("a", 1);
        machines.TryApply(Config(1, ["a"], [], new() { ["a"] = 1 }), out _);
        machines.TryApply(Lock(2, "a", 1, 1, 1000, new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 1)), out _);
        machines.TryApply(Config(3, ["a"], ["x"], new() { ["a"] = 1, ["x"] = 3 }), out _);
        long index = 4;
        long sequence = 2;
        machines.TryApply(Lock(index++, "a", 1, sequence++, 2000, new LockCommand(LockCommandType.AcquireWrite, "rw", 0, 600_000, 600_000)), out _);
        long writerToken = machines.Locks.LastEvents.Single(e => e.Type == LockEventType.Granted).Token;
        for (int i = 0; i < 257; i++)
        {
            machines.TryApply(Lock(index++, "a", 1, sequence++, 2000, new LockCommand(LockCommandType.AcquireRead, "rw", 0, 600_000, 600_000)), out _);
        }

        machines.TryApply(Lock(index++, "x", 1, 1, 2000, new LockCommand(LockCommandType.AcquireWrite, "rw", 0, 600_000, 600_000)), out _);
        machines.TryApply(Lock(index++, "a", 1, sequence++, 2000, new LockCommand(LockCommandType.Release, "rw", Token: writerToken)), out _);
        Assert.That(machines.Locks.LastEvents.Count(e => e.Type == LockEventType.Granted), Is.EqualTo(256), "256 readers granted, the 257th kept for the next entry");
        Assert.That(machines.Locks.Table.NextDeadline, Is.EqualTo(machines.Locks.Table.Now), "due at once");

        long founding = index++;
        machines.TryApply(Config(founding, ["a"], [], new() { ["a"] = founding }), out _);
        var grants = machines.Locks.LastEvents.Where(e => e.Type == LockEventType.Granted).ToList();
        Assert.That(grants.Select(g => (g.Request.Sequence, g.Token)), Is.Empty,
            $"granted at the forced generation's configuration (index {founding}, token index {(grants.Count > 0 ? (grants[0].Token >> 8) & ((1L << 40) - 1) : 0)}), before its hold-off");
    }

    // A snapshot taken right at the founding index, restored elsewhere, then the generation start.
    [Test]
    public void A_snapshot_taken_at_the_founding_index_restores_a_consistent_table_that_grants_nothing_at_the_generation_start()
    {
        var machines = Elastic("a", 1);
        ApplyLostWriterAhead(machines);
        machines.TryApply(Lock(7, "a", 1, 4, 2000, new LockCommand(LockCommandType.Acquire, "m", 1, 10_000, 600_000)), out _);
        machines.TryApply(Lock(8, "x", 1, 2, 2000, new LockCommand(LockCommandType.Acquire, "m", 1, 10_000, 600_000)), out _);
        machines.TryApply(Config(9, ["a"], [], new() { ["a"] = 9 }), out _);
        var table = machines.Locks.Table;
        Assert.That(table.NextDeadline, Is.EqualTo(table.ScanNextDeadline()));

        var restored = Elastic("c", 1);
        restored.ReadSnapshot(machines.WriteSnapshot());
        Assert.That(restored.Locks.Table.NextDeadline, Is.EqualTo(restored.Locks.Table.ScanNextDeadline()));
        Assert.That(restored.Locks.Table.NextDeadline, Is.EqualTo(table.NextDeadline));

        var start = Lock(10, "a", 1, 5, 3000, new LockCommand(LockCommandType.Generation, "", Token: 2, LeaseMs: 5000));
        machines.TryApply(start, out _);
        restored.TryApply(start, out _);
        Assert.That(machines.Locks.LastEvents, Is.Empty);
        Assert.That(restored.Locks.LastEvents, Is.Empty);
        Assert.That(LockTableSnapshots.Bytes(machines.Locks.Table), Is.EqualTo(LockTableSnapshots.Bytes(restored.Locks.Table)));
        Assert.That(table.NextDeadline, Is.EqualTo(table.ScanNextDeadline()));
        Assert.That(restored.Locks.Table.NextDeadline, Is.EqualTo(restored.Locks.Table.ScanNextDeadline()));

        var time = Lock(11, "a", 1, 6, 9000, new LockCommand(LockCommandType.Time, ""));
        machines.TryApply(time, out _);
        restored.TryApply(time, out _);
        Assert.That(machines.Locks.LastEvents.Select(e => (e.Type, e.Name, e.Request)), Is.EqualTo(restored.Locks.LastEvents.Select(e => (e.Type, e.Name, e.Request))));
        Assert.That(machines.Locks.LastEvents.Count(e => e.Type == LockEventType.Granted), Is.EqualTo(1), "a's second read, once the hold-off ended");
    }

    // The simulation's checker, fed the history the table makes at a forced generation's configuration.
    [Test]
    public void The_simulation_checker_accepts_what_a_forced_generations_configuration_does()
    {
        var checker = new LockHistoryChecker();
        var machines = Elastic("a", 1);
        machines.Observer = (index, envelope, firstTime) =>
        {
            if (envelope.Kind == EntryPayloadKind.Lock && firstTime)
            {
                checker.ObserveApplied("a", machines.Locks.Table, index, envelope, machines.Locks.LastCommand!, machines.Locks.LastEvents.ToList());
            }
        };
        ApplyLostWriterAhead(machines);

        Assert.DoesNotThrow(() => machines.TryApply(Config(7, ["a"], [], new() { ["a"] = 7 }), out _));
    }

    [Test]
    public void A_node_that_hears_no_leader_appends_no_IncarnationEnded()
    {
        var driver = new NodeDriver(DriverHarness.Settings("a", ["a", "b", "c"], 2), new PersistedState(HardState.Empty, []), _harness.Sequences);
        driver.Machines.Locks.Apply(1, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "a", 1, 1, new LockCommand(LockCommandType.Acquire, "x", 1, 1000, 600_000).Encode()));
        driver.Machines.Locks.Apply(2, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "a", 1, 2, new LockCommand(LockCommandType.Acquire, "x", 1, 1000, 600_000).Encode()));
        Assert.That(driver.Machines.Locks.Table.OtherIncarnationsWaiting("a", 2), Is.EqualTo(new ulong[] { 1 }));
        int most = 0;
        for (int i = 0; i < 1000; i++)
        {
            _harness.NowUs += TickUs;
            driver.Tick(_harness.NowUs);
            most = Math.Max(most, driver.PendingAppends);
        }

        Assert.That(most, Is.Zero, "no leader heard: its table may be stale, so it appends nothing");
    }

    // A node whose own apply lags (it reaches the leader, but catches up slowly or not at all: a lossy
    // link, a large log) must not append an IncarnationEnded every settle time while its stale table
    // shows the earlier process's wait: the leader would commit each (in a seeded run, a node stuck
    // at applied index 13 logged 12, 11 of which ended nothing).
    [Test]
    public void A_lagging_node_does_not_log_an_IncarnationEnded_every_settle_time()
    {
        var driver = new NodeDriver(DriverHarness.Settings("a", ["a", "b", "c"], 2), new PersistedState(HardState.Empty, []), _harness.Sequences);
        driver.Machines.Locks.Apply(1, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "a", 1, 1, new LockCommand(LockCommandType.Acquire, "x", 1, 1000, 600_000).Encode()));
        driver.Machines.Locks.Apply(2, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "a", 1, 2, new LockCommand(LockCommandType.Acquire, "x", 1, 1000, 600_000).Encode()));
        var sent = new HashSet<long>();
        for (int i = 0; i < 2000; i++)
        {
            _harness.NowUs += TickUs;
            if (i % 5 == 0)
            {
                driver.Receive("b", new RaftWireMessage(new RaftMessage { Type = MessageType.Heartbeat, From = "b", To = "a", Term = 1, Commit = 50 }));
            }

            driver.Tick(_harness.NowUs);
            while (driver.TakeReady(_harness.NowUs) is { } ready)
            {
                foreach (var message in ready.Messages)
                {
                    if (message.Message is ForwardAppend forward)
                    {
                        foreach (var entry in forward.Entries)
                        {
                            if (EntryEnvelope.TryDecode(entry, out var envelope) && LockCommand.TryDecode(envelope.Payload)?.Type == LockCommandType.IncarnationEnded)
                            {
                                sent.Add(envelope.Sequence);
                            }
                        }
                    }
                }

                driver.Advance();
            }
        }

        Assert.That(driver.Core.LeaderId, Is.EqualTo("b"));
        Assert.That(sent.Count, Is.LessThanOrEqualTo(2), $"20 s behind its leader, it forwarded {sent.Count} distinct IncarnationEnded entries");
    }

    private long AcquireOwn(NodeDriver driver, string name)
    {
        long sequence = _harness.Sequences.Next();
        var append = new DriverAppend(sequence, new EntryEnvelope(EntryPayloadKind.Lock, 0, driver.Id, driver.Incarnation, sequence, new LockCommand(LockCommandType.Acquire, name, 1, 600_000, 0).Encode()).Encode());
        driver.AppendLockRequest(append);
        _harness.Pump(driver);
        var granted = driver.Events.LockEvents.Single(e => e.Sequence == sequence).Event;
        driver.Events.Clear();
        return granted.Token;
    }

    private static byte[] Envelope(string origin, ulong incarnation, long sequence, LockCommand command)
        => new EntryEnvelope(EntryPayloadKind.Lock, 0, origin, incarnation, sequence, command.Encode()).Encode();
}
