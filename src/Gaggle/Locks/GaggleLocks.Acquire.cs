using System.Diagnostics;
using Gaggle.Runtime;

namespace Gaggle.Locks;

/// <summary>How an acquire runs: one request in the log for one lock or a set of them, its outcome, and the holds it makes.</summary>
public sealed partial class GaggleLocks
{
    /// <summary>Acquires one lock; bad arguments fail the returned task, as for any async API, not the call.</summary>
    private Task<GaggleLockHandle?> AcquireCoreAsync(string name, LockHoldKind kind, int maxCount, TimeSpan? timeout, CancellationToken cancellationToken)
        => AcquireSetAsync([GaggleLockRequest.Unchecked(name, kind, maxCount)], timeout, cancellationToken, setHolds: null);

    /// <summary>Validates <paramref name="locks"/> for a multi-lock acquisition: 1 to 64 locks, each valid, no name twice.</summary>
    private static GaggleLockRequest[] ValidateSet(IEnumerable<GaggleLockRequest> locks)
    {
        ArgumentNullException.ThrowIfNull(locks);
        var set = locks.ToArray();
        if (set.Length is < 1 or > LockCommand.MaxParts)
        {
            throw new ArgumentException($"A multi-lock acquisition names {set.Length} locks; it must name 1 to {LockCommand.MaxParts}.", nameof(locks));
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var request in set)
        {
            ValidateRequest(request, nameof(locks));
            if (!names.Add(request.Name))
            {
                throw new ArgumentException($"A multi-lock acquisition names the lock '{request.Name}' twice; each lock may be taken once.", nameof(locks));
            }
        }

        return set;
    }

    private static void ValidateRequest(GaggleLockRequest request, string parameter)
    {
        if (request.Name is null)
        {
            throw new ArgumentException("A lock request has no name: make it with GaggleLockRequest.Mutex, Semaphore, Read or Write.", parameter);
        }

        if (request.Name.Length is < 1 or > 256)
        {
            throw new ArgumentException($"The lock name '{request.Name}' has {request.Name.Length} characters; it must have 1 to 256.", parameter);
        }

        if (request.Kind is LockHoldKind.Mutex or LockHoldKind.SemaphoreSlot && request.MaxCount is < 1 or > 100_000)
        {
            throw new ArgumentOutOfRangeException(parameter == "name" ? "maxCount" : parameter, request.MaxCount, $"maxCount of '{request.Name}' must be between 1 and 100000.");
        }
    }

    /// <summary>
    /// Takes every lock of <paramref name="locks"/> with one request in the log (one lock: a plain
    /// acquire; several: <see cref="LockCommandType.AcquireAll"/>, granted all in one entry or not at all).
    /// Returns the first hold, the others (all of them, in the order asked for) in <paramref name="setHolds"/>
    /// when given; null when the wait ran out or a try was denied. One lock without <paramref name="setHolds"/>
    /// is validated here (a set was, by the caller).
    /// </summary>
    private async Task<GaggleLockHandle?> AcquireSetAsync(GaggleLockRequest[] locks, TimeSpan? timeout, CancellationToken cancellationToken, GaggleLockHandle[]? setHolds)
    {
        if (setHolds is null)
        {
            ValidateName(locks[0].Name);
            ValidateRequest(locks[0], "name");
        }

        if (timeout is { } t && (t < TimeSpan.Zero || t > LongestWait))
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), t, "The timeout must be between zero (try once) and 365 days, or null to wait without limit.");
        }

        _node.ThrowIfClosing();
        string name = locks[0].Name;
        using var activity = GaggleTracing.Source.StartActivity("gaggle.lock.acquire");
        if (activity is not null)
        {
            // One lock: its name and kind; several: arrays of them, in the order asked for.
            activity.SetTag(GaggleTracing.NodeTag, _node.Id)
                .SetTag("gaggle.lock.name", locks.Length == 1 ? name : locks.Select(l => l.Name).ToArray())
                .SetTag("gaggle.lock.kind", locks.Length == 1 ? KindTag(locks[0].Kind) : locks.Select(l => KindTag(l.Kind)).ToArray());
            if (locks.Length == 1 && locks[0].Kind == LockHoldKind.SemaphoreSlot)
            {
                activity.SetTag("gaggle.lock.max_count", locks[0].MaxCount);
            }
        }

        var outcome = new TaskCompletionSource<LockEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        var renewed = new TaskCompletionSource[locks.Length];
        for (int i = 0; i < renewed.Length; i++)
        {
            renewed[i] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        // Written on the node's loop; read once the outcome is set. All grants of a set come in one entry.
        var grants = new LockEvent?[locks.Length];
        int granted = 0;
        long sequence = _node.NextSequence();
        long sentAt = _time.GetTimestamp();
        // Zero means "try once": the table answers at once, but the answer still needs a commit. A wait
        // longer than a timer can run (about 49.7 days) is ended by the table instead: its deadline is the
        // request's wait, and the denial it logs then comes here like any other.
        using var deadline = timeout is { } limit && limit <= LongestTimer ? new CancellationTokenSource(limit == TimeSpan.Zero ? _settle : limit, _time) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        try
        {
            await _node.AppendLockRequestAsync(sequence, Command(locks, (long)(timeout ?? LongestWait).TotalMilliseconds), e =>
            {
                if (e.Type == LockEventType.Granted)
                {
                    int at = IndexOf(locks, e.Name);
                    if (at >= 0 && grants[at] is null)
                    {
                        grants[at] = e;
                        if (++granted == locks.Length)
                        {
                            outcome.TrySetResult(e);
                        }
                    }
                }
                else if (e.Type is LockEventType.Denied or LockEventType.Rejected)
                {
                    outcome.TrySetResult(e);
                }
                else if (e.Type == LockEventType.Renewed && IndexOf(locks, e.Name) is var renewedAt and >= 0)
                {
                    renewed[renewedAt].TrySetResult();
                }
            }, error => outcome.TrySetException(error), null, linked.Token).ConfigureAwait(false);
            var result = await outcome.Task.WaitAsync(linked.Token).ConfigureAwait(false);
            double waitedMs = _time.GetElapsedTime(sentAt).TotalMilliseconds;
            GaggleMetrics.LockWait.Record(waitedMs, new KeyValuePair<string, object?>("gaggle.node", _node.Id));
            activity?.SetTag("gaggle.lock.outcome", result.Type switch { LockEventType.Granted => "granted", LockEventType.Denied => "denied", _ => "rejected" })
                .SetTag("gaggle.lock.wait_ms", waitedMs);
            if (result.Type == LockEventType.Denied)
            {
                return null;
            }

            if (result.Type != LockEventType.Granted)
            {
                throw Refused(activity, result.Reason);
            }

            // Granted while the node stops: no handle (nothing would release it); the grant is released (see the catch).
            _node.ThrowIfClosing();

            if (locks.Length == 1)
            {
                // The common case, without the set's arrays and tasks.
                var grant = grants[0]!;
                activity?.SetTag("gaggle.lock.fencing_token", grant.Token);
                long trustedSince = await TrustedSinceAsync(name, grant.Token, sentAt, renewed[0].Task, linked.Token).ConfigureAwait(false);
                var hold = new GaggleLockHandle(this, name, locks[0].Kind, locks[0].MaxCount, grant.Token, trustedSince);
                await ReleaseIfClosingAsync([hold]).ConfigureAwait(false);
                if (setHolds is not null)
                {
                    setHolds[0] = hold;
                }

                return hold;
            }

            activity?.SetTag("gaggle.lock.fencing_token", grants.Select(g => g!.Token).ToArray());
            var holds = await HoldsAsync(locks, grants!, sentAt, renewed, linked.Token).ConfigureAwait(false);
            await ReleaseIfClosingAsync(holds).ConfigureAwait(false);
            holds.CopyTo(setHolds!, 0);
            return holds[0];
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
        catch (InvalidOperationException e) when (!outcome.Task.IsCompletedSuccessfully || outcome.Task.Result.Type == LockEventType.Granted)
        {
            GaggleTracing.Fail(activity, e);
            // The request's outcome is unknown (its node was removed and added again, or started over),
            // or it was granted but the renewal that confirms the hold was given up: a grant it got, or
            // gets later, is released rather than left to its lease. Not after the node started over:
            // the new incarnation cannot name the old one's request. If the node was removed, its removal
            // ended that wait (LockTable.GoneNodes.cs); if it was granted before, the grant runs out its lease.
            _node.GiveUpLockRequest(sequence, name);
            throw;
        }
        finally
        {
            _node.UnwatchLockRequest(sequence);
        }
    }

    /// <summary>
    /// The node began to stop while these holds were confirmed (an acquire that waited a third of the
    /// lease confirms its grant with a renewal first): they are released and the acquire fails with
    /// ObjectDisposedException. Made (and tracked) before the check: a stop that began after it
    /// releases them with the node's other holds (it marks itself stopping before it looks).
    /// </summary>
    private async Task ReleaseIfClosingAsync(GaggleLockHandle[] holds)
    {
        try
        {
            _node.ThrowIfClosing();
        }
        catch (ObjectDisposedException)
        {
            await Task.WhenAll(holds.Select(h => h.DisposeAsync().AsTask())).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The lock command asking for <paramref name="locks"/>: a plain acquire of one lock, or all of them at once.</summary>
    private LockCommand Command(GaggleLockRequest[] locks, long waitMs)
    {
        long leaseMs = (long)_lease.TotalMilliseconds;
        if (locks.Length > 1)
        {
            return new LockCommand(LockCommandType.AcquireAll, locks[0].Name, 0, leaseMs, waitMs) { Parts = [.. locks.Select(l => l.ToPart())] };
        }

        var part = locks[0].ToPart();
        return new LockCommand(part.Type, part.Name, part.MaxCount, leaseMs, waitMs);
    }

    /// <summary>The handles of the granted <paramref name="locks"/> (several), each trusted from when its grant is known to have been alive.</summary>
    private async Task<GaggleLockHandle[]> HoldsAsync(GaggleLockRequest[] locks, LockEvent[] grants, long sentAt, TaskCompletionSource[] renewed, CancellationToken cancellationToken)
    {
        var since = await Task.WhenAll(locks.Select((l, i) => TrustedSinceAsync(l.Name, grants[i].Token, sentAt, renewed[i].Task, cancellationToken))).ConfigureAwait(false);

        var holds = new GaggleLockHandle[locks.Length];
        for (int i = 0; i < holds.Length; i++)
        {
            holds[i] = new GaggleLockHandle(this, locks[i].Name, locks[i].Kind, locks[i].MaxCount, grants[i].Token, since[i]);
        }

        return holds;
    }

    private static int IndexOf(GaggleLockRequest[] locks, string name)
    {
        for (int i = 0; i < locks.Length; i++)
        {
            if (string.Equals(locks[i].Name, name, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
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

    private static InvalidOperationException Refused(Activity? activity, string? reason)
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
