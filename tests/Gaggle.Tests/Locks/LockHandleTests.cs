using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>What a handle learns and when: the end of its own hold only, and a safe window that a long wait does not use up.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class LockHandleTests
{
    [Test]
    public async Task HoldsOfTwoLocksWithTheSameFencingTokenEndIndependently()
    {
        await using var cluster = new ManualTimeCluster(["a"], options => options.LockLeaseDuration = TimeSpan.FromSeconds(10));
        var node = await cluster.StartAsync("a");
        await cluster.AdvanceUntilAsync(() => node.IsLeader, "the single node to lead");
        using var stop = new CancellationTokenSource();
        // A process that went away held both locks, granted at one instant: both leases end in one entry,
        // which grants both locks to the waiters here, each lock's first grant of that entry.
        ManualTimeCluster.AppendForeign(node, "gone", 1, new LockCommand(LockCommandType.Acquire, "p", 1, LeaseMs: 100), stop.Token);
        ManualTimeCluster.AppendForeign(node, "gone", 2, new LockCommand(LockCommandType.Acquire, "q", 1, LeaseMs: 100), stop.Token);
        var waitP = node.Locks.AcquireAsync("p");
        var waitQ = node.Locks.AcquireAsync("q");
        await cluster.AdvanceUntilAsync(() => waitP.IsCompleted && waitQ.IsCompleted, "both waiters to be granted");
        await using var p = await waitP;
        await using var q = await waitQ;
        Assume.That(q.FencingToken, Is.EqualTo(p.FencingToken), "tokens are per lock: granted in one entry, both are that entry's first");

        // The table ends the hold of p alone (a release by token, as from a process that gave up on it).
        await node.Locks.ReleaseAbandonedAsync("p", p.FencingToken);
        await Eventually.True(() => p.HandleLostToken.IsCancellationRequested, "p's handle to learn its hold ended");
        Assert.That(q.HandleLostToken.IsCancellationRequested, Is.False, "q is still held");
        await node.Locks.ReleaseAbandonedAsync("q", q.FencingToken);
        await Eventually.True(() => q.HandleLostToken.IsCancellationRequested, "q's handle to learn its hold ended");
        await stop.CancelAsync();
    }

    [Test]
    [NonParallelizable] // renewals run on the thread pool while the manual clock moves: a pool busy with other tests could starve them past their lease
    public async Task AGrantAfterAWaitLongerThanTheLeaseIsConfirmedAndRenewed()
    {
        await using var cluster = new ManualTimeCluster(["a"], options => options.LockLeaseDuration = TimeSpan.FromSeconds(1));
        var node = await cluster.StartAsync("a");
        await cluster.AdvanceUntilAsync(() => node.IsLeader, "the single node to lead");
        var first = await node.Locks.AcquireAsync("x");
        var waiting = node.Locks.AcquireAsync("x");
        Assert.That((await node.Locks.InspectAsync("x")).QueueLength, Is.EqualTo(1));

        // The first holder works for three leases, renewing; the second waits all that time.
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(3));
        Assert.That(first.HandleLostToken.IsCancellationRequested, Is.False);
        await first.DisposeAsync();
        await Eventually.True(() => waiting.IsCompleted, "the waiter to be granted");
        await using var second = await waiting;

        await cluster.AdvanceAsync(TimeSpan.FromSeconds(2));
        Assert.That(second.HandleLostToken.IsCancellationRequested, Is.False, "the hold, two leases later, is still trusted");
        var info = await node.Locks.InspectAsync("x");
        Assert.That(info.Holders.Select(h => h.FencingToken), Is.EqualTo(new[] { second.FencingToken }), "and renewed in the table");
    }

    [Test]
    public async Task AnAcquireMayWaitUpTo365Days()
    {
        await using var cluster = new ManualTimeCluster(["a"], options => options.LockLeaseDuration = TimeSpan.FromSeconds(10));
        var node = await cluster.StartAsync("a");
        await cluster.AdvanceUntilAsync(() => node.IsLeader, "the single node to lead");
        var longest = TimeSpan.FromDays(365);

        // Beyond the longest timer .NET supports (about 49.7 days), yet within the documented range.
        var first = node.Locks.AcquireAsync("x", TimeSpan.FromDays(100));
        await cluster.AdvanceUntilAsync(() => first.IsCompleted, "the free lock to be granted");
        await using var held = await first;
        var waiting = node.Locks.AcquireAsync("x", longest);
        var trying = node.Locks.TryAcquireSemaphoreAsync("s", 2, longest);
        await cluster.AdvanceUntilAsync(() => trying.IsCompleted, "the free semaphore slot to be granted");
        await using var slot = await trying;
        Assert.That(slot, Is.Not.Null);
        Assert.That(waiting.IsCompleted, Is.False, "queued behind the holder");

        await held.DisposeAsync();
        await cluster.AdvanceUntilAsync(() => waiting.IsCompleted, "the waiter to be granted once the holder released");
        await using var second = await waiting;
        Assert.That(second.FencingToken, Is.GreaterThan(held.FencingToken));
    }

    [Test]
    public async Task ALockRequestWithALeaseOutOfRangeIsRefusedAndTheNodeKeepsRunning()
    {
        // A member on a buggy or hostile build asks for a lease no node of this build would (at most an
        // hour): the table refuses it, as an out-of-range slot count, instead of applying an expiry that
        // wraps around and that no snapshot can then hold.
        const int snapshotEvery = 20;
        await using var cluster = new ManualTimeCluster(["a"], options =>
        {
            options.LockLeaseDuration = TimeSpan.FromSeconds(10);
            options.SnapshotThresholdEntries = snapshotEvery;
        });
        var node = await cluster.StartAsync("a");
        await cluster.AdvanceUntilAsync(() => node.IsLeader && node.CommitIndex > 0, "the single node to lead");
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(1));
        var first = node.Locks.AcquireAsync("x", TimeSpan.FromSeconds(5));
        await cluster.AdvanceUntilAsync(() => first.IsCompleted, "the lock to be granted");
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(1));
        await (await first).DisposeAsync();
        while (node.CommitIndex < snapshotEvery - 1)
        {
            var filler = node.AppendAsync(new byte[] { 1 });
            await cluster.AdvanceUntilAsync(() => filler.IsCompleted, "a filler entry to commit");
        }

        using var stop = new CancellationTokenSource();
        ManualTimeCluster.AppendForeign(node, "buggy", 1, new LockCommand(LockCommandType.Acquire, "x", 1, LeaseMs: long.MaxValue, WaitMs: 1000), stop.Token);
        await cluster.AdvanceUntilAsync(() => node.CommitIndex >= snapshotEvery || node.FatalError is not null, "the request to commit (the entry the snapshot is taken after)");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100));
        Assert.That(node.FatalError, Is.Null, "the node stopped: " + node.FatalError?.InnerException?.Message);
        var acquiring = node.Locks.AcquireAsync("x", TimeSpan.FromSeconds(5));
        await cluster.AdvanceUntilAsync(() => acquiring.IsCompleted, "the lock to be granted here");
        await using var held = await acquiring;
        await stop.CancelAsync();
    }

    [Test]
    public async Task FinishedRequestsLeaveNoWatcherBehind()
    {
        await using var cluster = new NodeCluster(1, options => options.LockLeaseDuration = TimeSpan.FromSeconds(10));
        await cluster.StartAllAsync();
        var node = await cluster.WaitForLeaderAsync();
        var held = await node.Locks.AcquireAsync("x", TimeSpan.FromSeconds(10));
        Assert.That(await node.Locks.TryAcquireAsync("x"), Is.Null, "denied");
        Assert.That(await node.Locks.TryAcquireAsync("x", TimeSpan.FromMilliseconds(50)), Is.Null, "timed out");
        await Assert.ThrowsAsync<InvalidOperationException>(() => node.Locks.TryAcquireSemaphoreAsync("x", 3));
        await held.DisposeAsync();
        Assert.That(node.WatchedLockRequests, Is.Zero, "granted, denied, timed-out and rejected requests all stopped watching");
    }

    [Test]
    public async Task ANodeCutOffFromTheMajorityGivesUpAReleaseOrATryOnceAfterAFewElectionTimeoutsNotALease()
    {
        await using var cluster = new ManualTimeCluster(["a", "b", "c"], options => options.LockLeaseDuration = TimeSpan.FromSeconds(60));
        foreach (var id in new[] { "a", "b", "c" })
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Any(n => n.IsLeader), "a leader");
        var node = cluster.Nodes.Values.First(n => !n.IsLeader);
        var acquiring = node.Locks.AcquireAsync("held");
        await cluster.AdvanceUntilAsync(() => acquiring.IsCompleted, "the lock to be granted");
        var hold = await acquiring;

        cluster.Network.Isolate(node.Id);
        var release = hold.DisposeAsync().AsTask();
        var tryOnce = node.Locks.TryAcquireAsync("other", TimeSpan.Zero);
        var maxElectionTimeout = new GaggleOptions().ElectionTimeoutMax;
        await cluster.AdvanceAsync(4 * maxElectionTimeout + TimeSpan.FromMilliseconds(200));

        // The clock stands still from here: whatever completes now gave up by this time. The give-ups
        // fire on the clock's timers and finish on the thread pool, which a busy machine may run late.
        await Eventually.True(() => release.IsCompleted, "the release stops waiting for a commit after 4 election timeouts; the 60 s lease ends the hold otherwise");
        await Eventually.True(() => tryOnce.IsCompleted, "a try-once stops waiting for its answer after 4 election timeouts");
        Assert.That(await tryOnce, Is.Null);
        Assert.That(hold.HandleLostToken.IsCancellationRequested, Is.True);
    }
}
