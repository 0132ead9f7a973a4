using System.Collections.Concurrent;
using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class LockNodeTests
{
    private static NodeCluster Cluster(TimeSpan? lease = null)
        => new(3, options => options.LockLeaseDuration = lease ?? TimeSpan.FromSeconds(10));

    [Test]
    public async Task ContendedLockIsHeldByOneNodeAtATimeWithIncreasingFencingTokens()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        await cluster.WaitForLeaderAsync();
        int inside = 0;
        int maxInside = 0;
        var tokens = new ConcurrentQueue<long>();
        var workers = cluster.Nodes.Values.SelectMany(node => Enumerable.Range(0, 3).Select(async _ =>
        {
            for (int i = 0; i < 10; i++)
            {
                await using var handle = await node.Locks.AcquireAsync("orders", TimeSpan.FromSeconds(30));
                int now = Interlocked.Increment(ref inside);
                InterlockedMax(ref maxInside, now);
                tokens.Enqueue(handle.FencingToken);
                await Task.Yield();
                Interlocked.Decrement(ref inside);
            }
        })).ToList();
        await Task.WhenAll(workers);
        Assert.That(maxInside, Is.EqualTo(1), "mutual exclusion");
        Assert.That(tokens, Has.Count.EqualTo(90));
        Assert.That(tokens, Is.Ordered.And.Unique, "tokens strictly increase in grant order");
    }

    [Test]
    public async Task TryAcquireReturnsNullWhenHeldAndTheHandleReleasesOnDispose()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        var handle = await follower.Locks.AcquireAsync("job", TimeSpan.FromSeconds(10));
        Assert.That(await leader.Locks.TryAcquireAsync("job"), Is.Null, "zero timeout tries once");
        Assert.That(await leader.Locks.TryAcquireAsync("job", TimeSpan.FromMilliseconds(200)), Is.Null);
        var error = await Assert.ThrowsAsync<TimeoutException>(() => leader.Locks.AcquireAsync("job", TimeSpan.FromMilliseconds(100)));
        Assert.That(error!.Message, Does.Contain("'job'").And.Contain("100 ms"));
        var info = await leader.Locks.InspectAsync("job");
        Assert.That(info.Holders.Select(h => (h.NodeId, h.FencingToken)), Is.EqualTo(new[] { (follower.Id, handle.FencingToken) }));
        await handle.DisposeAsync();
        await handle.DisposeAsync();
        Assert.That(handle.HandleLostToken.IsCancellationRequested || await Wait(handle.HandleLostToken), Is.True, "a released hold is no longer trusted");
        await using var second = await leader.Locks.AcquireAsync("job", TimeSpan.FromSeconds(10));
        Assert.That(second.FencingToken, Is.GreaterThan(handle.FencingToken));
    }

    [Test]
    public async Task SemaphoreAdmitsUpToMaxCount()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var holds = new List<GaggleLockHandle>();
        foreach (var node in cluster.Nodes.Values.Take(2))
        {
            holds.Add(await node.Locks.AcquireSemaphoreAsync("pool", 2, TimeSpan.FromSeconds(10)));
        }

        Assert.That(await leader.Locks.TryAcquireSemaphoreAsync("pool", 2, TimeSpan.FromMilliseconds(100)), Is.Null);
        var waiting = leader.Locks.AcquireSemaphoreAsync("pool", 2, TimeSpan.FromSeconds(10));
        await holds[0].DisposeAsync();
        await using var third = await waiting;
        Assert.That((await leader.Locks.InspectAsync("pool")).Holders, Has.Count.EqualTo(2));
        var mismatch = await Assert.ThrowsAsync<InvalidOperationException>(() => leader.Locks.TryAcquireSemaphoreAsync("pool", 5));
        Assert.That(mismatch!.Message, Does.Contain("maximum of 2 holders"));
        await holds[1].DisposeAsync();
    }

    [Test]
    public async Task AHoldOfADeadNodeExpiresAndTheWaiterGetsTheLock()
    {
        await using var cluster = Cluster(lease: TimeSpan.FromMilliseconds(600));
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var victim = cluster.AnyFollower(leader);
        var handle = await victim.Locks.AcquireAsync("singleton", TimeSpan.FromSeconds(10));
        var waiter = leader.Locks.AcquireAsync("singleton", TimeSpan.FromSeconds(20));
        cluster.Network.Isolate(victim.Id);
        Assert.That(await Wait(handle.HandleLostToken, TimeSpan.FromSeconds(10)), Is.True, "the cut-off holder learns it lost the lock");
        await using var next = await waiter;
        Assert.That(next.FencingToken, Is.GreaterThan(handle.FencingToken));
    }

    [Test]
    public async Task LeasesAreRenewedWhileTheHandleLives()
    {
        await using var cluster = Cluster(lease: TimeSpan.FromMilliseconds(300));
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        await using var handle = await cluster.AnyFollower(leader).Locks.AcquireAsync("long", TimeSpan.FromSeconds(10));
        // Several lease lengths pass; the hold survives because it is renewed.
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(1.5);
        while (DateTime.UtcNow < until)
        {
            Assert.That(await leader.Locks.TryAcquireAsync("long"), Is.Null);
        }

        Assert.That(handle.HandleLostToken.IsCancellationRequested, Is.False);
    }

    private static async Task<bool> Wait(CancellationToken token, TimeSpan? limit = null)
    {
        try
        {
            await Task.Delay(limit ?? TimeSpan.FromSeconds(5), token);
            return false;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
