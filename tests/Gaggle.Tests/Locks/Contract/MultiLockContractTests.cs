using System.Collections.Concurrent;
using Gaggle.Locks;
using NUnit.Framework;

namespace Gaggle.Tests.Locks.Contract;

/// <summary>
/// What multi-lock acquisition (<see cref="GaggleLocks.AcquireAllAsync"/>) must do on every channel:
/// run against the in-memory network (Gaggle.Tests) and Redis (Gaggle.Redis.Tests; the file is linked).
/// DistributedLock.Core has no multi-lock interface, so the adapters have nothing to run it through.
/// </summary>
public abstract class MultiLockContractTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan LongWait = TimeSpan.FromSeconds(30);

    /// <summary>Starts three nodes (a, b, c) whose locks last <paramref name="lease"/> without renewal.</summary>
    protected abstract Task<LockContractCluster> StartClusterAsync(TimeSpan lease);

    [Test]
    public async Task SetsTakenInOppositeOrdersBesideSingleLocksNeverDeadlockOrOverlap()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        string[] names = ["p", "q", "r"];
        var inside = new ConcurrentDictionary<string, int>();
        var overlaps = new ConcurrentQueue<string>();
        int sections = 0;
        var workers = cluster.Nodes.SelectMany((node, n) => Enumerable.Range(0, 2).Select(async worker =>
        {
            for (int i = 0; i < 4; i++)
            {
                // Every worker alternates the order it names p and q in; some take r alone.
                string[] picked = (n + worker + i) % 3 == 0 ? ["r"] : (worker + i) % 2 == 0 ? ["p", "q", "r"] : ["q", "p"];
                await using var set = await node.Locks.AcquireAllAsync(picked.Select(GaggleLockRequest.Mutex), LongWait);
                Assert.That(set.Holds.Select(h => h.FencingToken >> 16).Distinct().Count(), Is.EqualTo(1), "all tokens of a set come from one log entry");
                foreach (var name in picked)
                {
                    if (inside.AddOrUpdate(name, 1, (_, c) => c + 1) != 1)
                    {
                        overlaps.Enqueue(name);
                    }
                }

                await Task.Yield();
                foreach (var name in picked)
                {
                    inside.AddOrUpdate(name, 0, (_, c) => c - 1);
                }

                Interlocked.Increment(ref sections);
            }
        })).ToList();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(90));
        Assert.That(sections, Is.EqualTo(24), "every set was granted: no deadlock");
        Assert.That(overlaps, Is.Empty, "mutual exclusion for every lock of every set");
    }

    [Test]
    public async Task ASetIsGrantedWholeOrNotAtAllAndHoldsUpNobodyWhileItWaits()
    {
        await using var cluster = await StartClusterAsync(Lease);
        var leader = await cluster.WaitForLeaderAsync();
        var (a, b, c) = (cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]);
        var holder = await a.Locks.AcquireAsync("lacking", LongWait);
        Assert.That(await b.Locks.TryAcquireAllAsync([GaggleLockRequest.Mutex("free"), GaggleLockRequest.Mutex("lacking")]), Is.Null);
        Assert.That((await leader.Locks.InspectAsync("free", LongWait)).Holders, Is.Empty, "the free lock was not taken alone");

        var set = b.Locks.AcquireAllAsync([GaggleLockRequest.Semaphore("free", 2), GaggleLockRequest.Mutex("lacking")], LongWait);
        await LockContractTests.UntilAsync(async () => (await leader.Locks.InspectAsync("free", LongWait)).QueueLength == 1, "the set to queue for both");
        await using (var slot = await c.Locks.TryAcquireSemaphoreAsync("free", 2, TimeSpan.Zero))
        {
            Assert.That(slot, Is.Not.Null, "a later request for a free slot is granted past the waiting set");
        }

        var later = c.Locks.AcquireAsync("lacking", LongWait);
        await LockContractTests.UntilAsync(async () => (await leader.Locks.InspectAsync("lacking", LongWait)).QueueLength == 2, "a later request for the held lock to queue behind the set");
        await holder.DisposeAsync();
        await using var granted = await set.WaitAsync(LongWait);
        Assert.That(granted["lacking"].FencingToken, Is.GreaterThan(holder.FencingToken));
        Assert.That(later.IsCompleted, Is.False, "the set came first and fit: the later request still waits");
        await granted.DisposeAsync();
        await using var next = await later.WaitAsync(LongWait);
        Assert.That(next.FencingToken, Is.GreaterThan(granted["lacking"].FencingToken));
    }

    [Test]
    public async Task CancellingAWaitingSetWithdrawsItFromEveryQueue()
    {
        await using var cluster = await StartClusterAsync(Lease);
        var leader = await cluster.WaitForLeaderAsync();
        var (a, b) = (cluster.Nodes[0], cluster.Nodes[1]);
        var holder = await a.Locks.AcquireAsync("two", LongWait);
        using var cancel = new CancellationTokenSource();
        var waiting = b.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("one"), GaggleLockRequest.Mutex("two")], null, cancel.Token);
        await LockContractTests.UntilAsync(async () => (await leader.Locks.InspectAsync("one", LongWait)).QueueLength == 1, "the set to queue");

        await cancel.CancelAsync();
        var cancelled = await Assert.CatchAsync<OperationCanceledException>(async () => await waiting);
        Assert.That(cancelled!.CancellationToken, Is.EqualTo(cancel.Token));
        await LockContractTests.UntilAsync(
            async () => (await leader.Locks.InspectAsync("one", LongWait)).QueueLength == 0 && (await leader.Locks.InspectAsync("two", LongWait)).QueueLength == 0,
            "the set to leave both queues");
        await holder.DisposeAsync();
        Assert.That((await leader.Locks.InspectAsync("two", LongWait)).Holders, Is.Empty, "the cancelled set holds nothing");
    }

    [Test]
    public async Task ASetIsLostOnANodeCutOffFromTheOthers()
    {
        await using var cluster = await StartClusterAsync(TimeSpan.FromSeconds(1));
        var leader = await cluster.WaitForLeaderAsync();
        var victim = cluster.Nodes.First(n => n != leader);
        var set = await victim.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("cut-1"), GaggleLockRequest.Read("cut-2")], LongWait);
        var next = leader.Locks.AcquireAllAsync([GaggleLockRequest.Write("cut-2"), GaggleLockRequest.Mutex("cut-1")], LongWait);

        cluster.CutOff(victim.Id);
        await LockContractTests.UntilAsync(() => Task.FromResult(set.HandleLostToken.IsCancellationRequested), "the cut-off node to learn its set is lost");
        await using (var taken = await next.WaitAsync(LongWait))
        {
            Assert.That(taken["cut-1"].FencingToken, Is.GreaterThan(set["cut-1"].FencingToken));
            Assert.That(taken["cut-2"].FencingToken, Is.GreaterThan(set["cut-2"].FencingToken));
        }

        await set.DisposeAsync();
    }
}
