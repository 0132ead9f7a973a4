using Gaggle.Tests.Locks.Contract;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.DistributedLock.Tests;

/// <summary>
/// A synchronous call blocked on Gaggle keeps a thread pool thread in reserve while it waits, so that
/// callers blocked at once do not starve the node's work they wait for; the pool's minimum is set
/// back afterwards, and one the app raised meanwhile is left alone. Not run beside other tests: the
/// thread pool's minimum is the process's.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ThreadPoolReserveTests
{
    private static int MinWorkers
    {
        get
        {
            ThreadPool.GetMinThreads(out int workers, out _);
            return workers;
        }
    }

    [Test]
    public async Task BlockedSynchronousAcquiresEachKeepAPoolThreadInReserveUntilTheyReturn()
    {
        await using var cluster = await LockContractCluster.StartInMemoryAsync(TimeSpan.FromSeconds(10));
        await cluster.WaitForLeaderAsync();
        var provider = new GaggleDistributedLockProvider(cluster.Nodes[0].Locks);
        int baseline = MinWorkers;
        var holder = await cluster.Nodes[1].Locks.AcquireAsync("reserve", TimeSpan.FromSeconds(30));
        const int callers = 4;
        var errors = new List<Exception>();
        // Threads of their own: the callers must block whether or not the pool has threads to spare.
        var threads = Enumerable.Range(0, callers).Select(_ => new Thread(() =>
        {
            try
            {
                using var hold = provider.CreateLock("reserve").Acquire(TimeSpan.FromSeconds(30));
            }
            catch (Exception e)
            {
                lock (errors)
                {
                    errors.Add(e);
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());

        await Eventually.True(() => ThreadPoolReserve.Blocked == callers, $"{callers} blocked acquires");
        Assert.That(MinWorkers, Is.EqualTo(baseline + callers), "one thread in reserve per blocked call");

        await holder.DisposeAsync();
        await Eventually.True(() => threads.TrueForAll(t => !t.IsAlive), "every blocked caller got its hold and released it");
        Assert.That(errors, Is.Empty);
        Assert.That(ThreadPoolReserve.Blocked, Is.Zero);
        Assert.That(MinWorkers, Is.EqualTo(baseline), "the minimum is set back");
    }

    [Test]
    public void AMinimumTheAppRaisesMeanwhileIsLeftAloneAndAddedTo()
    {
        ThreadPool.GetMinThreads(out int baseline, out int io);
        try
        {
            ThreadPoolReserve.Enter();
            ThreadPoolReserve.Enter();
            Assert.That(MinWorkers, Is.EqualTo(baseline + 2));
            ThreadPoolReserve.Leave();
            Assert.That(MinWorkers, Is.EqualTo(baseline + 1));

            // The app raises the minimum while a call blocks: later calls add to the app's, and nothing lowers it.
            ThreadPool.SetMinThreads(baseline + 10, io);
            ThreadPoolReserve.Enter();
            Assert.That(MinWorkers, Is.EqualTo(baseline + 11));
            ThreadPoolReserve.Leave();
            Assert.That(MinWorkers, Is.EqualTo(baseline + 10));
            ThreadPool.SetMinThreads(baseline + 12, io);
            ThreadPoolReserve.Leave();
            Assert.That(MinWorkers, Is.EqualTo(baseline + 12), "set by the app since the reserve last set it");
            Assert.That(ThreadPoolReserve.Blocked, Is.Zero);
        }
        finally
        {
            ThreadPool.SetMinThreads(baseline, io);
        }
    }
}
