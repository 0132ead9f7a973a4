using Gaggle.Locks;
using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The linearizability check on hand-written histories, each a script of client calls and answers in
/// the order they happened: histories some order explains pass, and each kind of anomaly (an index
/// going back, two holders of a mutex at once, tokens going backwards, a stale read, a read of a
/// released hold) is caught and explained.
/// </summary>
[TestFixture]
public sealed class LinearizabilityCheckerTests
{
    private const long Lease = 500;

    [Test]
    public void AppendsAnsweredInIndexOrderOrConcurrentlyAreLinearizable()
    {
        var script = new Script();
        var first = script.Append("n1");
        script.Acknowledged(first, 3);
        var second = script.Append("n2");
        var third = script.Append("n1");
        // Concurrent: the later call may land first.
        script.Acknowledged(third, 5);
        script.Acknowledged(second, 9);
        script.Append("n3");

        Assert.That(script.Verdict(), Is.Null);
    }

    [Test]
    public void AnAppendCalledAfterAnotherCompletedLandsAfterIt()
    {
        var script = new Script();
        var first = script.Append("n1");
        script.Acknowledged(first, 7);
        var second = script.Append("n2");
        script.Acknowledged(second, 5);

        Assert.That(script.Verdict(), Does.Contain("the log: no order of its 2 operations").And.Contain("its index 5 is not after 7"));
    }

    [Test]
    public void TwoAppendsAcknowledgedAtOneIndexAreCaughtEvenWhenConcurrent()
    {
        var script = new Script();
        var first = script.Append("n1");
        var second = script.Append("n2");
        script.Acknowledged(first, 6);
        script.Acknowledged(second, 6);

        Assert.That(script.Verdict(), Does.Contain("its index 6 is not after 6"));
    }

    [Test]
    public void AppendsCoveredByOneSnapshotShareItsIndexButNothingCalledLaterDoes()
    {
        var script = new Script();
        var first = script.Append("n1");
        var second = script.Append("n1");
        script.Acknowledged(first, 10, covered: true);
        script.Acknowledged(second, 10, covered: true);
        var after = script.Append("n2");
        script.Acknowledged(after, 11);
        Assert.That(script.Verdict(), Is.Null);

        var late = script.Append("n3");
        script.Acknowledged(late, 10);
        Assert.That(script.Verdict(), Does.Contain("its index 10 is not after 11"));
    }

    [Test]
    public void AMutexGrantedWhileAnEarlierGrantsLeaseStillRanIsCaught()
    {
        var script = new Script();
        var first = script.Acquire("n1");
        script.Granted(first, index: 10, since: 1000);
        var second = script.Acquire("n2");
        script.Granted(second, index: 20, since: 1200);

        Assert.That(script.Verdict(), Does.Contain("lock 'm0'").And.Contain("while token 655360 (index 10) of n1 (lease until 1500 ms or later) held it"));
    }

    [Test]
    public void AReaderGrantedWhileAWritersLeaseStillRanIsCaughtButReadersTogetherAreLinearizable()
    {
        var script = new Script();
        var writer = script.Acquire("n1", "rw", 0, LockHoldKind.Write);
        script.Granted(writer, index: 10, since: 1000);
        var reader = script.Acquire("n2", "rw", 0, LockHoldKind.Read);
        script.Granted(reader, index: 20, since: 1200);
        Assert.That(script.Verdict(), Does.Contain("lock 'rw'").And.Contain("granted for reading").And.Contain("while a writer held it"));

        var readers = new Script();
        var one = readers.Acquire("n1", "rw", 0, LockHoldKind.Read);
        readers.Granted(one, index: 10, since: 1000);
        var two = readers.Acquire("n2", "rw", 0, LockHoldKind.Read);
        readers.Granted(two, index: 20, since: 1200);
        Assert.That(readers.Verdict(), Is.Null);
        var late = readers.Acquire("n3", "rw", 0, LockHoldKind.Write);
        readers.Granted(late, index: 30, since: 1300);
        Assert.That(readers.Verdict(), Does.Contain("granted for writing").And.Contain("while it was held"));
    }

    [Test]
    public void AMutexGrantedAfterTheReleaseOrTheLeaseOfTheEarlierGrantIsLinearizable()
    {
        var released = new Script();
        var first = released.Acquire("n1");
        released.Granted(first, index: 10, since: 1000);
        var release = released.Release(first);
        released.Done(release, index: 15);
        var second = released.Acquire("n2");
        released.Granted(second, index: 20, since: 1200);
        Assert.That(released.Verdict(), Is.Null);

        var expired = new Script();
        var held = expired.Acquire("n1");
        expired.Granted(held, index: 10, since: 1000);
        var next = expired.Acquire("n2");
        expired.Granted(next, index: 20, since: 1500);
        Assert.That(expired.Verdict(), Is.Null);
    }

    [Test]
    public void TokensGoingBackwardsAreCaught()
    {
        var script = new Script();
        var first = script.Acquire("n1");
        script.Granted(first, index: 20, since: 1000);
        script.Done(script.Release(first), index: 21);
        var second = script.Acquire("n2");
        script.Granted(second, index: 10, since: 2000);

        Assert.That(script.Verdict(), Does.Contain("#3 acquire m0/1 by n2").And.Contain("it was granted at index 10, before index 21"));
    }

    [Test]
    public void AReadCalledAfterAGrantCompletedMustNotReadAnEarlierState()
    {
        var script = new Script();
        var acquire = script.Acquire("n1");
        script.Granted(acquire, index: 10, since: 1000);
        var read = script.Read("n2");
        script.Shows(read, asOf: 8);

        Assert.That(script.Verdict(), Does.Contain("it read the lock as of index 8, before index 10 of an operation placed before it (a stale read)"));
    }

    [Test]
    public void AReadAfterAReleaseWasAcknowledgedMustNotShowTheHold()
    {
        var script = new Script();
        var acquire = script.Acquire("n1");
        script.Granted(acquire, index: 10, since: 1000);
        script.Done(script.Release(acquire), index: 12);
        var read = script.Read("n2");
        script.Shows(read, asOf: 13, ("n1", 10, 1000));

        Assert.That(script.Verdict(), Does.Contain("it shows token 655360 (index 10) of n1, which no operation placed before it holds"));
    }

    [Test]
    public void AReadConcurrentWithAGrantMayComeBeforeOrAfterIt()
    {
        var before = new Script();
        var read = before.Read("n2");
        var acquire = before.Acquire("n1");
        before.Granted(acquire, index: 10, since: 1000);
        before.Shows(read, asOf: 9);
        Assert.That(before.Verdict(), Is.Null);

        var after = new Script();
        var early = after.Read("n2");
        var granted = after.Acquire("n1");
        after.Granted(granted, index: 10, since: 1000);
        after.Shows(early, asOf: 11, ("n1", 10, 1000));
        Assert.That(after.Verdict(), Is.Null);
    }

    [Test]
    public void AReadThatLeavesOutAHolderPutsTheLeaseClockPastItsLease()
    {
        var script = new Script();
        var first = script.Acquire("n1");
        script.Granted(first, index: 10, since: 1000);
        // Nothing shown: fine if the lease of token 10 had run out (lease time 1500 ms or later) ...
        script.Shows(script.Read("n3"), asOf: 15);
        Assert.That(script.Verdict(), Is.Null);

        // ... but then nothing can be granted at an earlier lease time.
        var second = script.Acquire("n2");
        script.Granted(second, index: 20, since: 1200);
        Assert.That(script.Verdict(), Does.Contain("it was granted at lease time 1200 ms or earlier, but an operation placed before it saw lease time 1500 ms"));
    }

    [Test]
    public void AHoldWhoseReleaseHadNoAnswerMayEndAtAnyTime()
    {
        var script = new Script();
        var first = script.Acquire("n1");
        script.Granted(first, index: 10, since: 1000);
        script.Release(first);
        var second = script.Acquire("n2");
        script.Granted(second, index: 20, since: 1200);

        Assert.That(script.Verdict(), Is.Null);
    }

    [Test]
    public void AGrantNoClientSawButAReadShowedIsPlacedForItsNodesUnansweredAcquire()
    {
        var script = new Script();
        script.Acquire("n1");
        var read = script.Read("n2");
        script.Shows(read, asOf: 12, ("n1", 10, 1000));
        Assert.That(script.Verdict(), Is.Null);

        var stranger = new Script();
        var shown = stranger.Read("n2");
        stranger.Shows(shown, asOf: 12, ("n3", 10, 1000));
        Assert.That(stranger.Verdict(), Does.Contain("it shows token 655360 (index 10) of n3, which no operation placed before it holds"));
    }

    [Test]
    public void ASemaphoreGrantsNoMoreHoldersThanItsSlots()
    {
        var script = new Script();
        var first = script.Acquire("n1", "s", 2);
        script.Granted(first, index: 10, since: 1000);
        var second = script.Acquire("n2", "s", 2);
        script.Granted(second, index: 11, since: 1100);
        Assert.That(script.Verdict(), Is.Null);

        var third = script.Acquire("n3", "s", 2);
        script.Granted(third, index: 12, since: 1200);
        Assert.That(script.Verdict(), Does.Contain("lock 's'").And.Contain("held all 2 slots"));
    }

    [Test]
    public void EachLockIsCheckedOnItsOwn()
    {
        var script = new Script();
        var m0 = script.Acquire("n1");
        var m1 = script.Acquire("n2", "m1");
        script.Granted(m0, index: 10, since: 1000);
        script.Granted(m1, index: 10, since: 1000);
        script.Shows(script.Read("n3", "m1"), asOf: 12, ("n2", 10, 1000));
        Assert.That(script.Verdict(), Is.Null);

        script.Shows(script.Read("n3", "m1"), asOf: 11, ("n2", 10, 1000));
        Assert.That(script.Verdict(), Does.StartWith("linearizability: lock 'm1': no order of its 3 operations"));
    }

    [Test]
    public void ALongLinearizableHistoryTakesAboutOneModelStepPerOperation()
    {
        var script = new Script();
        var pending = new Queue<AppendOperation>();
        for (int i = 1; i <= 5_000; i++)
        {
            pending.Enqueue(script.Append($"n{i % 3}"));
            if (pending.Count == 4)
            {
                // Four calls in flight, answered with their indexes scrambled.
                var calls = pending.ToArray();
                pending.Clear();
                foreach (int k in new[] { 2, 0, 3, 1 })
                {
                    script.Acknowledged(calls[k], i - 4 + k + 1);
                }
            }
        }

        var stats = new LinearizabilityStats();
        Assert.That(script.Verdict(stats), Is.Null);
        Assert.That(stats.SearchSteps, Is.LessThan(2 * 5_000));
    }

    /// <summary>A history written as calls and answers in the order they happen (one cluster, generation 0).</summary>
    private sealed class Script
    {
        private readonly ClientHistory _history = new(() => 0);
        private int _appends;

        public AppendOperation Append(string node)
            => _history.Invoke(new AppendOperation { Client = node, Node = node, Payload = $"p{++_appends}" });

        public void Acknowledged(AppendOperation append, long index, bool covered = false)
        {
            append.Index = index;
            append.Covered = covered;
            _history.Respond(append, 0);
        }

        public AcquireOperation Acquire(string node, string name = "m0", int maxCount = 1, LockHoldKind kind = LockHoldKind.Mutex)
            => _history.Invoke(new AcquireOperation { Client = node, Node = node, Lock = name, MaxCount = maxCount, Kind = kind, LeaseMs = Lease });

        /// <summary>Granted with the token of log index <paramref name="index"/>, at lease time <paramref name="since"/>.</summary>
        public void Granted(AcquireOperation acquire, long index, long since)
        {
            acquire.Outcome = LockEventType.Granted;
            acquire.Token = index << 16;
            acquire.Expiry = since + Lease;
            _history.Respond(acquire, 0);
        }

        public ReleaseOperation Release(AcquireOperation granted)
            => _history.Invoke(new ReleaseOperation { Client = granted.Client, Node = granted.Node, Lock = granted.Lock, Token = granted.Token });

        public void Done(ReleaseOperation release, long index)
        {
            release.Index = index;
            _history.Respond(release, 0);
        }

        public ReadOperation Read(string node, string name = "m0")
            => _history.Invoke(new ReadOperation { Client = node, Node = node, Lock = name });

        /// <summary>The read's answer: the holders (node, index of the token, lease time of the grant) as of <paramref name="asOf"/>.</summary>
        public void Shows(ReadOperation read, long asOf, params (string Node, long Index, long Since)[] holders)
        {
            read.Info = new LockInfo(read.Lock, 1, holders.Select(h => new LockHolderInfo(h.Node, h.Index << 16, h.Since, h.Since + Lease)).ToArray(), 0, asOf);
            _history.Respond(read, 0);
        }

        public string? Verdict(LinearizabilityStats? stats = null) => _history.Check(stats ?? new LinearizabilityStats());
    }
}
