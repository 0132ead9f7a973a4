namespace Gaggle.Locks;

/// <summary>
/// A hold of a lock, a semaphore slot, or a reader-writer lock for reading or writing. It IS the lock: dispose it to release (idempotent). While it
/// lives its lease is renewed automatically.
/// </summary>
/// <remarks>
/// <see cref="HandleLostToken"/> is cancelled as soon as the holder can no longer trust the hold:
/// the lease expired in the lock table, renewals failed until the safety margin (10% of the lease,
/// covering clock-rate drift between nodes), the node stopped, or the handle was disposed. Guard
/// writes with <see cref="FencingToken"/>: a resource that remembers the highest token it accepted
/// and refuses lower ones stays safe even against a holder paused past its lease.
/// </remarks>
public sealed class GaggleLockHandle : IAsyncDisposable
{
    private readonly GaggleLocks _locks;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stopRenewing = new();
    private readonly Task _renewal;
    private long _safeUntil;
    private int _disposed;

    internal GaggleLockHandle(GaggleLocks locks, string name, LockHoldKind kind, int maxCount, long token, long requestedAt)
    {
        _locks = locks;
        Name = name;
        Kind = kind;
        MaxCount = maxCount;
        FencingToken = token;
        _safeUntil = SafeUntil(requestedAt);
        _locks.Node.WatchHold(name, token, OnHoldEnded);

        // Runs here up to its first wait: the renewal's timer is set before the handle is returned.
        _renewal = RenewLoopAsync();

        // Tracked once complete: a node that stops releases what it tracks, and may begin to at any time.
        _locks.Track(this);
    }

    /// <summary>The lock's name.</summary>
    public string Name { get; }

    /// <summary>1 for a mutex; the semaphore's slot count; 0 for a reader-writer lock.</summary>
    public int MaxCount { get; }

    /// <summary>What this hold is: of a mutex, a semaphore slot, or a reader-writer lock for reading or for writing.</summary>
    public LockHoldKind Kind { get; }

    /// <summary>Strictly increases with every grant of this lock; pass it to the resource the lock protects.</summary>
    public long FencingToken { get; }

    /// <summary>Cancelled when the hold can no longer be trusted (see the type's remarks).</summary>
    public CancellationToken HandleLostToken => _lost.Token;

    /// <summary>Releases the hold (best effort: if the release cannot be committed, the lease expires). Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        using var activity = Runtime.GaggleTracing.Source.StartActivity("gaggle.lock.release");
        activity?.SetTag(Runtime.GaggleTracing.NodeTag, _locks.Node.Id).SetTag("gaggle.lock.name", Name).SetTag("gaggle.lock.fencing_token", FencingToken);
        await _stopRenewing.CancelAsync().ConfigureAwait(false);
        await _renewal.ConfigureAwait(false);
        MarkLost();
        _locks.Node.UnwatchHold(Name, FencingToken);
        await _locks.ReleaseAbandonedAsync(Name, FencingToken).ConfigureAwait(false);
        _locks.Untrack(this);
    }

    private TimeProvider Time => _locks.Node.TimeProvider;

    /// <summary>The local deadline (timestamp) after which a lease renewed by a command sent at <paramref name="sentAt"/> may have expired.</summary>
    private long SafeUntil(long sentAt) => sentAt + (long)(_locks.Lease.TotalSeconds * 0.9 * Time.TimestampFrequency);

    private async Task RenewLoopAsync()
    {
        // Renewals belong to no caller's trace (the acquire's span has ended); the caller's own context is unchanged.
        System.Diagnostics.Activity.Current = null;
        var interval = _locks.Lease / 3;
        var token = _stopRenewing.Token;
        var node = _locks.Node;
        Runtime.PendingAppend? answered = null;
        try
        {
            while (!token.IsCancellationRequested && !_lost.IsCancellationRequested)
            {
                var untilUnsafe = Time.GetElapsedTime(Time.GetTimestamp(), Volatile.Read(ref _safeUntil));
                var due = DueAsync(untilUnsafe < interval ? untilUnsafe : interval, token);
                if (answered is not null)
                {
                    // The next timer is set: what the last renewal's answer leads to has happened.
                    node.RenewalResumed(answered);
                    answered = null;
                }

                if (!await due.ConfigureAwait(false))
                {
                    return;
                }

                Task renewing;
                long sentAt;
                try
                {
                    if (Time.GetTimestamp() >= Volatile.Read(ref _safeUntil))
                    {
                        MarkLost();
                        return;
                    }

                    sentAt = Time.GetTimestamp();
                    var remaining = Time.GetElapsedTime(sentAt, Volatile.Read(ref _safeUntil));
                    var renew = new LockCommand(LockCommandType.Renew, Name, Token: FencingToken, LeaseMs: (long)_locks.Lease.TotalMilliseconds);
                    renewing = node.AppendRenewalAsync(renew, remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, token, out var pending);
                    answered = pending;
                }
                finally
                {
                    // Posted (or stopped): the rest happens as the loop answers.
                    node.RenewalHandled();
                }

                try
                {
                    await renewing.ConfigureAwait(false);
                    if (!_lost.IsCancellationRequested)
                    {
                        // Committed and applied here without an Expired event: the lease now runs from the leader's stamp, after sentAt.
                        Volatile.Write(ref _safeUntil, Math.Max(Volatile.Read(ref _safeUntil), SafeUntil(sentAt)));
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (Exception e) when (e is TimeoutException)
                {
                    // Try again; the safety deadline decides when to give up.
                }
                catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
                {
                    MarkLost();
                    return;
                }
            }
        }
        finally
        {
            if (answered is not null)
            {
                node.RenewalResumed(answered);
            }
        }
    }

    /// <summary>
    /// Waits <paramref name="delay"/> on the node's clock: true when the renewal is due, false when
    /// renewing stopped first. From the moment it is due, the renewal counts as the node's off-loop work
    /// (<see cref="GaggleNode.RenewalDue"/>) until the caller posted its append: a manual clock moves on
    /// only once it did, so it renews at the time it was due whatever the machine's load.
    /// </summary>
    private Task<bool> DueAsync(TimeSpan delay, CancellationToken token)
    {
        var node = _locks.Node;
        if (token.IsCancellationRequested)
        {
            return Task.FromResult(false);
        }

        if (delay <= TimeSpan.Zero)
        {
            node.RenewalDue();
            return Task.FromResult(true);
        }

        return WaitAsync();

        async Task<bool> WaitAsync()
        {
            var due = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var timer = Time.CreateTimer(
                static state =>
                {
                    var (node, due) = ((GaggleNode, TaskCompletionSource<bool>))state!;
                    node.RenewalDue();
                    if (!due.TrySetResult(true))
                    {
                        node.RenewalHandled();
                    }
                },
                (node, due),
                delay,
                Timeout.InfiniteTimeSpan);
            await using var stop = token.UnsafeRegister(static state => ((TaskCompletionSource<bool>)state!).TrySetResult(false), due);
            return await due.Task.ConfigureAwait(false);
        }
    }

    private void OnHoldEnded() => MarkLost();

    private void MarkLost()
    {
        if (!_lost.IsCancellationRequested)
        {
            // Callbacks registered by the holder must not run on the node's loop.
            ThreadPool.QueueUserWorkItem(static state => ((CancellationTokenSource)state!).Cancel(), _lost);
        }
    }
}
