using Gaggle.Locks;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>What a node decides about its own multi-lock requests: every grant given back when the caller gives up, and a request settled inside a snapshot granted only whole.</summary>
[TestFixture]
public sealed class MultiLockStateMachineTests
{
    private const string Self = "me";

    private static LockCommand Mutex(string name) => new(LockCommandType.Acquire, name, 1, 1000, 1000);

    private static LockCommand Both(string first, string second)
        => new(LockCommandType.AcquireAll, first, 0, 1000, 1000) { Parts = [new LockPart(LockCommandType.Acquire, first), new LockPart(LockCommandType.Acquire, second)] };

    private static void Apply(LockStateMachine machine, long index, string origin, long sequence, LockCommand command)
        => machine.Apply(index, 1, new EntryEnvelope(EntryPayloadKind.Lock, 0, origin, 1, sequence, command.Encode()));

    [Test]
    public void ACallerThatGivesUpAGrantedSetReleasesEveryLockOfIt()
    {
        var machine = new LockStateMachine(Self, 1, new NodeEvents());
        machine.Watch(7, parts: 2);
        Apply(machine, 1, Self, 7, Both("b", "a"));
        machine.GiveUp(7, "b", nowUs: 0);
        var releases = machine.TakeCommands();
        Assert.That(releases.Select(c => (c.Type, c.Name)), Is.EquivalentTo(new[] { (LockCommandType.Release, "a"), (LockCommandType.Release, "b") }));
        Assert.That(releases.Select(c => c.Token), Is.EquivalentTo(new[] { "a", "b" }.Select(n => machine.Table.Describe(n, 1).Holders.Single().FencingToken)));
    }

    /// <summary>
    /// A node that stops gives up every request it watches in one pass, in sequence order: a granted one's
    /// locks released, a waiting or unapplied one withdrawn by name (a set by its first lock's). A request
    /// given up once is not given up again (the caller's own give-up after the stop adds nothing).
    /// </summary>
    [Test]
    public void ANodeThatStopsGivesUpEveryRequestItWatchesOnce()
    {
        var machine = new LockStateMachine(Self, 1, new NodeEvents());
        Apply(machine, 1, "other", 1, Mutex("busy"));
        machine.Watch(7, parts: 2, name: "b");
        Apply(machine, 2, Self, 7, Both("b", "a"));
        machine.Watch(8, parts: 1, name: "busy");
        Apply(machine, 3, Self, 8, Mutex("busy"));
        machine.Watch(9, parts: 1, name: "later");
        Assert.That(machine.TakeCommands(), Is.Empty);

        machine.GiveUpAll(nowUs: 0);

        var commands = machine.TakeCommands();
        Assert.That(commands.Take(2).Select(c => (c.Type, c.Name)), Is.EquivalentTo(new[] { (LockCommandType.Release, "a"), (LockCommandType.Release, "b") }), "the granted set, first");
        Assert.That(commands.Skip(2).Select(c => (c.Type, c.Name, c.RequestSequence)), Is.EqualTo(new[] { (LockCommandType.CancelWait, "busy", 8L), (LockCommandType.CancelWait, "later", 9L) }));
        machine.GiveUp(8, "busy", nowUs: 0);
        machine.GiveUp(9, "later", nowUs: 0);
        Assert.That(machine.TakeCommands(), Is.Empty, "given up already");
    }

    [Test]
    public void ASetSettledInsideASnapshotIsGrantedOnlyWholeAndWhatIsLeftOfItIsGivenBack()
    {
        // Another node's table granted the set and then expired one of its locks; this node learns it from a snapshot.
        var source = new LockStateMachine("other", 1, new NodeEvents());
        Apply(source, 1, Self, 7, Both("a", "b"));
        Apply(source, 2, Self, 8, Both("c", "d"));
        long aToken = source.Table.Describe("a", 2).Holders.Single().FencingToken;
        Apply(source, 3, "other", 1, new LockCommand(LockCommandType.Release, "a", Token: aToken));
        using var snapshot = new MemoryStream();
        source.WriteSnapshot(snapshot);
        snapshot.Position = 0;

        var events = new NodeEvents();
        var machine = new LockStateMachine(Self, 1, events);
        machine.Watch(7, parts: 2);
        machine.Watch(8, parts: 2);
        machine.ReadSnapshot(snapshot);
        machine.ReconcileAfterSnapshot(_ => true);

        var answered = events.LockEvents.Select(e => (e.Sequence, e.Event.Type, e.Event.Name)).ToList();
        Assert.That(answered, Is.EquivalentTo(new[] { (7L, LockEventType.Denied, ""), (8L, LockEventType.Granted, "c"), (8L, LockEventType.Granted, "d") }),
            "the set that lost a lock is denied, the whole one granted");
        var release = machine.TakeCommands().Single();
        Assert.That((release.Type, release.Name), Is.EqualTo((LockCommandType.Release, "b")), "the lock left of the broken set is given back");
    }

    [Test]
    public void AGrantedSetNobodyWaitsForAnyMoreIsGivenBackLockByLock()
    {
        var machine = new LockStateMachine(Self, 1, new NodeEvents());
        Apply(machine, 1, "other", 1, Mutex("a"));
        machine.Watch(7, parts: 2);
        Apply(machine, 2, Self, 7, Both("a", "b"));
        machine.GiveUp(7, "a", nowUs: 0);
        Assert.That(machine.TakeCommands().Select(c => c.Type), Is.EqualTo(new[] { LockCommandType.CancelWait }), "still waiting: the wait is withdrawn");

        // The withdrawal lost the race: the set was granted before it applied.
        long held = machine.Table.Describe("a", 2).Holders.Single().FencingToken;
        Apply(machine, 3, "other", 2, new LockCommand(LockCommandType.Release, "a", Token: held));
        Assert.That(machine.TakeCommands().Select(c => (c.Type, c.Name)), Is.EquivalentTo(new[] { (LockCommandType.Release, "a"), (LockCommandType.Release, "b") }));
    }
}
