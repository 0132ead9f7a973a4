using System.Text;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// The node driver on its own: one node, driven by ticks and inputs as the node's loop drives it,
/// with time passed in. Readies are "persisted" by dropping them (nothing here reads storage back).
/// </summary>
[TestFixture]
public sealed class NodeDriverTests
{
    private const long TickUs = DriverHarness.TickUs;

    private readonly DriverHarness _harness = new();

    [Test]
    public void ASingleNodeElectsItselfCommitsAnAppendAndCompletesItsCaller()
    {
        var driver = _harness.StartLeader("n1");
        var append = Append(driver, "hello");
        _harness.Pump(driver);

        var (completed, index) = driver.Events.Committed.Single();
        Assert.That(completed, Is.SameAs(append));
        Assert.That(index, Is.EqualTo(driver.Core.CommitIndex), "the entry after the leader's no-op");
        Assert.That(driver.PendingAppends, Is.Zero);
    }

    /// <summary>
    /// A broadcast commit notice reaches every node on the channel, a removed or not-yet-added one
    /// too, whose log may hold a deposed leader's entries at those indexes: over the wire it must still
    /// read as a broadcast (vouching only for what this leader's AppendEntries verified), not as a
    /// notice addressed to this node (which commits what it holds up to the index).
    /// </summary>
    [Test]
    public void A_broadcast_commit_notice_received_off_the_wire_commits_nothing_the_leader_did_not_verify()
    {
        var stale = new[] { 1L, 1, 1 }.Select((term, i) => new LogEntry(i + 1, term, EntryKind.Normal, new EntryEnvelope(EntryPayloadKind.User, 0, "n2", 1, i + 1, Encoding.UTF8.GetBytes("stale")).Encode())).ToList();
        var driver = new NodeDriver(DriverHarness.Settings("n1", ["n1", "n2", "n3"]), new PersistedState(new HardState(1, null, 0), stale), _harness.Sequences);
        var notice = new RaftMessage { Type = MessageType.CommitNotice, From = "n2", To = null, Term = 2, Commit = 3 };
        driver.Receive("n2", Gaggle.Channels.WireCodec.Encode(new Gaggle.Channels.RaftWireMessage(notice), 0));
        Assert.That(driver.Core.Term, Is.EqualTo(2), "the notice was accepted");
        Assert.That(driver.Core.CommitIndex, Is.Zero, "no AppendEntries of the term-2 leader verified these entries");
    }

    [Test]
    public void AnAppendNotCommittedByItsDeadlineTimesOutAtTheNextTick()
    {
        var driver = new NodeDriver(DriverHarness.Settings("n1", ["n1", "n2", "n3"]), new PersistedState(HardState.Empty, []), _harness.Sequences);
        var append = Append(driver, "lonely", deadlineUs: _harness.NowUs + (3 * TickUs));
        _harness.Tick(driver, 2);
        Assert.That(driver.Events.TimedOut, Is.Empty, "no leader, but the deadline has not passed");

        _harness.Tick(driver, 2);

        Assert.That(driver.Events.TimedOut, Is.EqualTo(new[] { append }));
        Assert.That(driver.PendingAppends, Is.Zero, "a timed-out append is not retried");
    }

    /// <summary>
    /// A handle is made after its grant was applied on its node, and the hold can end (a short lease,
    /// a release) before the handle asks to watch it: it must still hear that the hold ended.
    /// </summary>
    [Test]
    public void AHoldThatEndedBeforeItsHandleWatchedItIsReportedAtOnce()
    {
        var driver = _harness.StartLeader("n1");
        long token = Acquire(driver, "x", out long request);
        driver.UnwatchLockRequest(request);
        driver.Append(LockAppend(driver, new LockCommand(LockCommandType.Release, "x", Token: token)));
        _harness.Pump(driver);
        driver.Events.Clear();

        driver.WatchHold("x", token);

        Assert.That(driver.Events.HoldsEnded, Is.EqualTo(new[] { ("x", token) }));
    }

    [Test]
    public void AWatchedHoldThatIsReleasedIsReported()
    {
        var driver = _harness.StartLeader("n1");
        long token = Acquire(driver, "x", out long request);
        driver.UnwatchLockRequest(request);
        driver.WatchHold("x", token);
        Assert.That(driver.Events.HoldsEnded, Is.Empty, "still held");

        driver.Append(LockAppend(driver, new LockCommand(LockCommandType.Release, "x", Token: token)));
        _harness.Pump(driver);

        Assert.That(driver.Events.HoldsEnded, Is.EqualTo(new[] { ("x", token) }));
    }

    [Test]
    public void AGrantThatComesAfterItsCallerGaveUpIsReleased()
    {
        var driver = _harness.StartLeader("n1");
        long first = Acquire(driver, "x", out long request);
        driver.UnwatchLockRequest(request);
        var second = LockAppend(driver, new LockCommand(LockCommandType.Acquire, "x", 1, 60_000, 60_000));
        driver.AppendLockRequest(second);
        _harness.Pump(driver);
        Assert.That(driver.PeekLock("x").QueueLength, Is.EqualTo(1), "the second request waits");

        // The holder releases, and in the same loop pass the second caller gives up: the release is
        // applied first, so the grant reaches a request nobody waits for.
        driver.Append(LockAppend(driver, new LockCommand(LockCommandType.Release, "x", Token: first)));
        driver.GiveUpLockRequest(second.Sequence, "x");
        _harness.Pump(driver);
        _harness.Pump(driver);

        var info = driver.PeekLock("x");
        Assert.That(info.Holders, Is.Empty, "the late grant was given back");
        Assert.That(info.QueueLength, Is.Zero);
        Assert.That(driver.Machines.Locks.WatchedRequests, Is.Zero);
    }

    [Test]
    public void AGrantTheCallerGaveUpOnAfterItArrivedIsReleased()
    {
        var driver = _harness.StartLeader("n1");
        long token = Acquire(driver, "x", out long request);

        driver.GiveUpLockRequest(request, "x");
        _harness.Pump(driver);

        Assert.That(driver.PeekLock("x").Holders, Is.Empty, $"token {token} was released");
        Assert.That(driver.Machines.Locks.WatchedRequests, Is.Zero);
    }

    [Test]
    public void ARequestGivenUpWhoseOutcomeNeverComesIsForgottenAfterTheSettleTime()
    {
        var driver = new NodeDriver(DriverHarness.Settings("n1", ["n1", "n2", "n3"]), new PersistedState(HardState.Empty, []), _harness.Sequences);
        var request = LockAppend(driver, new LockCommand(LockCommandType.Acquire, "x", 1, 60_000, 60_000));
        driver.AppendLockRequest(request);
        driver.GiveUpLockRequest(request.Sequence, "x");
        Assert.That(driver.Machines.Locks.WatchedRequests, Is.EqualTo(1), "a grant may still come, and must then be released");

        _harness.Tick(driver, (int)(DriverHarness.Settings("n1", ["n1"]).LockSettleUs / TickUs) + 2);

        Assert.That(driver.Machines.Locks.WatchedRequests, Is.Zero, "no leader ever took the request: it is not kept for ever");
    }

    private DriverAppend Append(NodeDriver driver, string data, long deadlineUs = long.MaxValue)
    {
        long sequence = _harness.Sequences.Next();
        var append = new DriverAppend(sequence, new EntryEnvelope(EntryPayloadKind.User, 0, "n1", 1, sequence, Encoding.UTF8.GetBytes(data)).Encode()) { DeadlineUs = deadlineUs };
        driver.Append(append);
        return append;
    }

    private DriverAppend LockAppend(NodeDriver driver, LockCommand command)
    {
        long sequence = _harness.Sequences.Next();
        return new(sequence, new EntryEnvelope(EntryPayloadKind.Lock, 0, driver.Id, driver.Incarnation, sequence, command.Encode()).Encode());
    }

    /// <summary>Appends an acquire (request <paramref name="sequence"/>), commits it, and returns the granted token.</summary>
    private long Acquire(NodeDriver driver, string name, out long sequence)
    {
        var append = LockAppend(driver, new LockCommand(LockCommandType.Acquire, name, 1, 60_000, 0));
        sequence = append.Sequence;
        driver.AppendLockRequest(append);
        _harness.Pump(driver);
        long request = sequence;
        var granted = driver.Events.LockEvents.Single(e => e.Sequence == request).Event;
        Assert.That(granted.Type, Is.EqualTo(LockEventType.Granted));
        driver.Events.Clear();
        return granted.Token;
    }
}
