using System.Collections.Concurrent;
using System.Diagnostics;
using NUnit.Framework;

namespace Gaggle.Tests.Locks.Contract;

/// <summary>
/// What every way of taking Gaggle locks (mutexes, semaphores, reader-writer locks) must do, on every channel: run against the in-memory
/// network and Redis through the native API (Gaggle.Tests, Gaggle.Redis.Tests) and through the
/// DistributedLock.Core adapters (Gaggle.DistributedLock.Tests). The file is linked into those
/// projects, not copied. Waits are for conditions with deadlines; nothing sleeps on a guess.
/// </summary>
public abstract class LockContractTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan LongWait = TimeSpan.FromSeconds(30);

    /// <summary>Starts three nodes (a, b, c) whose locks last <paramref name="lease"/> without renewal.</summary>
    protected abstract Task<LockContractCluster> StartClusterAsync(TimeSpan lease);

    /// <summary>The way of taking locks under test, on <paramref name="node"/>.</summary>
    protected abstract ILockContractClient ClientOf(GaggleNode node);

    [Test]
    public async Task AContendedMutexHasOneHolderAtATime()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        int inside = 0;
        int maxInside = 0;
        int sections = 0;
        var workers = cluster.Nodes.SelectMany(node => Enumerable.Range(0, 2).Select(async _ =>
        {
            var client = ClientOf(node);
            for (int i = 0; i < 5; i++)
            {
                await using var hold = await client.AcquireAsync("mutex", 1, LongWait);
                int now = Interlocked.Increment(ref inside);
                InterlockedMax(ref maxInside, now);
                await Task.Yield();
                Interlocked.Decrement(ref inside);
                Interlocked.Increment(ref sections);
            }
        })).ToList();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(sections, Is.EqualTo(30));
        Assert.That(maxInside, Is.EqualTo(1), "mutual exclusion");
    }

    [Test]
    public async Task FencingTokensStrictlyIncreaseInGrantOrder()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var tokens = new ConcurrentQueue<long>();
        // Recorded while held, so the queue's order is the order of the grants.
        var workers = cluster.Nodes.SelectMany(node => Enumerable.Range(0, 2).Select(async _ =>
        {
            var client = ClientOf(node);
            for (int i = 0; i < 4; i++)
            {
                await using var hold = await client.AcquireAsync("fenced", 1, LongWait);
                tokens.Enqueue(hold.FencingToken);
            }
        })).ToList();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(tokens, Has.Count.EqualTo(24));
        Assert.That(tokens, Is.Ordered.And.Unique, "each grant's token is above the previous grant's");
    }

    [Test]
    public async Task WaitersAreServedInTheOrderTheyQueued()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var nodes = cluster.Nodes;
        var holder = await ClientOf(nodes[0]).AcquireAsync("fifo", 1, LongWait);
        var served = new ConcurrentQueue<string>();
        var waiters = new List<Task>();
        // Each waiter queues only once the one before it is in the queue: the log orders them.
        string[] order = ["b1", "c1", "a1", "b2"];
        foreach (var label in order)
        {
            var client = ClientOf(nodes.Single(n => n.Id == label[..1]));
            waiters.Add(WaitThenRecordAsync(client, label));
            int queued = waiters.Count;
            await UntilAsync(async () => (await nodes[0].Locks.InspectAsync("fifo", LongWait)).QueueLength == queued, $"{label} to queue as waiter {queued}");
        }

        await holder.DisposeAsync();
        await Task.WhenAll(waiters).WaitAsync(LongWait);
        Assert.That(served, Is.EqualTo(order), "FIFO");

        async Task WaitThenRecordAsync(ILockContractClient client, string label)
        {
            await using var hold = await client.AcquireAsync("fifo", 1, LongWait);
            served.Enqueue(label);
        }
    }

    [Test]
    public async Task ASemaphoreAdmitsAtMostMaxCountHolders()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var (a, b, c) = (ClientOf(cluster.Nodes[0]), ClientOf(cluster.Nodes[1]), ClientOf(cluster.Nodes[2]));
        var first = await a.AcquireAsync("pool", 2, LongWait);
        var second = await b.AcquireAsync("pool", 2, LongWait);
        Assert.That(await c.TryAcquireAsync("pool", 2, TimeSpan.Zero), Is.Null, "both slots are taken");
        var third = c.AcquireAsync("pool", 2, LongWait);
        await UntilAsync(async () => (await cluster.Nodes[2].Locks.InspectAsync("pool", LongWait)).QueueLength == 1, "the third request to queue");
        Assert.That(third.IsCompleted, Is.False);
        await first.DisposeAsync();
        await using (var granted = await third.WaitAsync(LongWait))
        {
            var info = await cluster.Nodes[2].Locks.InspectAsync("pool", LongWait);
            Assert.That(info.Holders.Select(h => h.FencingToken), Is.EquivalentTo(new[] { second.FencingToken, granted.FencingToken }));
        }

        await second.DisposeAsync();

        // Under contention the bound holds too.
        int inside = 0;
        int maxInside = 0;
        var workers = cluster.Nodes.SelectMany(node => Enumerable.Range(0, 2).Select(async _ =>
        {
            var client = ClientOf(node);
            for (int i = 0; i < 4; i++)
            {
                await using var hold = await client.AcquireAsync("pool", 2, LongWait);
                InterlockedMax(ref maxInside, Interlocked.Increment(ref inside));
                await Task.Yield();
                Interlocked.Decrement(ref inside);
            }
        })).ToList();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(maxInside, Is.InRange(1, 2), "at most maxCount holders at once");
    }

    [Test]
    public async Task WhileHeldTryAcquireReturnsNullAndAcquireTimesOut()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        await using var hold = await ClientOf(cluster.Nodes[0]).AcquireAsync("busy", 1, LongWait);
        var other = ClientOf(cluster.Nodes[1]);
        Assert.That(await other.TryAcquireAsync("busy", 1, TimeSpan.Zero), Is.Null, "zero tries once");
        Assert.That(await other.TryAcquireAsync("busy", 1, TimeSpan.FromMilliseconds(100)), Is.Null);
        await Assert.ThrowsAsync<TimeoutException>(() => other.AcquireAsync("busy", 1, TimeSpan.FromMilliseconds(100)));
        Assert.That(hold.HandleLostToken.IsCancellationRequested, Is.False);
    }

    [Test]
    public async Task AHoldIsLostOnANodeCutOffFromTheOthers()
    {
        await using var cluster = await StartClusterAsync(TimeSpan.FromSeconds(1));
        var leader = await cluster.WaitForLeaderAsync();
        var victim = cluster.Nodes.First(n => n != leader);
        var hold = await ClientOf(victim).AcquireAsync("cut", 1, LongWait);
        var next = ClientOf(leader).AcquireAsync("cut", 1, LongWait);
        await UntilAsync(async () => (await leader.Locks.InspectAsync("cut", LongWait)).QueueLength == 1, "the leader's request to queue");

        cluster.CutOff(victim.Id);
        await CancelledAsync(hold.HandleLostToken, "the cut-off holder to learn that its hold is lost");
        await using (var taken = await next.WaitAsync(LongWait))
        {
            Assert.That(taken.FencingToken, Is.GreaterThan(hold.FencingToken), "the next holder fences the lost one out");
        }

        await hold.DisposeAsync();
    }

    [Test]
    public async Task CancellingAWaitingAcquireWithdrawsIt()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var (a, b, c) = (cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]);
        var holder = await ClientOf(a).AcquireAsync("cancel", 1, LongWait);
        using var cancel = new CancellationTokenSource();
        var waiting = ClientOf(b).AcquireAsync("cancel", 1, null, cancel.Token);
        await UntilAsync(async () => (await a.Locks.InspectAsync("cancel", LongWait)).QueueLength == 1, "b's request to queue");

        await cancel.CancelAsync();
        Assert.That(async () => await waiting.WaitAsync(LongWait), Throws.InstanceOf<OperationCanceledException>());
        var cancelled = await Assert.CatchAsync<OperationCanceledException>(async () => await waiting);
        Assert.That(cancelled!.CancellationToken, Is.EqualTo(cancel.Token), "the exception carries the caller's token");
        await UntilAsync(async () => (await a.Locks.InspectAsync("cancel", LongWait)).QueueLength == 0, "b's request to leave the queue");
        await holder.DisposeAsync();

        await using var taken = await ClientOf(c).TryAcquireAsync("cancel", 1, LongWait);
        Assert.That(taken, Is.Not.Null, "the lock went to nobody else: the cancelled waiter does not hold it");
        var info = await a.Locks.InspectAsync("cancel", LongWait);
        Assert.That(info.Holders.Select(h => (h.NodeId, h.FencingToken)), Is.EqualTo(new[] { (c.Id, taken!.FencingToken) }));
    }

    [Test]
    public async Task DisposingAHoldTwiceReleasesItOnce()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var hold = await ClientOf(cluster.Nodes[0]).AcquireAsync("twice", 1, LongWait);
        await Task.WhenAll(hold.DisposeAsync().AsTask(), hold.DisposeAsync().AsTask()).WaitAsync(LongWait);
        await hold.DisposeAsync();
        await CancelledAsync(hold.HandleLostToken, "a released hold to be no longer trusted");

        await using var next = await ClientOf(cluster.Nodes[1]).TryAcquireAsync("twice", 1, LongWait);
        Assert.That(next, Is.Not.Null, "released");
        Assert.That(next!.FencingToken, Is.GreaterThan(hold.FencingToken));
        var info = await cluster.Nodes[1].Locks.InspectAsync("twice", LongWait);
        Assert.That(info.Holders.Select(h => h.FencingToken), Is.EqualTo(new[] { next.FencingToken }), "the second dispose released nothing more");
    }

    [Test]
    public async Task TryAcquireWithAFiniteTimeoutWaitsForARelease()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var holder = await ClientOf(cluster.Nodes[0]).AcquireAsync("finite", 1, LongWait);
        var waiting = ClientOf(cluster.Nodes[1]).TryAcquireAsync("finite", 1, LongWait);
        await UntilAsync(async () => (await cluster.Nodes[0].Locks.InspectAsync("finite", LongWait)).QueueLength == 1, "the waiter to queue");
        await holder.DisposeAsync();
        await using var granted = await waiting.WaitAsync(LongWait);
        Assert.That(granted, Is.Not.Null, "a try with a timeout waits for the holder to let go");
    }

    [Test]
    public async Task ReadersShareAReaderWriterLockAndAWaitingWriterIsServedBeforeLaterReaders()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var (a, b, c) = (ClientOf(cluster.Nodes[0]), ClientOf(cluster.Nodes[1]), ClientOf(cluster.Nodes[2]));
        var readers = new List<IContractHold> { await a.AcquireReaderWriterAsync("rw", write: false, LongWait), await b.AcquireReaderWriterAsync("rw", write: false, LongWait) };
        Assert.That(await c.TryAcquireReaderWriterAsync("rw", write: true, TimeSpan.Zero), Is.Null, "a writer does not share it");

        var writing = c.AcquireReaderWriterAsync("rw", write: true, LongWait);
        await UntilAsync(async () => (await cluster.Nodes[2].Locks.InspectAsync("rw", LongWait)).QueueLength == 1, "the writer to queue");
        Assert.That(await a.TryAcquireReaderWriterAsync("rw", write: false, TimeSpan.Zero), Is.Null, "a later reader waits behind the writer");
        foreach (var reader in readers)
        {
            await reader.DisposeAsync();
        }

        await using (var writer = await writing.WaitAsync(LongWait))
        {
            Assert.That(writer.FencingToken, Is.GreaterThan(readers.Max(r => r.FencingToken)));
            Assert.That(await b.TryAcquireReaderWriterAsync("rw", write: false, TimeSpan.Zero), Is.Null, "no reader beside the writer");
        }

        await using var after = await b.TryAcquireReaderWriterAsync("rw", write: false, LongWait);
        Assert.That(after, Is.Not.Null, "the writer let go");
    }

    [Test]
    public async Task ANameInUseAsAMutexRefusesAReaderWriterRequest()
    {
        await using var cluster = await StartClusterAsync(Lease);
        await cluster.WaitForLeaderAsync();
        var a = ClientOf(cluster.Nodes[0]);
        await using var mutex = await a.AcquireAsync("kind", 1, LongWait);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => ClientOf(cluster.Nodes[1]).TryAcquireReaderWriterAsync("kind", write: false, LongWait));
        Assert.That(refused!.Message, Does.Contain("'kind' is in use as a mutex"));
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails after <paramref name="deadline"/> (30 s).</summary>
    internal static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? deadline = null)
    {
        var limit = deadline ?? LongWait;
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Gave up after {limit.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Waits until <paramref name="token"/> is cancelled; fails after 30 s.</summary>
    protected static async Task CancelledAsync(CancellationToken token, string what)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (token.Register(() => cancelled.TrySetResult()))
        {
            try
            {
                await cancelled.Task.WaitAsync(LongWait);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"Gave up after {LongWait.TotalSeconds:0} s waiting for {what}.");
            }
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
