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
public sealed class GaggleLocks
{
    /// <summary>A wait without timeout still ends after this long on the lock table's side, so an abandoned request cannot block a queue forever.</summary>
    private static readonly TimeSpan LongestWait = TimeSpan.FromDays(365);

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
    /// <exception cref="InvalidOperationException">The name is held or waited for as a mutex or semaphore.</exception>
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
    /// <exception cref="InvalidOperationException">The name is held or waited for as a mutex or semaphore.</exception>
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
            }, timeout, cancellationToken).ConfigureAwait(false);
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

    private async Task<GaggleLockHandle?> AcquireCoreAsync(string name, LockHoldKind kind, int maxCount, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        ValidateName(name);
        if (kind is LockHoldKind.Mutex or LockHoldKind.SemaphoreSlot && maxCount is < 1 or > 100_000)
        {
            throw new ArgumentOutOfRangeException(nameof(maxCount), maxCount, "maxCount must be between 1 and 100000.");
        }

        if (timeout is { } t && (t < TimeSpan.Zero || t > LongestWait))
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), t, "The timeout must be between zero (try once) and 365 days, or null to wait without limit.");
        }

        if (kind == LockHoldKind.SemaphoreSlot && maxCount == 1)
        {
            // A semaphore of one slot is the mutex of that name (the lock table knows only the count).
            kind = LockHoldKind.Mutex;
        }

        using var activity = GaggleTracing.Source.StartActivity("gaggle.lock.acquire");
        activity?.SetTag(GaggleTracing.NodeTag, _node.Id).SetTag("gaggle.lock.name", name).SetTag("gaggle.lock.kind", KindTag(kind));
        if (kind == LockHoldKind.SemaphoreSlot)
        {
            activity?.SetTag("gaggle.lock.max_count", maxCount);
        }

        var outcome = new TaskCompletionSource<LockEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        var renewed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        long sequence = _node.NextSequence();
        long sentAt = _time.GetTimestamp();
        // Zero means "try once": the table answers at once, but the answer still needs a commit.
        using var deadline = timeout is { } limit ? new CancellationTokenSource(limit == TimeSpan.Zero ? _settle : limit, _time) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        try
        {
            long waitMs = (long)(timeout ?? LongestWait).TotalMilliseconds;
            var type = kind switch
            {
                LockHoldKind.Read => LockCommandType.AcquireRead,
                LockHoldKind.Write => LockCommandType.AcquireWrite,
                _ => LockCommandType.Acquire,
            };
            var command = new LockCommand(type, name, maxCount, (long)_lease.TotalMilliseconds, waitMs);
            await _node.AppendLockRequestAsync(sequence, command, e =>
            {
                if (e.Type is LockEventType.Granted or LockEventType.Denied or LockEventType.Rejected)
                {
                    outcome.TrySetResult(e);
                }
                else if (e.Type == LockEventType.Renewed)
                {
                    renewed.TrySetResult();
                }
            }, null, linked.Token).ConfigureAwait(false);
            var result = await outcome.Task.WaitAsync(linked.Token).ConfigureAwait(false);
            double waitedMs = _time.GetElapsedTime(sentAt).TotalMilliseconds;
            GaggleMetrics.LockWait.Record(waitedMs, new KeyValuePair<string, object?>("gaggle.node", _node.Id));
            activity?.SetTag("gaggle.lock.outcome", result.Type switch { LockEventType.Granted => "granted", LockEventType.Denied => "denied", _ => "rejected" })
                .SetTag("gaggle.lock.wait_ms", waitedMs);
            if (result.Type == LockEventType.Granted)
            {
                activity?.SetTag("gaggle.lock.fencing_token", result.Token);
            }

            return result.Type switch
            {
                LockEventType.Granted => new GaggleLockHandle(this, name, kind, maxCount, result.Token, await TrustedSinceAsync(name, result.Token, sentAt, renewed.Task, linked.Token).ConfigureAwait(false)),
                LockEventType.Denied => null,
                _ => throw Refused(activity, result.Reason),
            };
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            activity?.SetTag("gaggle.lock.outcome", "timed_out");
            _node.GiveUpLockRequest(sequence, name);
            return null;
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested && e.CancellationToken != cancellationToken)
        {
            // The wait was on a token linked to the caller's: the caller's own token says it was theirs.
            activity?.SetTag("gaggle.lock.outcome", "cancelled");
            _node.GiveUpLockRequest(sequence, name);
            throw new OperationCanceledException($"The acquire of '{name}' on node '{_node.Id}' was cancelled; the request was withdrawn.", e, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            activity?.SetTag("gaggle.lock.outcome", "cancelled");
            _node.GiveUpLockRequest(sequence, name);
            throw;
        }
        catch (InvalidOperationException e) when (!outcome.Task.IsCompleted || outcome.Task.Result.Type == LockEventType.Granted)
        {
            GaggleTracing.Fail(activity, e);
            // The request's outcome is unknown (its node was removed and added again, or started over),
            // or it was granted but the renewal that confirms the hold was given up: a grant it got, or
            // gets later, is released rather than left to its lease.
            _node.GiveUpLockRequest(sequence, name);
            throw;
        }
        finally
        {
            _node.UnwatchLockRequest(sequence);
        }
    }

    /// <summary>
    /// When the hold is known to have been alive from, for its safe deadline: the request's send time,
    /// unless the wait used up a renewal interval of the lease or more. Then a renewal is committed
    /// first and its send time counts, so a grant after a long wait is not handed out already past (or
    /// close to) its safe deadline. The Renewed event arrives before the renewal's commit completes;
    /// without it the hold had ended, and the handle starts out lost.
    /// </summary>
    private async Task<long> TrustedSinceAsync(string name, long token, long sentAt, Task renewed, CancellationToken cancellationToken)
    {
        if (_time.GetElapsedTime(sentAt) < _lease / 3)
        {
            return sentAt;
        }

        long renewedAt = _time.GetTimestamp();
        await _node.AppendLockCommandAsync(new LockCommand(LockCommandType.Renew, name, Token: token, LeaseMs: (long)_lease.TotalMilliseconds), null, cancellationToken).ConfigureAwait(false);
        return renewed.IsCompleted ? renewedAt : sentAt;
    }

    /// <summary>The error of an acquire that got no grant: its wait ran out, or (without a timeout) the lock table denied it.</summary>
    private TimeoutException NotGranted(string what, TimeSpan? timeout) => new(timeout is { } limit
        ? $"{what} to node '{_node.Id}' within {limit.TotalMilliseconds:0} ms."
        : $"{what} to node '{_node.Id}': the lock table ended its wait (a request whose outcome was settled while its node caught up from a snapshot).");

    private static InvalidOperationException Refused(System.Diagnostics.Activity? activity, string? reason)
    {
        var error = new InvalidOperationException(reason);
        GaggleTracing.Fail(activity, error);
        return error;
    }

    private static string KindTag(LockHoldKind kind) => kind switch
    {
        LockHoldKind.Mutex => "mutex",
        LockHoldKind.SemaphoreSlot => "semaphore",
        LockHoldKind.Read => "read",
        _ => "write",
    };

    private static void ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is < 1 or > 256)
        {
            throw new ArgumentException($"The lock name '{name}' has {name.Length} characters; it must have 1 to 256.", nameof(name));
        }
    }
}
