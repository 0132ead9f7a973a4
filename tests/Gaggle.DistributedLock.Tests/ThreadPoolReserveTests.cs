using System.Diagnostics;
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
        // Pool threads, as a synchronous controller's: each blocks one.
        var blocked = Enumerable.Range(0, callers).Select(_ => Task.Run(() =>
        {
            using var hold = provider.CreateLock("reserve").Acquire(TimeSpan.FromSeconds(30));
        })).ToList();
        // A thread of its own takes nothing from the pool: nothing is kept in reserve for it.
        Exception? ownThreadError = null;
        var ownThread = new Thread(() =>
        {
            try
            {
                using var hold = provider.CreateLock("reserve").Acquire(TimeSpan.FromSeconds(30));
            }
            catch (Exception e)
            {
                ownThreadError = e;
            }
        });
        ownThread.Start();

        await Eventually.True(() => ThreadPoolReserve.Blocked == callers, $"{callers} blocked acquires on pool threads");
        var queued = Stopwatch.StartNew();
        while ((await cluster.Nodes[0].Locks.InspectAsync("reserve")).QueueLength < callers + 1)
        {
            Assert.That(queued.Elapsed, Is.LessThan(Eventually.DefaultDeadline), "every caller queued");
            await Task.Delay(5);
        }

        Assert.That(ThreadPoolReserve.Blocked, Is.EqualTo(callers), "the caller on a thread of its own reserves nothing");
        Assert.That(MinWorkers, Is.EqualTo(baseline + callers), "one thread in reserve per blocked pool thread");

        await holder.DisposeAsync();
        await Task.WhenAll(blocked).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(ownThread.Join(TimeSpan.FromSeconds(60)), Is.True);
        Assert.That(ownThreadError, Is.Null);
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
