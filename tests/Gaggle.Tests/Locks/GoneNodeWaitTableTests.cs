using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Tests.Simulation;
using NUnit.Framework;
using static Gaggle.Tests.Locks.GoneNodeLogs;

namespace Gaggle.Tests.Locks;

/// <summary>
/// The waits of a gone node end: in elastic mode at the configuration entry that removes it
/// (<see cref="LockCommandType.MembersChanged"/>), with a fixed member list when its member id starts
/// again as a new process (<see cref="LockCommandType.IncarnationEnded"/>); its holds stay until their leases end.
/// </summary>
[TestFixture]
public sealed class GoneNodeWaitTableTests
{
    private static RequestId R(string node, long sequence = 1) => new(node, 1, sequence);

    private static LockCommand Mutex(string name, long waitMs = 60_000, long leaseMs = 10_000) => new(LockCommandType.Acquire, name, 1, leaseMs, waitMs);

    private static LockCommand Members(params string[] members) => new(LockCommandType.MembersChanged, "") { Members = members.ToHashSet() };

    private static long Token(LockTable table, string name, long index) => table.Describe(name, index).Holders.Single().FencingToken;

    [Test]
    public void A_removed_nodes_waits_end_in_lock_name_order_and_the_next_member_in_line_gets_the_lock_at_the_release()
    {
        var table = new LockTable();
        table.Apply(Mutex("z"), R("a"), 1000, 1);
        table.Apply(Mutex("m"), R("a", 2), 1000, 2);
        table.Apply(Mutex("z"), R("gone", 1), 1000, 3);
        table.Apply(Mutex("m"), R("gone", 2), 1000, 4);
        table.Apply(Mutex("z"), R("c"), 1000, 5);
        table.TakeEvents();
        Assert.That(table.WaitsOutside(new HashSet<string> { "a", "c" }), Is.True);

        table.Apply(Members("a", "c"), default, 0, 6);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Name, e.Request)), Is.EqualTo(new[]
        {
            (LockEventType.Rejected, "m", R("gone", 2)), (LockEventType.Rejected, "z", R("gone", 1)),
        }), "one rejection per wait, by lock name, and nothing granted: the holder stays");
        Assert.That(events[0].Reason, Does.Contain("'gone' was removed from the cluster").And.Contain("'m'"));
        Assert.That(table.Describe("z", 6).QueueLength, Is.EqualTo(1));
        Assert.That(table.Describe("m", 6).QueueLength, Is.Zero);
        Assert.That(table.WaitsOutside(new HashSet<string> { "a", "c" }), Is.False);

        table.Apply(new LockCommand(LockCommandType.Release, "z", Token: Token(table, "z", 6)), R("a", 3), 1001, 7);
        Assert.That(table.TakeEvents().Where(e => e.Type == LockEventType.Granted).Select(e => e.Request), Is.EqualTo(new[] { R("c") }),
            "the member behind the removed node's wait gets the lock at once, not after a lease nobody renews");
    }

    [Test]
    public void A_removed_nodes_holds_stay_until_their_lease_ends()
    {
        var table = new LockTable();
        table.Apply(Mutex("x", leaseMs: 100), R("gone"), 1000, 1);
        table.Apply(Mutex("x"), R("a"), 1000, 2);
        table.TakeEvents();
        Assert.That(table.WaitsOutside(new HashSet<string> { "a" }), Is.False, "only its hold is left: nothing to end");

        table.Apply(Members("a"), default, 0, 3);
        Assert.That(table.TakeEvents(), Is.Empty);
        Assert.That(table.Describe("x", 3).Holders.Single().NodeId, Is.EqualTo("gone"), "a removed node may still run (paused, cut off): its hold is kept");

        table.Apply(new LockCommand(LockCommandType.Time, ""), R("a", 2), 1100, 4);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Expired, "gone"), (LockEventType.Granted, "a") }));
    }

    [Test]
    public void A_removed_writer_at_the_front_lets_the_readers_behind_it_in_at_the_configuration_entry()
    {
        var table = new LockTable();
        table.Apply(new LockCommand(LockCommandType.AcquireRead, "rw", 0, 10_000, 60_000), R("a"), 1000, 1);
        table.Apply(new LockCommand(LockCommandType.AcquireWrite, "rw", 0, 10_000, 60_000), R("gone"), 1000, 2);
        table.Apply(new LockCommand(LockCommandType.AcquireRead, "rw", 0, 10_000, 60_000), R("c"), 1000, 3);
        table.TakeEvents();

        table.Apply(Members("a", "c"), default, 0, 9);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Rejected, "gone"), (LockEventType.Granted, "c") }));
        Assert.That(LockTokens.IndexOf(events[1].Token), Is.EqualTo(9L), "granted by the configuration entry, with a token of its index");
        Assert.That(events[1].Expiry, Is.EqualTo(11_000L), "the lease runs from the table's time");
    }

    [Test]
    public void A_removed_nodes_multi_lock_request_leaves_every_queue_and_is_rejected_once_in_its_first_locks_name()
    {
        var table = new LockTable();
        table.Apply(Mutex("p"), R("a"), 1000, 1);
        table.Apply(Mutex("q"), R("a", 2), 1000, 2);
        var both = new LockCommand(LockCommandType.AcquireAll, "q", 0, 10_000, 60_000) { Parts = [new LockPart(LockCommandType.Acquire, "q"), new LockPart(LockCommandType.Acquire, "p")] };
        table.Apply(both, R("gone"), 1000, 3);
        table.TakeEvents();

        table.Apply(Members("a"), default, 0, 4);
        Assert.That(table.TakeEvents().Select(e => (e.Type, e.Name, e.Request)), Is.EqualTo(new[] { (LockEventType.Rejected, "p", R("gone")) }));
        Assert.That((table.Describe("p", 4).QueueLength, table.Describe("q", 4).QueueLength), Is.EqualTo((0, 0)));
    }

    [Test]
    public void A_table_restored_from_a_snapshot_ends_the_same_waits_with_the_same_events()
    {
        var table = new LockTable();
        string[] names = ["k", "b", "x", "d", "a"];
        long index = 0;
        foreach (var name in names)
        {
            table.Apply(Mutex(name), R("a", ++index), 1000, index);
            table.Apply(Mutex(name), R(index % 2 == 0 ? "gone" : "other", ++index), 1000, index);
            table.Apply(Mutex(name), R("c", ++index), 1000, index);
        }

        table.TakeEvents();
        var restored = LockTableSnapshots.Restore(table);
        table.Apply(Members("a", "c"), default, 0, ++index);
        restored.Apply(Members("a", "c"), default, 0, index);
        var events = table.TakeEvents();
        Assert.That(events, Has.Count.EqualTo(names.Length));
        Assert.That(restored.TakeEvents(), Is.EqualTo(events));
        Assert.That(LockTableSnapshots.Bytes(restored), Is.EqualTo(LockTableSnapshots.Bytes(table)));
    }

    [Test]
    public void A_node_hears_that_its_own_wait_ended_with_the_reason_and_a_configuration_with_nothing_to_end_changes_nothing()
    {
        var events = new NodeEvents();
        var machine = new LockStateMachine("me", 7, events);
        machine.Apply(1, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "a", 1, 1, Mutex("x").Encode()));
        machine.Watch(5);
        machine.Apply(2, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "me", 7, 5, Mutex("x").Encode()));

        Assert.That(machine.ApplyMembers(3, new HashSet<string> { "a", "me" }), Is.False);
        Assert.That(machine.LastCommand!.Type, Is.EqualTo(LockCommandType.Acquire), "nothing applied");
        Assert.That(machine.ApplyMembers(4, new HashSet<string> { "a" }), Is.True);
        Assert.That(machine.LastCommand!.Type, Is.EqualTo(LockCommandType.MembersChanged));
        var told = events.LockEvents.Single();
        Assert.That((told.Sequence, told.Event.Type), Is.EqualTo((5L, LockEventType.Rejected)));
        Assert.That(told.Event.Reason, Does.Contain("'me' was removed"));
    }

    [Test]
    public void Every_configuration_entry_of_an_elastic_cluster_ends_the_waits_of_nodes_it_does_not_list()
    {
        var machines = Elastic("a", 1);
        var observed = new List<(long Index, EntryEnvelope Envelope)>();
        machines.Observer = (index, envelope, _) => observed.Add((index, envelope));
        machines.TryApply(Config(1, ["a"], [], new() { ["a"] = 1 }), out _);
        machines.TryApply(Config(3, ["a"], ["b", "c"], new() { ["a"] = 1, ["b"] = 2, ["c"] = 3 }), out _);
        machines.TryApply(Lock(4, "a", 1, 4, 1000, Mutex("x")), out _);
        machines.TryApply(Lock(5, "b", 1, 5, 1000, Mutex("x")), out _);
        machines.TryApply(Lock(6, "c", 1, 6, 1000, Mutex("x")), out _);
        Assert.That(observed.Select(o => o.Index), Is.EqualTo(new[] { 4L, 5L, 6L }), "configurations with nothing to end are not lock entries");
        observed.Clear();

        machines.TryApply(Config(8, ["a"], ["c"], new() { ["a"] = 1, ["c"] = 3 }), out _);
        Assert.That(observed.Select(o => (o.Index, o.Envelope.Kind)), Is.EqualTo(new[] { (8L, EntryPayloadKind.Lock) }), "the observer (the simulation's checker) sees it as a lock entry");
        Assert.That(machines.Locks.LastEvents.Select(e => (e.Type, e.Request.Node)), Is.EqualTo(new[] { (LockEventType.Rejected, "b") }));
        Assert.That(machines.Locks.Table.Describe("x", 8).QueueLength, Is.EqualTo(1));
        Assert.That(machines.LastAppliedMembers, Is.EquivalentTo(new[] { "a", "c" }));
    }

    [Test]
    public void A_forced_generation_ends_the_lost_nodes_waits_and_grants_nothing_before_its_hold_off_ends()
    {
        var machines = Elastic("a", 1);
        ApplyLostWriterAhead(machines);
        Assert.That(machines.Locks.Table.Describe("rw", 6).QueueLength, Is.EqualTo(2), "a's second read waits behind x's write");

        // The majority is lost; the operator forces a new generation on a: {a} at 7, the generation start (hold-off 5 s) at 8.
        machines.TryApply(Config(7, ["a"], [], new() { ["a"] = 7 }), out _);
        Assert.That(machines.Locks.LastEvents.Select(e => (e.Type, e.Request)), Is.EqualTo(new[] { (LockEventType.Rejected, new RequestId("x", 1, 1)) }),
            "the lost node's wait ends; a's read, which now fits, is not granted at this index (the lost majority may have used it)");
        machines.TryApply(Lock(8, "a", 1, 4, 3000, new LockCommand(LockCommandType.Generation, "", Token: 2, LeaseMs: 5000)), out _);
        Assert.That(machines.Locks.LastEvents.Where(e => e.Type == LockEventType.Granted), Is.Empty, "held off");
        machines.TryApply(Lock(9, "a", 1, 5, 8000, new LockCommand(LockCommandType.Time, "")), out _);
        var granted = machines.Locks.LastEvents.Single(e => e.Type == LockEventType.Granted);
        Assert.That((granted.Request, LockTokens.IndexOf(granted.Token)), Is.EqualTo((new RequestId("a", 1, 3), 9L)), "granted once the hold-off ended, with a token of the new generation");
        Assert.That(granted.Token >> 48, Is.EqualTo(2L));
    }

    [Test]
    public void A_node_added_again_as_the_same_incarnation_that_catches_up_from_a_snapshot_hears_that_its_wait_ended()
    {
        var leader = Elastic("b", 1);
        var nodeEvents = new NodeEvents();
        var node = Elastic("a", 7, nodeEvents);
        LogEntry[] common = [Config(1, ["b"], [], new() { ["b"] = 1 }), Config(2, ["b"], ["a"], new() { ["b"] = 1, ["a"] = 2 }), Lock(3, "b", 1, 1, 1000, Mutex("job"))];
        foreach (var entry in common)
        {
            leader.TryApply(entry, out _);
            node.TryApply(entry, out _);
        }

        node.Locks.Watch(5);
        var wait = Lock(4, "a", 7, 5, 1000, Mutex("job"));
        leader.TryApply(wait, out _);
        node.TryApply(wait, out _);

        // a is paused past the member timeout: removed at 5 (its wait ends, its duplicate sessions are forgotten), added again as the same incarnation at 6.
        leader.TryApply(Config(5, ["b"], [], new() { ["b"] = 1 }), out _);
        leader.TryApply(Config(6, ["b"], ["a"], new() { ["b"] = 1, ["a"] = 6 }), out _);
        node.ReadSnapshot(leader.WriteSnapshot());
        node.Locks.ReconcileAfterSnapshot(sequence => node.Deduplicator.Contains("a", 7, sequence));

        Assert.That(nodeEvents.LockEvents.Select(e => (e.Sequence, e.Event.Type)), Is.EqualTo(new[] { (5L, LockEventType.Denied) }),
            "its caller is answered: the request, applied here before, is neither held nor queued");
        Assert.That(node.Locks.WatchedRequests, Is.EqualTo(1), "until the caller takes the outcome");
    }

    [Test]
    public void A_process_ends_the_waits_of_the_earlier_process_it_names_only()
    {
        var table = new LockTable();
        var old = new RequestId("b", 1, 1);
        var older = new RequestId("b", 5, 1);
        var fresh = new RequestId("b", 9, 1);
        table.Apply(Mutex("x", leaseMs: 100), old, 1000, 1);
        table.Apply(Mutex("x"), older, 1000, 2);
        table.Apply(Mutex("x"), R("c"), 1000, 3);
        table.Apply(Mutex("y"), old with { Sequence = 2 }, 1000, 4);
        table.Apply(Mutex("y"), fresh with { Sequence = 2 }, 1000, 5);
        table.TakeEvents();

        table.Apply(new LockCommand(LockCommandType.IncarnationEnded, "", Token: 9), fresh with { Sequence = 3 }, 1001, 6);
        table.Apply(new LockCommand(LockCommandType.IncarnationEnded, "", Token: 7), fresh with { Sequence = 5 }, 1001, 7);
        Assert.That(table.TakeEvents(), Is.Empty, "naming its own incarnation, or one with no wait, ends nothing");
        table.Apply(new LockCommand(LockCommandType.IncarnationEnded, "", Token: 5), fresh with { Sequence = 4 }, 1001, 8);
        var events = table.TakeEvents();
        Assert.That(events.Select(e => (e.Type, e.Name, e.Request)), Is.EqualTo(new[] { (LockEventType.Rejected, "x", older) }),
            "the other process's wait ends; its hold, another node's wait and the new process's own wait stay");
        Assert.That(events[0].Reason, Does.Contain("'b' started again as a new process").And.Contain("'x'"));
        Assert.That(table.Describe("x", 8).Holders.Single().NodeId, Is.EqualTo("b"));
        Assert.That((table.Describe("x", 8).QueueLength, table.Describe("y", 8).QueueLength), Is.EqualTo((1, 1)));

        var announce = new LockCommand(LockCommandType.IncarnationEnded, "", Token: long.MaxValue);
        Assert.That(LockCommand.TryDecode(announce.Encode()), Is.EqualTo(announce), "a node appends it: it goes on the wire and into the log");
    }

    [Test]
    public void A_node_looks_for_its_earlier_processes_waits_after_applying_one_of_their_acquires_or_reading_a_snapshot()
    {
        var machine = new LockStateMachine("b", 9, new NodeEvents());
        machine.Apply(1, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "a", 1, 1, Mutex("x").Encode()));
        machine.Apply(2, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "b", 9, 1, Mutex("x").Encode()));
        Assert.That(machine.EarlierIncarnationMayWait, Is.False, "another node's and its own requests are none of an earlier process");
        machine.Apply(3, 1, new EntryEnvelope(EntryPayloadKind.Lock, 1000, "b", 4, 1, Mutex("x").Encode()));
        Assert.That(machine.EarlierIncarnationMayWait, Is.True);
        Assert.That(machine.Table.OtherIncarnationsWaiting("b", 9), Is.EqualTo(new ulong[] { 4 }));
        Assert.That(machine.Table.OtherIncarnationsWaiting("c", 1), Is.Empty, "nothing of c waits");
        Assert.That(machine.Table.OtherIncarnationsWaiting("a", 1), Is.Empty, "a holds, it does not wait");

        using var snapshot = new MemoryStream();
        machine.WriteSnapshot(snapshot);
        snapshot.Position = 0;
        var restored = new LockStateMachine("b", 11, new NodeEvents());
        restored.ReadSnapshot(snapshot);
        Assert.That(restored.EarlierIncarnationMayWait, Is.True, "a snapshot may hold such waits");
    }

    [Test]
    public void A_members_change_is_never_encoded_nor_read_from_an_entry()
    {
        Assert.That(() => Members("a").Encode(), Throws.InvalidOperationException);
        byte[] forged = new LockCommand(LockCommandType.Time, "").Encode();
        forged[1] = (byte)LockCommandType.MembersChanged;
        Assert.That(LockCommand.TryDecode(forged), Is.Null, "a replica makes it from a configuration entry; an entry or a message claiming one is malformed");
    }
}
