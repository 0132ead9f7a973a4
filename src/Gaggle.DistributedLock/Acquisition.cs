using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// What the lock, semaphore and reader-writer lock adapters share: DistributedLock.Core's rules for timeouts, the
/// mapping onto <see cref="GaggleLocks"/>, and the blocking wait behind the synchronous methods.
/// </summary>
internal static class Acquisition
{
    /// <summary>The longest finite timeout DistributedLock.Core accepts (it counts milliseconds in an int).</summary>
    internal static readonly TimeSpan LongestTimeout = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>
    /// Checks a timeout as every <c>IDistributedLock</c> does: <see cref="Timeout.InfiniteTimeSpan"/>
    /// and null wait without limit, zero tries once, any other negative value or one above
    /// <see cref="LongestTimeout"/> is refused. Runs before anything is sent, so a bad argument throws
    /// at the call, not from the returned task.
    /// </summary>
    /// <param name="timeout">The caller's timeout.</param>
    /// <param name="what">What is being acquired, for the message (<c>lock 'orders'</c>).</param>
    /// <returns>How long Gaggle waits; null for without limit.</returns>
    internal static TimeSpan? Wait(TimeSpan? timeout, string what)
    {
        if (timeout is not { } value || value == Timeout.InfiniteTimeSpan)
        {
            return null;
        }

        if (value < TimeSpan.Zero || value > LongestTimeout)
        {
            throw new ArgumentOutOfRangeException(
                nameof(timeout),
                value,
                $"The timeout to acquire {what} is {value}; it must be Timeout.InfiniteTimeSpan (wait without limit), "
                + $"or between {TimeSpan.Zero} (try once) and {LongestTimeout} (int.MaxValue milliseconds), as for any IDistributedLock.");
        }

        return value;
    }

    /// <summary>A hold, or null when none was granted within <paramref name="wait"/> (never null when <paramref name="wait"/> is null).</summary>
    internal static async ValueTask<GaggleDistributedLockHandle?> TryAcquireAsync(GaggleLocks locks, string name, int maxCount, TimeSpan? wait, CancellationToken cancellationToken)
    {
        var hold = (maxCount, wait) switch
        {
            // Without a limit Gaggle's Acquire is the call: its TryAcquire always has one.
            (1, null) => await locks.AcquireAsync(name, null, cancellationToken).ConfigureAwait(false),
            (1, { } limit) => await locks.TryAcquireAsync(name, limit, cancellationToken).ConfigureAwait(false),
            (_, null) => await locks.AcquireSemaphoreAsync(name, maxCount, null, cancellationToken).ConfigureAwait(false),
            (_, { } limit) => await locks.TryAcquireSemaphoreAsync(name, maxCount, limit, cancellationToken).ConfigureAwait(false),
        };
        return hold is null ? null : new GaggleDistributedLockHandle(hold);
    }

    /// <summary>A hold; <see cref="TimeoutException"/> (Gaggle's, naming the lock, the node and the wait) when none was granted within <paramref name="wait"/>.</summary>
    internal static async ValueTask<GaggleDistributedLockHandle> AcquireAsync(GaggleLocks locks, string name, int maxCount, TimeSpan? wait, CancellationToken cancellationToken)
    {
        var hold = maxCount == 1
            ? await locks.AcquireAsync(name, wait, cancellationToken).ConfigureAwait(false)
            : await locks.AcquireSemaphoreAsync(name, maxCount, wait, cancellationToken).ConfigureAwait(false);
        return new GaggleDistributedLockHandle(hold);
    }

    /// <summary>A read or write hold of a reader-writer lock, or null when none was granted within <paramref name="wait"/> (never null when <paramref name="wait"/> is null).</summary>
    internal static async ValueTask<GaggleDistributedLockHandle?> TryAcquireReaderWriterAsync(GaggleLocks locks, string name, bool write, TimeSpan? wait, CancellationToken cancellationToken)
    {
        var hold = (write, wait) switch
        {
            (false, null) => await locks.AcquireReadAsync(name, null, cancellationToken).ConfigureAwait(false),
            (false, { } limit) => await locks.TryAcquireReadAsync(name, limit, cancellationToken).ConfigureAwait(false),
            (true, null) => await locks.AcquireWriteAsync(name, null, cancellationToken).ConfigureAwait(false),
            (true, { } limit) => await locks.TryAcquireWriteAsync(name, limit, cancellationToken).ConfigureAwait(false),
        };
        return hold is null ? null : new GaggleDistributedLockHandle(hold);
    }

    /// <summary>A read or write hold; <see cref="TimeoutException"/> (Gaggle's) when none was granted within <paramref name="wait"/>.</summary>
    internal static async ValueTask<GaggleDistributedLockHandle> AcquireReaderWriterAsync(GaggleLocks locks, string name, bool write, TimeSpan? wait, CancellationToken cancellationToken)
        => new(write
            ? await locks.AcquireWriteAsync(name, wait, cancellationToken).ConfigureAwait(false)
            : await locks.AcquireReadAsync(name, wait, cancellationToken).ConfigureAwait(false));

    /// <summary>The typed hold as the interface's; the caller has validated its arguments already (they throw at the call, not from the task).</summary>
    internal static async ValueTask<IDistributedSynchronizationHandle?> AsInterfaceOrNull(ValueTask<GaggleDistributedLockHandle?> acquire)
        => await acquire.ConfigureAwait(false);

    /// <inheritdoc cref="AsInterfaceOrNull"/>
    internal static async ValueTask<IDistributedSynchronizationHandle> AsInterface(ValueTask<GaggleDistributedLockHandle> acquire)
        => await acquire.ConfigureAwait(false);

    /// <summary>
    /// Blocks on an asynchronous call. The call starts on the thread pool, so its continuations never
    /// need the caller's <see cref="SynchronizationContext"/> (a UI or classic ASP.NET context blocked
    /// here would deadlock otherwise); exceptions come out unwrapped, as from an await. While a pool
    /// thread blocks here, another is kept in reserve for it (<see cref="ThreadPoolReserve"/>), so that
    /// callers blocked at once do not starve the work they wait for.
    /// </summary>
    internal static T Block<T>(Func<ValueTask<T>> call)
    {
        // A thread of the caller's own takes nothing from the pool by blocking.
        bool reserve = Thread.CurrentThread.IsThreadPoolThread;
        if (reserve)
        {
            ThreadPoolReserve.Enter();
        }

        try
        {
            return Task.Run(() => call().AsTask()).GetAwaiter().GetResult();
        }
        finally
        {
            if (reserve)
            {
                ThreadPoolReserve.Leave();
            }
        }
    }

    /// <inheritdoc cref="Block{T}(Func{ValueTask{T}})"/>
    internal static void Block(Func<ValueTask> call) => Block(async () =>
    {
        await call().ConfigureAwait(false);
        return true;
    });

    /// <summary>Checks a lock or semaphore name against the lock table's rule (1 to 256 characters), when the object is made rather than at the first acquire.</summary>
    internal static string ValidName(string name, string kind)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is < 1 or > 256)
        {
            throw new ArgumentException($"The {kind} name '{name}' has {name.Length} characters; Gaggle's lock names must have 1 to 256.", nameof(name));
        }

        return name;
    }
}
