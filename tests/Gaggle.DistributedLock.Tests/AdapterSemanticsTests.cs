using Gaggle.Tests.Locks.Contract;
using Medallion.Threading;
using NUnit.Framework;

namespace Gaggle.DistributedLock.Tests;

/// <summary>
/// What the adapters add to the lock contract: DistributedLock.Core's argument rules, infinite
/// timeouts, blocking calls under a synchronization context, the blocking dispose, its extension
/// methods, and the fencing token on the handle. One cluster for the fixture; a lock name per test.
/// </summary>
[TestFixture]
public sealed class AdapterSemanticsTests
{
    private static readonly TimeSpan LongWait = TimeSpan.FromSeconds(30);
    private LockContractCluster _cluster = null!;
    private GaggleDistributedLockProvider _locks = null!;
    private GaggleDistributedSemaphoreProvider _semaphores = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await LockContractCluster.StartInMemoryAsync(TimeSpan.FromSeconds(10));
        await _cluster.WaitForLeaderAsync();
        _locks = new GaggleDistributedLockProvider(Node.Locks);
        _semaphores = new GaggleDistributedSemaphoreProvider(Node.Locks);
    }

    [OneTimeTearDown]
    public async Task StopAsync() => await _cluster.DisposeAsync();

    private GaggleNode Node => _cluster.Nodes[0];

    private GaggleNode OtherNode => _cluster.Nodes[1];

    private static IEnumerable<TestCaseData> BadTimeouts()
    {
        yield return new TestCaseData(TimeSpan.FromSeconds(-1), "-00:00:01").SetArgDisplayNames("minus 1 s");
        yield return new TestCaseData(TimeSpan.FromMilliseconds(-2), "-00:00:00.0020000").SetArgDisplayNames("minus 2 ms (InfiniteTimeSpan is minus 1 ms)");
        yield return new TestCaseData(TimeSpan.FromMilliseconds(int.MaxValue) + TimeSpan.FromMilliseconds(1), "24.20:31:23.6480000").SetArgDisplayNames("int.MaxValue ms plus 1 ms");
    }

    [TestCaseSource(nameof(BadTimeouts))]
    public void BadTimeoutsAreRefusedAtTheCallNamingTheLockTheValueAndTheRule(TimeSpan timeout, string shown)
    {
        IDistributedLock mutex = _locks.CreateLock("timeouts");
        IDistributedSemaphore semaphore = _semaphores.CreateSemaphore("timeouts-pool", 3);
        var calls = new (string What, Action Call)[]
        {
            ("lock 'timeouts'", () => mutex.TryAcquire(timeout)),
            ("lock 'timeouts'", () => mutex.Acquire(timeout)),
            // The async methods throw at the call, before returning a task, as DistributedLock.Core's do.
            ("lock 'timeouts'", () => _ = mutex.TryAcquireAsync(timeout)),
            ("lock 'timeouts'", () => _ = mutex.AcquireAsync(timeout)),
            ("semaphore 'timeouts-pool' (maxCount 3)", () => semaphore.TryAcquire(timeout)),
            ("semaphore 'timeouts-pool' (maxCount 3)", () => semaphore.Acquire(timeout)),
            ("semaphore 'timeouts-pool' (maxCount 3)", () => _ = semaphore.TryAcquireAsync(timeout)),
            ("semaphore 'timeouts-pool' (maxCount 3)", () => _ = semaphore.AcquireAsync(timeout)),
        };
        foreach (var (what, call) in calls)
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => call());
            Assert.That(error!.ParamName, Is.EqualTo("timeout"));
            Assert.That(error.ActualValue, Is.EqualTo(timeout));
            Assert.That(error.Message, Does.Contain(what).And.Contain($"is {shown}").And.Contain("must be Timeout.InfiniteTimeSpan (wait without limit), or between 00:00:00 (try once) and 24.20:31:23.6470000"));
        }
    }

    [Test]
    public async Task InfiniteTimeSpanWaitsWithoutLimitInTryAcquireAndAcquire()
    {
        var mutex = _locks.CreateLock("infinite");
        var holder = await Node.Locks.AcquireAsync("infinite", LongWait);
        var waiting = mutex.TryAcquireAsync(Timeout.InfiniteTimeSpan).AsTask();
        await LockContractTests.UntilAsync(async () => (await Node.Locks.InspectAsync("infinite", LongWait)).QueueLength == 1, "the infinite wait to queue");
        await holder.DisposeAsync();
        var handle = await waiting.WaitAsync(LongWait);
        Assert.That(handle, Is.Not.Null, "an infinite TryAcquire waits until granted");
        await handle!.DisposeAsync();

        await using var blocking = await AdapterLockClient.OnOwnThread(() => mutex.Acquire(Timeout.InfiniteTimeSpan)).WaitAsync(LongWait);
        Assert.That(blocking.FencingToken, Is.GreaterThan(handle.FencingToken));
    }

    [Test]
    public async Task BlockingCallsNeverWaitForTheCallersSynchronizationContext()
    {
        var mutex = _locks.CreateLock("sync-context");
        var context = new NeverRunningContext();
        var done = new TaskCompletionSource<(long First, GaggleDistributedLockHandle? WhileHeld, long Second)>(TaskCreationOptions.RunContinuationsAsynchronously);
        // A thread whose context never runs what is posted to it, as a UI thread blocked in the call
        // would not: anything the adapters continued on it would hang here.
        var thread = new Thread(() =>
        {
            SynchronizationContext.SetSynchronizationContext(context);
            try
            {
                using var first = mutex.Acquire(LongWait);
                var whileHeld = _locks.CreateLock("sync-context").TryAcquire();
                long firstToken = first.FencingToken;
                first.Dispose();
                // The async path blocked on from the same thread: the library never captures the context either.
                var second = mutex.AcquireAsync(LongWait).AsTask().GetAwaiter().GetResult();
                second.Dispose();
                done.TrySetResult((firstToken, whileHeld, second.FencingToken));
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        });
        thread.Start();
        var (firstToken, whileHeldHandle, secondToken) = await done.Task.WaitAsync(LongWait);
        Assert.That(whileHeldHandle, Is.Null, "a try-once while this node holds the lock is refused");
        Assert.That(secondToken, Is.GreaterThan(firstToken));
        Assert.That(context.Posted, Is.Zero, "nothing was posted to the caller's context");
    }

    [Test]
    public async Task DisposeAndDisposeAsyncReleaseOnceInAnyOrder()
    {
        var mutex = _locks.CreateLock("dispose");
        var handle = await AdapterLockClient.OnOwnThread(() => mutex.Acquire(LongWait)).WaitAsync(LongWait);
        await AdapterLockClient.OnOwnThread(() =>
        {
            handle.Dispose();
            handle.Dispose();
            return true;
        }).WaitAsync(LongWait);
        await handle.DisposeAsync();
        Assert.That(handle.HandleLostToken.CanBeCanceled, Is.True, "Gaggle handles report a lost hold");
        await LockContractTests.UntilAsync(() => Task.FromResult(handle.HandleLostToken.IsCancellationRequested), "the released hold to be no longer trusted");

        await using var next = await new GaggleDistributedLockProvider(OtherNode.Locks).CreateLock("dispose").TryAcquireAsync(LongWait);
        Assert.That(next, Is.Not.Null);
        var info = await Node.Locks.InspectAsync("dispose", LongWait);
        Assert.That(info.Holders.Select(h => (h.NodeId, h.FencingToken)), Is.EqualTo(new[] { (OtherNode.Id, next!.FencingToken) }));
    }

    [Test]
    public async Task DistributedLockCoreExtensionMethodsWorkAndTheHandleCarriesTheGrantsFencingToken()
    {
        IDistributedLockProvider provider = _locks;
        await using var handle = await provider.AcquireLockAsync("extensions", LongWait);
        var gaggle = (GaggleDistributedLockHandle)handle;
        var info = await Node.Locks.InspectAsync("extensions", LongWait);
        Assert.That(info.Holders.Select(h => h.FencingToken), Is.EqualTo(new[] { gaggle.FencingToken }));
        Assert.That(gaggle.Name, Is.EqualTo("extensions"));
        Assert.That(await AdapterLockClient.OnOwnThread(() => provider.TryAcquireLock("extensions")), Is.Null, "held");

        IDistributedSemaphoreProvider semaphores = _semaphores;
        await using var slot = await semaphores.AcquireSemaphoreAsync("extensions-pool", 2, LongWait);
        await using var another = await AdapterLockClient.OnOwnThread(() => semaphores.TryAcquireSemaphore("extensions-pool", 2, LongWait));
        Assert.That(another, Is.Not.Null, "a second slot");
        Assert.That(((GaggleDistributedLockHandle)another!).FencingToken, Is.GreaterThan(((GaggleDistributedLockHandle)slot).FencingToken));
    }

    [Test]
    public async Task ASemaphoreInUseWithAnotherMaxCountIsRefused()
    {
        await using var slot = await _semaphores.CreateSemaphore("count", 2).AcquireAsync(LongWait);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await _semaphores.CreateSemaphore("count", 3).TryAcquireAsync());
        Assert.That(error!.Message, Does.Contain("maximum of 2 holders"));
    }

    [Test]
    public void NamesAndCountsAreCheckedWhenTheLockIsMade()
    {
        Assert.That(Assert.Throws<ArgumentNullException>(() => _locks.CreateLock(null!))!.ParamName, Is.EqualTo("name"));
        Assert.That(
            Assert.Throws<ArgumentException>(() => _locks.CreateLock(""))!.Message,
            Does.Contain("The lock name '' has 0 characters; Gaggle's lock names must have 1 to 256."));
        Assert.That(
            Assert.Throws<ArgumentException>(() => _semaphores.CreateSemaphore(new string('s', 257), 2))!.Message,
            Does.Contain("has 257 characters; Gaggle's lock names must have 1 to 256."));
        foreach (int count in new[] { 0, -1, 100_001 })
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => _semaphores.CreateSemaphore("pool", count));
            Assert.That(error!.ParamName, Is.EqualTo("maxCount"));
            Assert.That(error.Message, Does.Contain($"The semaphore 'pool' has maxCount {count}; it must be between 1 and 100000."));
        }

        Assert.That(_locks.CreateLock(new string('l', 256)).Name, Has.Length.EqualTo(256));
        Assert.That(Assert.Throws<ArgumentNullException>(() => _ = new GaggleDistributedLockProvider(null!))!.ParamName, Is.EqualTo("locks"));
    }

    /// <summary>A synchronization context that counts what is posted to it and never runs it.</summary>
    private sealed class NeverRunningContext : SynchronizationContext
    {
        private int _posted;

        public int Posted => Volatile.Read(ref _posted);

        public override void Post(SendOrPostCallback d, object? state) => Interlocked.Increment(ref _posted);

        public override void Send(SendOrPostCallback d, object? state) => Interlocked.Increment(ref _posted);
    }
}
