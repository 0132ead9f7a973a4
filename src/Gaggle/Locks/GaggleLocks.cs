using Gaggle.Runtime;

namespace Gaggle.Locks;

/// <summary>
/// Cluster-wide locks, semaphores and reader-writer locks. A grant is an entry of the Raft log, so
/// every node agrees who holds what and in which order; each grant carries a fencing token that only
/// goes up. A name is one kind of lock at a time: while it is held or waited for as one kind (a mutex,
/// a semaphore of some slot count, a reader-writer lock), a request for another kind is refused with
/// <see cref="InvalidOperationException"/>.
/// </summary>
/// <remarks>
/// Fencing tokens of a reader-writer lock: every grant, for reading or writing, takes the next token
/// of that lock, so a reader's token sits between the writers' tokens. A writer granted before the
/// reader has a smaller token and had released (or lost) its hold when the reader got it; a writer
/// granted after has a larger one. A resource that remembers the highest writer token it accepted
/// can thus refuse a write, or a read, whose token is smaller: that holder's lease may have run out
/// and a later writer may have changed the data since.
/// </remarks>
/// <example>
/// <code>
/// await using var handle = await node.Locks.AcquireAsync("orders", TimeSpan.FromSeconds(5));
/// await store.WriteAsync(order, fencingToken: handle.FencingToken, handle.HandleLostToken);
/// </code>
/// </example>
public sealed partial class GaggleLocks
{
    /// <summary>A wait without timeout still ends after this long on the lock table's side, so an abandoned request cannot block a queue forever.</summary>
    private static readonly TimeSpan LongestWait = TimeSpan.FromDays(365);

    /// <summary>The longest delay a timer (and so a <see cref="CancellationTokenSource"/>) accepts: 2^32 - 2 ms, about 49.7 days.</summary>
    private static readonly TimeSpan LongestTimer = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private readonly GaggleNode _node;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<GaggleLockHandle, byte> _held = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _lease;
    private readonly TimeSpan _settle;

    /// <param name="node">The node whose log carries the lock table.</param>
    /// <param name="time">The node's clock.</param>
    /// <param name="lease">How long a grant lasts without renewal.</param>
    /// <param name="electionTimeoutMax">Bounds the waits that only need one commit (a try-once, a release, a cancelled wait): long enough to ride out an election, not the whole lease.</param>
    internal GaggleLocks(GaggleNode node, TimeProvider time, TimeSpan lease, TimeSpan electionTimeoutMax)
    {
        _node = node;
        _time = time;
        _lease = lease;
        _settle = TimeSpan.FromTicks(Math.Min(lease.Ticks, 4 * electionTimeoutMax.Ticks));
    }

    /// <summary>Acquires the mutex <paramref name="name"/>, waiting in FIFO order.</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold; dispose it to release.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidOperationException">The name is in use as another kind of lock; or this node was removed from the cluster or started over while the request waited, or its outcome became unknown (the message says which; retry).</exception>
    public async Task<GaggleLockHandle> AcquireAsync(string name, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => await AcquireCoreAsync(name, LockHoldKind.Mutex, 1, timeout, cancellationToken).ConfigureAwait(false)
            ?? throw NotGranted($"The lock '{name}' was not granted", timeout);

    /// <summary>Tries to acquire the mutex <paramref name="name"/>; null when it was not granted within <paramref name="timeout"/> (zero: try once).</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <param name="timeout">How long to wait; <see cref="TimeSpan.Zero"/> tries once.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public Task<GaggleLockHandle?> TryAcquireAsync(string name, TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => AcquireCoreAsync(name, LockHoldKind.Mutex, 1, timeout, cancellationToken);

    /// <summary>Acquires one of <paramref name="maxCount"/> slots of the semaphore <paramref name="name"/>, waiting in FIFO order.</summary>
    /// <param name="name">The semaphore's name (1 to 256 characters); every user must pass the same <paramref name="maxCount"/>.</param>
    /// <param name="maxCount">How many may hold it at once (1 to 100000).</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold; dispose it to release.</returns>
    /// <exception cref="TimeoutException">No slot was granted within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidOperationException">The name is in use as another kind of lock, or with another maxCount; or this node was removed from the cluster or started over while the request waited, or its outcome became unknown (the message says which; retry).</exception>
    public async Task<GaggleLockHandle> AcquireSemaphoreAsync(string name, int maxCount, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => await AcquireCoreAsync(name, LockHoldKind.SemaphoreSlot, maxCount, timeout, cancellationToken).ConfigureAwait(false)
            ?? throw NotGranted($"No slot of the semaphore '{name}' was granted", timeout);

    /// <summary>Tries to acquire one of <paramref name="maxCount"/> slots; null when none was granted within <paramref name="timeout"/>.</summary>
    /// <param name="name">The semaphore's name.</param>
    /// <param name="maxCount">How many may hold it at once (1 to 100000).</param>
    /// <param name="timeout">How long to wait; <see cref="TimeSpan.Zero"/> tries once.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public Task<GaggleLockHandle?> TryAcquireSemaphoreAsync(string name, int maxCount, TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => AcquireCoreAsync(name, LockHoldKind.SemaphoreSlot, maxCount, timeout, cancellationToken);

    /// <summary>
    /// Acquires the reader-writer lock <paramref name="name"/> for reading, shared with other readers,
    /// waiting in FIFO order: a reader that comes while a writer waits queues behind it, so writers do
    /// not starve.
    /// </summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold (<see cref="LockHoldKind.Read"/>); dispose it to release.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidOperationException">The name is held or waited for as a mutex or semaphore; or this node was removed from the cluster or started over while the request waited, or its outcome became unknown (the message says which; retry).</exception>
    public async Task<GaggleLockHandle> AcquireReadAsync(string name, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => await AcquireCoreAsync(name, LockHoldKind.Read, 0, timeout, cancellationToken).ConfigureAwait(false)
            ?? throw NotGranted($"The reader-writer lock '{name}' was not granted for reading", timeout);

    /// <summary>Tries to acquire the reader-writer lock <paramref name="name"/> for reading; null when it was not granted within <paramref name="timeout"/> (zero: try once).</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <param name="timeout">How long to wait; <see cref="TimeSpan.Zero"/> tries once.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public Task<GaggleLockHandle?> TryAcquireReadAsync(string name, TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => AcquireCoreAsync(name, LockHoldKind.Read, 0, timeout, cancellationToken);

    /// <summary>Acquires the reader-writer lock <paramref name="name"/> for writing, alone, waiting in FIFO order.</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold (<see cref="LockHoldKind.Write"/>); dispose it to release.</returns>
    /// <exception cref="TimeoutException">The lock was not granted within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidOperationException">The name is held or waited for as a mutex or semaphore; or this node was removed from the cluster or started over while the request waited, or its outcome became unknown (the message says which; retry).</exception>
    /// <remarks>There is no upgrade: a caller that holds the lock for reading and asks for it for writing waits for its own read hold to end.</remarks>
    public async Task<GaggleLockHandle> AcquireWriteAsync(string name, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => await AcquireCoreAsync(name, LockHoldKind.Write, 0, timeout, cancellationToken).ConfigureAwait(false)
            ?? throw NotGranted($"The reader-writer lock '{name}' was not granted for writing", timeout);

    /// <summary>Tries to acquire the reader-writer lock <paramref name="name"/> for writing; null when it was not granted within <paramref name="timeout"/> (zero: try once).</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <param name="timeout">How long to wait; <see cref="TimeSpan.Zero"/> tries once.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The hold, or null.</returns>
    public Task<GaggleLockHandle?> TryAcquireWriteAsync(string name, TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => AcquireCoreAsync(name, LockHoldKind.Write, 0, timeout, cancellationToken);

    /// <summary>
    /// Acquires several locks at once: one request in the log, granted all in one entry or not at all.
    /// It is granted as soon as each lock has room for it and nobody who came before it waits there for
    /// a single lock, before the requests that came after it. While it waits it holds up nobody (a later
    /// request for one of its locks that has room is granted past it), so nothing ever waits for a set:
    /// two callers taking {A, B} and {B, A}, or a caller holding A while it asks for B, never deadlock
    /// with it. Under steady contention on its locks a set can wait long; give it a timeout.
    /// </summary>
    /// <param name="locks">1 to 64 locks (<see cref="GaggleLockRequest.Mutex"/>, <see cref="GaggleLockRequest.Semaphore"/>, <see cref="GaggleLockRequest.Read"/>, <see cref="GaggleLockRequest.Write"/>), each name once.</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The holds, one per lock, all with tokens of the same log entry; dispose it to release them all.</returns>
    /// <exception cref="TimeoutException">The locks were not granted within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidOperationException">One of the names is held or waited for as another kind of lock; or this node was removed from the cluster or started over while the request waited, or its outcome became unknown (the message says which; retry).</exception>
    /// <exception cref="ArgumentException">The set names no lock, more than 64, a lock twice, or an invalid one (in the task).</exception>
    /// <example>
    /// <code>
    /// await using var both = await node.Locks.AcquireAllAsync([GaggleLockRequest.Mutex("account:17"), GaggleLockRequest.Mutex("account:42")]);
    /// await ledger.TransferAsync(17, 42, amount, both["account:17"].FencingToken, both["account:42"].FencingToken);
    /// </code>
    /// </example>
    public async Task<GaggleMultiLockHandle> AcquireAllAsync(IEnumerable<GaggleLockRequest> locks, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var set = ValidateSet(locks);
        return await TryAcquireSetAsync(set, timeout, cancellationToken).ConfigureAwait(false)
            ?? throw NotGranted($"The locks {string.Join(", ", set.Select(l => $"'{l.Name}'"))} were not granted", timeout);
    }

    /// <summary>Tries to acquire several locks at once (see <see cref="AcquireAllAsync"/>); null when they were not granted within <paramref name="timeout"/> (zero: try once).</summary>
    /// <param name="locks">1 to 64 locks, each name once.</param>
    /// <param name="timeout">How long to wait; <see cref="TimeSpan.Zero"/> tries once.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The holds, or null.</returns>
    /// <exception cref="ArgumentException">The set names no lock, more than 64, a lock twice, or an invalid one (in the task).</exception>
    public async Task<GaggleMultiLockHandle?> TryAcquireAllAsync(IEnumerable<GaggleLockRequest> locks, TimeSpan timeout = default, CancellationToken cancellationToken = default)
        => await TryAcquireSetAsync(ValidateSet(locks), timeout, cancellationToken).ConfigureAwait(false);

    private async Task<GaggleMultiLockHandle?> TryAcquireSetAsync(GaggleLockRequest[] set, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var holds = new GaggleLockHandle[set.Length];
        return await AcquireSetAsync(set, timeout, cancellationToken, holds).ConfigureAwait(false) is null ? null : new GaggleMultiLockHandle(holds);
    }

    /// <summary>
    /// Reads a lock's state linearizably: the read is itself an entry of the log, so it reflects every
    /// grant and release committed before it, on whichever node it is called.
    /// </summary>
    /// <param name="name">The lock's name.</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The holders and queue length.</returns>
    public async Task<LockInfo> InspectAsync(string name, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        var result = new TaskCompletionSource<LockInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        long sequence = _node.NextSequence();
        try
        {
            await _node.AppendLockRequestAsync(sequence, new LockCommand(LockCommandType.Inspect, name), e =>
            {
                if (e.Type == LockEventType.Inspected)
                {
                    result.TrySetResult(e.Info!);
                }
                else
                {
                    result.TrySetException(new TimeoutException($"The read of lock '{name}' was applied inside a snapshot this node installed; read again."));
                }
            }, error => result.TrySetException(error), timeout, cancellationToken).ConfigureAwait(false);
            return await result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _node.UnwatchLockRequest(sequence);
        }
    }

    /// <summary>
    /// Reads a lock's state from this node's own copy of the lock table, without a log entry: cheap,
    /// but possibly stale. The copy trails the leader by the time a commit takes to reach this node,
    /// and without limit on a node cut off from the leader; a lease that ran out shows its holder until
    /// the leader's time entry ending it is applied here. Use it to decide whether a linearizable call
    /// (<see cref="TryAcquireAsync"/>, <see cref="InspectAsync"/>) is worth making, never instead of one:
    /// a lock that looks free may be taken, and one that looks held may have been released.
    /// </summary>
    /// <param name="name">The lock's name.</param>
    /// <param name="cancellationToken">Stops waiting for the node's loop.</param>
    /// <returns>The holders and queue length as this node last applied them; <see cref="LockInfo.AsOfIndex"/> is the last log index applied here.</returns>
    public Task<LockInfo> PeekAsync(string name, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        return _node.PeekLockAsync(name, cancellationToken);
    }

    internal TimeSpan Lease => _lease;

    internal void Track(GaggleLockHandle handle) => _held.TryAdd(handle, 0);

    internal void Untrack(GaggleLockHandle handle) => _held.TryRemove(handle, out _);

    /// <summary>Releases every hold this node still has (a node leaving the cluster); each handle's <see cref="GaggleLockHandle.HandleLostToken"/> is cancelled.</summary>
    internal async Task ReleaseAllAsync()
    {
        await Task.WhenAll(_held.Keys.Select(handle => handle.DisposeAsync().AsTask())).ConfigureAwait(false);
    }

    internal GaggleNode Node => _node;

    internal async Task ReleaseAbandonedAsync(string name, long token)
    {
        try
        {
            await _node.AppendLockCommandAsync(new LockCommand(LockCommandType.Release, name, Token: token), _settle, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or ObjectDisposedException or InvalidOperationException)
        {
            // The lease will expire instead.
        }
    }
}
