using Gaggle.Tests.Locks.Contract;
using Medallion.Threading;

namespace Gaggle.DistributedLock.Tests;

/// <summary>Which methods of the DistributedLock.Core interfaces a client calls.</summary>
public enum AdapterCalls
{
    /// <summary><c>TryAcquireAsync</c>, <c>AcquireAsync</c>, <c>DisposeAsync</c>.</summary>
    Async,

    /// <summary><c>TryAcquire</c>, <c>Acquire</c>, <c>Dispose</c>, each blocking a thread of its own.</summary>
    Blocking,
}

/// <summary>
/// Takes Gaggle locks through DistributedLock.Core's interfaces only (<see cref="IDistributedLockProvider"/>,
/// <see cref="IDistributedSemaphoreProvider"/>, <see cref="IDistributedReaderWriterLockProvider"/>,
/// <see cref="IDistributedSynchronizationHandle"/>), as an
/// application written against them does; the fencing token is read from the Gaggle handle.
/// </summary>
public sealed class AdapterLockClient(GaggleNode node, AdapterCalls calls) : ILockContractClient
{
    private readonly IDistributedLockProvider _locks = new GaggleDistributedLockProvider(node.Locks);
    private readonly IDistributedSemaphoreProvider _semaphores = new GaggleDistributedSemaphoreProvider(node.Locks);
    private readonly IDistributedReaderWriterLockProvider _readerWriters = new GaggleDistributedReaderWriterLockProvider(node.Locks);

    public async Task<IContractHold?> TryAcquireAsync(string name, int maxCount, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var handle = calls == AdapterCalls.Async
            ? await (maxCount == 1 ? _locks.CreateLock(name).TryAcquireAsync(timeout, cancellationToken) : _semaphores.CreateSemaphore(name, maxCount).TryAcquireAsync(timeout, cancellationToken))
            : await OnOwnThread(() => maxCount == 1 ? _locks.CreateLock(name).TryAcquire(timeout, cancellationToken) : _semaphores.CreateSemaphore(name, maxCount).TryAcquire(timeout, cancellationToken));
        return handle is null ? null : new Hold(handle, calls);
    }

    public async Task<IContractHold> AcquireAsync(string name, int maxCount, TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        var handle = calls == AdapterCalls.Async
            ? await (maxCount == 1 ? _locks.CreateLock(name).AcquireAsync(timeout, cancellationToken) : _semaphores.CreateSemaphore(name, maxCount).AcquireAsync(timeout, cancellationToken))
            : await OnOwnThread(() => maxCount == 1 ? _locks.CreateLock(name).Acquire(timeout, cancellationToken) : _semaphores.CreateSemaphore(name, maxCount).Acquire(timeout, cancellationToken));
        return new Hold(handle, calls);
    }

    public async Task<IContractHold?> TryAcquireReaderWriterAsync(string name, bool write, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var rw = _readerWriters.CreateReaderWriterLock(name);
        var handle = calls == AdapterCalls.Async
            ? await (write ? rw.TryAcquireWriteLockAsync(timeout, cancellationToken) : rw.TryAcquireReadLockAsync(timeout, cancellationToken))
            : await OnOwnThread(() => write ? rw.TryAcquireWriteLock(timeout, cancellationToken) : rw.TryAcquireReadLock(timeout, cancellationToken));
        return handle is null ? null : new Hold(handle, calls);
    }

    public async Task<IContractHold> AcquireReaderWriterAsync(string name, bool write, TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        var rw = _readerWriters.CreateReaderWriterLock(name);
        var handle = calls == AdapterCalls.Async
            ? await (write ? rw.AcquireWriteLockAsync(timeout, cancellationToken) : rw.AcquireReadLockAsync(timeout, cancellationToken))
            : await OnOwnThread(() => write ? rw.AcquireWriteLock(timeout, cancellationToken) : rw.AcquireReadLock(timeout, cancellationToken));
        return new Hold(handle, calls);
    }

    /// <summary>Runs a blocking call on a thread of its own, so many blocked callers never starve the thread pool the adapters' work runs on.</summary>
    internal static Task<T> OnOwnThread<T>(Func<T> call)
        => Task.Factory.StartNew(call, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private sealed class Hold(IDistributedSynchronizationHandle handle, AdapterCalls calls) : IContractHold
    {
        public long FencingToken => ((GaggleDistributedLockHandle)handle).FencingToken;

        public CancellationToken HandleLostToken => handle.HandleLostToken;

        public async ValueTask DisposeAsync()
        {
            if (calls == AdapterCalls.Async)
            {
                await handle.DisposeAsync();
            }
            else
            {
                await OnOwnThread(() =>
                {
                    handle.Dispose();
                    return true;
                });
            }
        }
    }
}
