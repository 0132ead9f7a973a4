using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// A Gaggle reader-writer lock as an <see cref="IDistributedReaderWriterLock"/>: readers share it, a
/// writer holds it alone, and waiters are served in FIFO order (a reader that comes while a writer
/// waits queues behind it, so writers do not starve). Every hold carries a fencing token. Made by
/// <see cref="GaggleDistributedReaderWriterLockProvider.CreateReaderWriterLock(string)"/>; the same
/// name taken through <see cref="GaggleLocks.AcquireReadAsync"/> or <see cref="GaggleLocks.AcquireWriteAsync"/>
/// is the same lock.
/// </summary>
/// <remarks>
/// Timeouts and blocking calls follow <see cref="GaggleDistributedLock"/>'s rules. There is no upgrade:
/// a caller holding the lock for reading that asks for it for writing waits for its own read hold.
/// A name held or waited for as a mutex or semaphore refuses reader-writer requests with
/// <see cref="InvalidOperationException"/>.
/// </remarks>
public sealed class GaggleDistributedReaderWriterLock : IDistributedReaderWriterLock
{
    private readonly GaggleLocks _locks;

    internal GaggleDistributedReaderWriterLock(string name, GaggleLocks locks)
    {
        Name = Acquisition.ValidName(name, "reader-writer lock");
        _locks = locks;
    }

    /// <summary>The lock's name (1 to 256 characters).</summary>
    public string Name { get; }

    /// <summary>Tries to acquire the lock for reading, blocking; null when it was not granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public GaggleDistributedLockHandle? TryAcquireReadLock(TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => TryBlocking(write: false, timeout, cancellationToken);

    /// <summary>Acquires the lock for reading, blocking.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    public GaggleDistributedLockHandle AcquireReadLock(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Blocking(write: false, timeout, cancellationToken);

    /// <summary>Tries to acquire the lock for reading; null when it was not granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public ValueTask<GaggleDistributedLockHandle?> TryAcquireReadLockAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => Acquisition.TryAcquireReaderWriterAsync(_locks, Name, write: false, Acquisition.Wait(timeout, Describe(false)), cancellationToken);

    /// <summary>Acquires the lock for reading.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    public ValueTask<GaggleDistributedLockHandle> AcquireReadLockAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Acquisition.AcquireReaderWriterAsync(_locks, Name, write: false, Acquisition.Wait(timeout, Describe(false)), cancellationToken);

    /// <summary>Tries to acquire the lock for writing, blocking; null when it was not granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public GaggleDistributedLockHandle? TryAcquireWriteLock(TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => TryBlocking(write: true, timeout, cancellationToken);

    /// <summary>Acquires the lock for writing, blocking.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    public GaggleDistributedLockHandle AcquireWriteLock(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Blocking(write: true, timeout, cancellationToken);

    /// <summary>Tries to acquire the lock for writing; null when it was not granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public ValueTask<GaggleDistributedLockHandle?> TryAcquireWriteLockAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => Acquisition.TryAcquireReaderWriterAsync(_locks, Name, write: true, Acquisition.Wait(timeout, Describe(true)), cancellationToken);

    /// <summary>Acquires the lock for writing.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    public ValueTask<GaggleDistributedLockHandle> AcquireWriteLockAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Acquisition.AcquireReaderWriterAsync(_locks, Name, write: true, Acquisition.Wait(timeout, Describe(true)), cancellationToken);

    IDistributedSynchronizationHandle? IDistributedReaderWriterLock.TryAcquireReadLock(TimeSpan timeout, CancellationToken cancellationToken)
        => TryAcquireReadLock(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedReaderWriterLock.AcquireReadLock(TimeSpan? timeout, CancellationToken cancellationToken)
        => AcquireReadLock(timeout, cancellationToken);

    ValueTask<IDistributedSynchronizationHandle?> IDistributedReaderWriterLock.TryAcquireReadLockAsync(TimeSpan timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterfaceOrNull(TryAcquireReadLockAsync(timeout, cancellationToken));

    ValueTask<IDistributedSynchronizationHandle> IDistributedReaderWriterLock.AcquireReadLockAsync(TimeSpan? timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterface(AcquireReadLockAsync(timeout, cancellationToken));

    IDistributedSynchronizationHandle? IDistributedReaderWriterLock.TryAcquireWriteLock(TimeSpan timeout, CancellationToken cancellationToken)
        => TryAcquireWriteLock(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedReaderWriterLock.AcquireWriteLock(TimeSpan? timeout, CancellationToken cancellationToken)
        => AcquireWriteLock(timeout, cancellationToken);

    ValueTask<IDistributedSynchronizationHandle?> IDistributedReaderWriterLock.TryAcquireWriteLockAsync(TimeSpan timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterfaceOrNull(TryAcquireWriteLockAsync(timeout, cancellationToken));

    ValueTask<IDistributedSynchronizationHandle> IDistributedReaderWriterLock.AcquireWriteLockAsync(TimeSpan? timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterface(AcquireWriteLockAsync(timeout, cancellationToken));

    private GaggleDistributedLockHandle? TryBlocking(bool write, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var wait = Acquisition.Wait(timeout, Describe(write));
        return Acquisition.Block(() => Acquisition.TryAcquireReaderWriterAsync(_locks, Name, write, wait, cancellationToken));
    }

    private GaggleDistributedLockHandle Blocking(bool write, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var wait = Acquisition.Wait(timeout, Describe(write));
        return Acquisition.Block(() => Acquisition.AcquireReaderWriterAsync(_locks, Name, write, wait, cancellationToken));
    }

    private string Describe(bool write) => $"reader-writer lock '{Name}' for {(write ? "writing" : "reading")}";
}
