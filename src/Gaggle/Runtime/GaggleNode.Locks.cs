using Gaggle.Locks;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>
/// The lock API's way into the node: lock requests appended with their outcome watched, holds watched
/// (the callbacks live in <see cref="LockCallers"/>), and reads of this node's lock table. What a
/// lock event means (a grant nobody wants is released, ...) is the driver's decision.
/// </summary>
public sealed partial class GaggleNode
{
    private readonly LockCallers _lockCallers = new();
    private GaggleLocks? _locks;

    /// <summary>Cluster-wide locks and semaphores with fencing tokens, granted through this node's log.</summary>
    public GaggleLocks Locks => _locks ??= new GaggleLocks(this, _time, _options.LockLeaseDuration, _options.ElectionTimeoutMax);

    internal TimeProvider TimeProvider => _time;

    private int _renewalsDue;

    /// <summary>A hold's renewal fell due: counted in <see cref="OffLoopWorkPending"/> until <see cref="RenewalHandled"/>.</summary>
    internal void RenewalDue() => Interlocked.Increment(ref _renewalsDue);

    /// <summary>A renewal that fell due has posted its append, or stopped.</summary>
    internal void RenewalHandled() => Interlocked.Decrement(ref _renewalsDue);

    /// <summary>
    /// Appends a hold's renewal (<paramref name="pending"/> is its append), which counts in
    /// <see cref="OffLoopWorkPending"/> from the loop's answer until the caller reports it resumed
    /// (<see cref="RenewalResumed"/>), once it has set its next timer.
    /// </summary>
    internal Task<long> AppendRenewalAsync(LockCommand command, TimeSpan timeout, CancellationToken cancellationToken, out PendingAppend pending)
    {
        long sequence = NextSequence();
        pending = new PendingAppend(sequence, LockEnvelope(sequence, command))
        {
            Timeout = timeout,
            DeadlineUs = DeadlineAfter(NowUs(), timeout),
            CallerResumes = true,
        };
        return WaitForCommitAsync(pending, cancellationToken);
    }

    /// <summary>The caller of renewal <paramref name="pending"/> resumed (see <see cref="AppendRenewalAsync"/>).</summary>
    internal void RenewalResumed(PendingAppend pending) => _appendCallers.Resumed(pending);

    /// <summary>Lock requests of this node still waiting for their answer.</summary>
    internal int WatchedLockRequests => _lockCallers.WatchedRequests;

    /// <summary>
    /// Appends lock request <paramref name="sequence"/> and hands every event answering it to
    /// <paramref name="onEvent"/> (on the loop) until <see cref="UnwatchLockRequest"/> or <see cref="GiveUpLockRequest"/>;
    /// <paramref name="onFailed"/> gets the error instead when no event can come any more (the node stopped or started over).
    /// </summary>
    internal Task<long> AppendLockRequestAsync(long sequence, LockCommand command, Action<LockEvent> onEvent, Action<Exception> onFailed, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        _lockCallers.Watch(sequence, onEvent, onFailed);
        return AppendEnvelopeAsync(sequence, LockEnvelope(sequence, command), timeout, cancellationToken, watchedLockParts: Math.Max(1, command.Parts.Count),
            watchedLockName: command.Parts.Count > 0 ? command.Parts[0].Name : command.Name);
    }

    /// <summary>Appends a lock command whose outcome nobody waits for (a release, a renewal).</summary>
    internal Task<long> AppendLockCommandAsync(LockCommand command, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        long sequence = NextSequence();
        return AppendEnvelopeAsync(sequence, LockEnvelope(sequence, command), timeout, cancellationToken);
    }

    /// <summary>The caller took the outcome of its request: no more events for it.</summary>
    internal void UnwatchLockRequest(long sequence)
    {
        if (_lockCallers.Unwatch(sequence))
        {
            PostUnwatch(sequence);
        }
    }

    /// <summary>The caller stopped waiting without an outcome: the driver cancels the wait, or releases a grant it got or gets later.</summary>
    internal void GiveUpLockRequest(long sequence, string name)
    {
        _lockCallers.Unwatch(sequence);
        _inbox.TryWrite(new ActionInput(driver => driver.GiveUpLockRequest(sequence, name)));
    }

    /// <summary>
    /// Registers a callback for the end of the hold <paramref name="token"/> of lock <paramref name="name"/>
    /// (expired or released) in the lock table. Tokens are per lock: two locks granted in one entry share one.
    /// </summary>
    internal void WatchHold(string name, long token, Action onEnded)
    {
        _lockCallers.WatchHold(name, token, onEnded);
        _inbox.TryWrite(new ActionInput(driver => driver.WatchHold(name, token)), LoopWake.Later);
    }

    internal void UnwatchHold(string name, long token)
    {
        if (_lockCallers.UnwatchHold(name, token))
        {
            PostUnwatchHold(name, token);
        }
    }

    /// <summary>
    /// This node's applied view of lock <paramref name="name"/>, read on the loop: no log entry, and
    /// possibly stale (it trails the leader by replication, arbitrarily on a node cut off from it).
    /// </summary>
    internal async Task<LockInfo> PeekLockAsync(string name, CancellationToken cancellationToken)
    {
        var result = new TaskCompletionSource<LockInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        // A loop that fails before taking it abandons it: the read gets the fatal error (see LoopInbox).
        Post(ActionInput.Reading(driver => driver.PeekLock(name), result));
        return await result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    // Posts in methods of their own: a lambda's closure is allocated where its captured variables
    // come into scope, so inline it would cost every call, not only those that post.
    private void PostUnwatch(long sequence) => _inbox.TryWrite(new ActionInput(driver => driver.UnwatchLockRequest(sequence)), LoopWake.Later);

    private void PostUnwatchHold(string name, long token) => _inbox.TryWrite(new ActionInput(driver => driver.UnwatchHold(name, token)), LoopWake.Later);

    private byte[] LockEnvelope(long sequence, LockCommand command)
        => new EntryEnvelope(EntryPayloadKind.Lock, 0, Id, _incarnation, sequence, command.Encode()).Encode();
}
