using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>Multi-lock acquisition through <see cref="GaggleLocks"/> on a three-node cluster (in-memory network).</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class MultiLockNodeTests
{
    private static NodeCluster Cluster() => new(3, options => options.LockLeaseDuration = TimeSpan.FromSeconds(10));

    /// <summary>Waits, with the usual deadline, until a linearizable read of <paramref name="name"/> shows <paramref name="length"/> waiting.</summary>
    private static async Task QueuedAsync(GaggleNode node, string name, int length)
    {
        var deadline = DateTime.UtcNow + Eventually.DefaultDeadline;
        while ((await node.Locks.InspectAsync(name)).QueueLength != length)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"'{name}' never had {length} waiting");
            await Task.Delay(10);
        }
    }

    [Test]
    public async Task ASetIsHeldWholeWithOneTokenPerLockAndReleasedWhole()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.Nodes.Values.First(n => n != leader);

        var set = await follower.Locks.AcquireAllAsync(
            [GaggleLockRequest.Mutex("account:17"), GaggleLockRequest.Semaphore("workers", 3), GaggleLockRequest.Read("catalog"), GaggleLockRequest.Write("prices")],
            TimeSpan.FromSeconds(10));
        Assert.That(set.Holds.Select(h => (h.Name, h.Kind)), Is.EqualTo(new[]
        {
            ("account:17", LockHoldKind.Mutex), ("workers", LockHoldKind.SemaphoreSlot), ("catalog", LockHoldKind.Read), ("prices", LockHoldKind.Write),
        }), "in the order asked for");
        Assert.That(set.Holds.Select(h => h.FencingToken >> 16).Distinct().Count(), Is.EqualTo(1), "every token carries the index of the one entry that granted the set");
        Assert.That(set["workers"].MaxCount, Is.EqualTo(3));
        Assert.Throws<KeyNotFoundException>(() => _ = set["other"]);
        Assert.That(await leader.Locks.TryAcquireAsync("account:17"), Is.Null);
        Assert.That((await leader.Locks.InspectAsync("prices")).Holders.Single().FencingToken, Is.EqualTo(set["prices"].FencingToken));

        await set.DisposeAsync();
        await set.DisposeAsync();
        await Eventually.True(() => set.HandleLostToken.IsCancellationRequested, "the set's lost token to fire once released");
        await using var again = await leader.Locks.TryAcquireAsync("account:17", TimeSpan.FromSeconds(5));
        Assert.That(again, Is.Not.Null, "released with the set");
        Assert.That((await leader.Locks.InspectAsync("prices")).Holders, Is.Empty);
    }

    [Test]
    public async Task ASetWithOneLockTakenIsNotGrantedInPartAndWaitsForIt()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var holder = await leader.Locks.AcquireAsync("b");

        Assert.That(await leader.Locks.TryAcquireAllAsync([GaggleLockRequest.Mutex("a"), GaggleLockRequest.Mutex("b")]), Is.Null, "try once: b is held");
        Assert.That((await leader.Locks.InspectAsync("a")).Holders, Is.Empty, "a was not taken alone");

        var waiting = cluster.Nodes.Values.Last().Locks.AcquireAllAsync([GaggleLockRequest.Mutex("a"), GaggleLockRequest.Mutex("b")], TimeSpan.FromSeconds(20));
        await QueuedAsync(leader, "a", 1);
        await using (var passing = await leader.Locks.TryAcquireAsync("a"))
        {
            Assert.That(passing, Is.Not.Null, "a waiting set holds up nobody: a is free, so it is granted");
        }

        await holder.DisposeAsync();
        await using var set = await waiting;
        Assert.That(set.Holds.Select(h => h.Name), Is.EqualTo(new[] { "a", "b" }));
        Assert.That(set["b"].FencingToken, Is.GreaterThan(holder.FencingToken));
    }

    [Test]
    public async Task ACancelledOrTimedOutSetLeavesEveryQueue()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        await using var holder = await leader.Locks.AcquireAsync("held");
        using var cancel = new CancellationTokenSource();
        var cancelled = leader.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("free"), GaggleLockRequest.Mutex("held")], cancellationToken: cancel.Token);
        await QueuedAsync(leader, "free", 1);
        await cancel.CancelAsync();
        var error = await Assert.CatchAsync<OperationCanceledException>(() => cancelled);
        Assert.That(error!.CancellationToken, Is.EqualTo(cancel.Token));
        await QueuedAsync(leader, "free", 0);
        await QueuedAsync(leader, "held", 0);

        await Assert.ThrowsAsync<TimeoutException>(() => leader.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("free"), GaggleLockRequest.Mutex("held")], TimeSpan.FromMilliseconds(200)));
        await using var free = await leader.Locks.TryAcquireAsync("free");
        Assert.That(free, Is.Not.Null, "nothing of the timed-out set is left in free's queue or holders");
        Assert.That(leader.WatchedLockRequests, Is.Zero);
    }

    [Test]
    public async Task BadSetsAreRefusedNamingTheProblem()
    {
        await using var cluster = new NodeCluster(1);
        await cluster.StartAllAsync();
        var node = await cluster.WaitForLeaderAsync();
        await using var reader = await node.Locks.AcquireReadAsync("rw");

        Assert.That((await Assert.ThrowsAsync<ArgumentException>(() => node.Locks.AcquireAllAsync([])))!.Message, Does.Contain("names 0 locks"));
        Assert.That((await Assert.ThrowsAsync<ArgumentException>(() => node.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("a"), GaggleLockRequest.Read("a")])))!.Message, Does.Contain("'a' twice"));
        Assert.That((await Assert.ThrowsAsync<ArgumentException>(() => node.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("a"), default])))!.Message, Does.Contain("no name"));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => node.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("a"), GaggleLockRequest.Semaphore("s", 0)]));
        await Assert.ThrowsAsync<ArgumentException>(() => node.Locks.AcquireAllAsync(Enumerable.Range(0, 65).Select(i => GaggleLockRequest.Mutex($"l{i}"))));
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => node.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("a"), GaggleLockRequest.Mutex("rw")], TimeSpan.FromSeconds(5)));
        Assert.That(refused!.Message, Does.Contain("'rw' is in use as a reader-writer lock"));
        Assert.That((await node.Locks.InspectAsync("a")).Holders, Is.Empty, "nothing of a refused set is held");

        await using var one = await node.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("solo")]);
        Assert.That(one.Holds.Single().Kind, Is.EqualTo(LockHoldKind.Mutex), "a set of one lock is a plain acquire");
    }

    [Test]
    public async Task BadArgumentsFailTheReturnedTaskNotTheCall()
    {
        await using var cluster = new NodeCluster(1);
        await cluster.StartAllAsync();
        var node = await cluster.WaitForLeaderAsync();
        Task<GaggleLockHandle?> single = null!;
        Task<GaggleMultiLockHandle?> set = null!;
        Assert.DoesNotThrow(() => single = node.Locks.TryAcquireAsync(""));
        Assert.DoesNotThrow(() => set = node.Locks.TryAcquireAllAsync([]));
        await Assert.ThrowsAsync<ArgumentException>(() => single);
        await Assert.ThrowsAsync<ArgumentException>(() => set);
        await Assert.ThrowsAsync<ArgumentNullException>(() => node.Locks.TryAcquireReadAsync(null!));
        Assert.Throws<ArgumentNullException>(() => GaggleLockRequest.Mutex(null!));
    }
}
