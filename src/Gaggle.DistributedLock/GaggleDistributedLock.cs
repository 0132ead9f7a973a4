using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// A Gaggle mutex as an <see cref="IDistributedLock"/>: a grant is an entry of the cluster's Raft log,
/// waiters are served in FIFO order, and each hold carries a fencing token. Made by
/// <see cref="GaggleDistributedLockProvider.CreateLock(string)"/>; it is only a name and a node, so
/// making one costs nothing. The same name taken through <see cref="GaggleLocks.AcquireAsync"/> is the
/// same lock.
/// </summary>
/// <remarks>
/// Timeouts follow DistributedLock.Core: <c>TryAcquire*</c> defaults to zero (try once: one commit,
/// waited for at most 4 × ElectionTimeoutMax) and returns null when not granted in time;
/// <c>Acquire*</c> defaults to null (wait without limit) and throws <see cref="TimeoutException"/>;
/// <see cref="Timeout.InfiniteTimeSpan"/> waits without limit in both; other negative timeouts and
/// ones above <see cref="int.MaxValue"/> milliseconds throw <see cref="ArgumentOutOfRangeException"/>.
/// Cancelling the token withdraws the request (<see cref="OperationCanceledException"/>; a grant that
/// raced with it is released). The synchronous methods block the calling thread while the work runs
/// on the thread pool, never on the caller's <see cref="SynchronizationContext"/>, so they cannot
/// deadlock on one. The node's loop, timers and lease renewals run on the thread pool too, so while a
/// synchronous call blocks a pool thread, the pool's minimum of worker threads is raised by one (and set
/// back when the last blocked call returns): callers blocked at once (a synchronous controller under load,
/// <c>Parallel.For</c>) do not starve the work they wait for. Prefer the async methods, which hold no
/// thread while they wait.
/// </remarks>
public sealed class GaggleDistributedLock : IDistributedLock
{
    private readonly GaggleLocks _locks;

    internal GaggleDistributedLock(string name, GaggleLocks locks)
    {
        Name = Acquisition.ValidName(name, "lock");
        _locks = locks;
    }

    /// <summary>The lock's name (1 to 256 characters).</summary>
    public string Name { get; }

    /// <summary>Tries to acquire the lock, blocking; null when it was not granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public GaggleDistributedLockHandle? TryAcquire(TimeSpan timeout = default, CancellationToken cancellationToken = default)
    {
        var wait = Acquisition.Wait(timeout, Describe());
        return Acquisition.Block(() => Acquisition.TryAcquireAsync(_locks, Name, 1, wait, cancellationToken));
    }

    /// <summary>Acquires the lock, blocking.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    public GaggleDistributedLockHandle Acquire(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var wait = Acquisition.Wait(timeout, Describe());
        return Acquisition.Block(() => Acquisition.AcquireAsync(_locks, Name, 1, wait, cancellationToken));
    }

    /// <summary>Tries to acquire the lock; null when it was not granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public ValueTask<GaggleDistributedLockHandle?> TryAcquireAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => Acquisition.TryAcquireAsync(_locks, Name, 1, Acquisition.Wait(timeout, Describe()), cancellationToken);

    /// <summary>Acquires the lock.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    public ValueTask<GaggleDistributedLockHandle> AcquireAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Acquisition.AcquireAsync(_locks, Name, 1, Acquisition.Wait(timeout, Describe()), cancellationToken);

    IDistributedSynchronizationHandle? IDistributedLock.TryAcquire(TimeSpan timeout, CancellationToken cancellationToken)
        => TryAcquire(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedLock.Acquire(TimeSpan? timeout, CancellationToken cancellationToken)
        => Acquire(timeout, cancellationToken);

    ValueTask<IDistributedSynchronizationHandle?> IDistributedLock.TryAcquireAsync(TimeSpan timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterfaceOrNull(TryAcquireAsync(timeout, cancellationToken));

    ValueTask<IDistributedSynchronizationHandle> IDistributedLock.AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterface(AcquireAsync(timeout, cancellationToken));

    private string Describe() => $"lock '{Name}'";
}
