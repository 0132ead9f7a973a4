using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// A hold of a Gaggle lock, semaphore slot or reader-writer lock taken through DistributedLock.Core's interfaces: dispose
/// it to release (<see cref="Dispose"/> and <see cref="DisposeAsync"/> are idempotent, and either may
/// follow the other). Beyond <see cref="IDistributedSynchronizationHandle"/> it carries the grant's
/// <see cref="FencingToken"/>.
/// </summary>
/// <example>
/// <code>
/// await using var handle = await provider.AcquireLockAsync("invoice:42");
/// long fence = ((GaggleDistributedLockHandle)handle).FencingToken;
/// </code>
/// </example>
public sealed class GaggleDistributedLockHandle : IDistributedSynchronizationHandle
{
    private readonly GaggleLockHandle _hold;
    private int _disposed;

    internal GaggleDistributedLockHandle(GaggleLockHandle hold)
    {
        _hold = hold;
    }

    /// <summary>The lock's or semaphore's name.</summary>
    public string Name => _hold.Name;

    /// <summary>
    /// Strictly increases with every grant of this lock (per name); give it to the resource the lock
    /// protects and let the resource refuse a token lower than the highest it accepted, so a holder
    /// paused past its lease cannot overwrite the next holder's work.
    /// </summary>
    public long FencingToken => _hold.FencingToken;

    /// <summary>
    /// Cancelled as soon as the hold can no longer be trusted: the lease expired in the lock table,
    /// renewals failed until the safety margin, the node stopped, or the handle was disposed (see
    /// <see cref="GaggleLockHandle.HandleLostToken"/>). Always cancelable; still readable after dispose.
    /// </summary>
    public CancellationToken HandleLostToken => _hold.HandleLostToken;

    /// <summary>Releases the hold; waits for the release's commit (bounded: if it cannot commit, the lease ends the hold). Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Acquisition.Block(_hold.DisposeAsync);
        }
    }

    /// <summary>Releases the hold; completes once the release is committed (bounded: if it cannot commit, the lease ends the hold). Idempotent.</summary>
    /// <returns>The release.</returns>
    public ValueTask DisposeAsync()
        => Interlocked.Exchange(ref _disposed, 1) == 0 ? _hold.DisposeAsync() : ValueTask.CompletedTask;
}
