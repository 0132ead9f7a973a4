using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// A Gaggle semaphore as an <see cref="IDistributedSemaphore"/>: up to <see cref="MaxCount"/> holders
/// at once, waiters served in FIFO order, each hold with a fencing token. Made by
/// <see cref="GaggleDistributedSemaphoreProvider.CreateSemaphore(string, int)"/>. Every user of a name
/// must pass the same <see cref="MaxCount"/>: while the semaphore is in use with another count,
/// acquiring throws <see cref="InvalidOperationException"/>. Timeouts, cancellation and the
/// synchronous methods behave as <see cref="GaggleDistributedLock"/>'s do.
/// </summary>
public sealed class GaggleDistributedSemaphore : IDistributedSemaphore
{
    /// <summary>The largest slot count Gaggle's lock table accepts.</summary>
    internal const int LargestMaxCount = 100_000;

    private readonly GaggleLocks _locks;

    internal GaggleDistributedSemaphore(string name, int maxCount, GaggleLocks locks)
    {
        Name = Acquisition.ValidName(name, "semaphore");
        if (maxCount is < 1 or > LargestMaxCount)
        {
            throw new ArgumentOutOfRangeException(nameof(maxCount), maxCount, $"The semaphore '{name}' has maxCount {maxCount}; it must be between 1 and {LargestMaxCount}.");
        }

        MaxCount = maxCount;
        _locks = locks;
    }

    /// <summary>The semaphore's name (1 to 256 characters).</summary>
    public string Name { get; }

    /// <summary>How many may hold the semaphore at once.</summary>
    public int MaxCount { get; }

    /// <summary>Tries to take a slot, blocking; null when none was granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public GaggleDistributedLockHandle? TryAcquire(TimeSpan timeout = default, CancellationToken cancellationToken = default)
    {
        var wait = Acquisition.Wait(timeout, Describe());
        return Acquisition.Block(() => Acquisition.TryAcquireAsync(_locks, Name, MaxCount, wait, cancellationToken));
    }

    /// <summary>Takes a slot, blocking.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">No slot was granted within <paramref name="timeout"/>.</exception>
    public GaggleDistributedLockHandle Acquire(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var wait = Acquisition.Wait(timeout, Describe());
        return Acquisition.Block(() => Acquisition.AcquireAsync(_locks, Name, MaxCount, wait, cancellationToken));
    }

    /// <summary>Tries to take a slot; null when none was granted within <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait; zero (the default) tries once; <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public ValueTask<GaggleDistributedLockHandle?> TryAcquireAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => Acquisition.TryAcquireAsync(_locks, Name, MaxCount, Acquisition.Wait(timeout, Describe()), cancellationToken);

    /// <summary>Takes a slot.</summary>
    /// <param name="timeout">How long to wait; null (the default) or <see cref="Timeout.InfiniteTimeSpan"/> waits without limit.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold.</returns>
    /// <exception cref="TimeoutException">No slot was granted within <paramref name="timeout"/>.</exception>
    public ValueTask<GaggleDistributedLockHandle> AcquireAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Acquisition.AcquireAsync(_locks, Name, MaxCount, Acquisition.Wait(timeout, Describe()), cancellationToken);

    IDistributedSynchronizationHandle? IDistributedSemaphore.TryAcquire(TimeSpan timeout, CancellationToken cancellationToken)
        => TryAcquire(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedSemaphore.Acquire(TimeSpan? timeout, CancellationToken cancellationToken)
        => Acquire(timeout, cancellationToken);

    ValueTask<IDistributedSynchronizationHandle?> IDistributedSemaphore.TryAcquireAsync(TimeSpan timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterfaceOrNull(TryAcquireAsync(timeout, cancellationToken));

    ValueTask<IDistributedSynchronizationHandle> IDistributedSemaphore.AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken)
        => Acquisition.AsInterface(AcquireAsync(timeout, cancellationToken));

    private string Describe() => $"a slot of semaphore '{Name}' (maxCount {MaxCount})";
}
