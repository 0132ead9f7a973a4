using System.Collections.Concurrent;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>The node's side of the replicated lock table: applying commands, the leader's lease clock, time entries.</summary>
public sealed partial class GaggleNode
{
    private readonly LockTable _lockTable = new();
    private readonly ConcurrentDictionary<long, Action<LockEvent>> _lockWaiters = new();
    private readonly ConcurrentDictionary<(string Name, long Token), Action> _holds = new();
    private GaggleLocks? _locks;
    private long _leaseClockBase;
    private long _leaseClockStart;
    private long _lastStamp;
    private long _leaseClockTerm = -1;
    private long _timeEntryInFlightUntilTick = -1;

    /// <summary>Cluster-wide locks and semaphores with fencing tokens, granted through this node's log.</summary>
    public GaggleLocks Locks => _locks ??= new GaggleLocks(this, _time, _options.LockLeaseDuration, _options.ElectionTimeoutMax);

    /// <summary>
    /// The lease clock (milliseconds) a leader stamps into entries: it starts, before the first stamp
    /// of each term this node leads, from the table's time (the highest committed stamp it applied)
    /// and advances with this node's monotonic clock, so a leader with a skewed wall clock can neither
    /// expire leases early nor move time backwards. It never starts from what this node stamped in an
    /// earlier term: those entries may never have committed, and the clock that stamped them ran on
    /// while the leaders after it started from the table's time; resuming it would move time forward
    /// past leases granted since. Time spent without a leader does not count, which only lengthens leases.
    /// </summary>
    private long LeaseClockNow(RaftCore core)
    {
        if (core.Term != _leaseClockTerm)
        {
            _leaseClockTerm = core.Term;
            _leaseClockBase = _lockTable.Now;
            _lastStamp = _lockTable.Now;
            _leaseClockStart = _time.GetTimestamp();
        }

        long elapsed = (long)_time.GetElapsedTime(_leaseClockStart).TotalMilliseconds;
        _lastStamp = Math.Max(_lastStamp, Math.Max(_lockTable.Now, _leaseClockBase + elapsed));
        return _lastStamp;
    }

    /// <summary>
    /// This node's applied view of lock <paramref name="name"/>, read on the loop: no log entry, and
    /// possibly stale (it trails the leader by replication, arbitrarily on a node cut off from it).
    /// </summary>
    internal async Task<LockInfo> PeekLockAsync(string name, CancellationToken cancellationToken)
    {
        var result = new TaskCompletionSource<LockInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new ActionInput(() => result.TrySetResult(_lockTable.Describe(name, _core!.AppliedIndex))));
        // A loop that stops on a fatal error leaves what was queued unread: fail instead of waiting forever.
        await Task.WhenAny(result.Task, _loop).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (!result.Task.IsCompleted)
        {
            ThrowIfStopped();
            throw new ObjectDisposedException(nameof(GaggleNode), $"Gaggle node '{Id}' is stopped.");
        }

        return await result.Task.ConfigureAwait(false);
    }

    /// <summary>Registers a callback for the lock event answering request <paramref name="sequence"/> of this node.</summary>
    internal void WatchLockRequest(long sequence, Action<LockEvent> onEvent) => _lockWaiters[sequence] = onEvent;

    internal void UnwatchLockRequest(long sequence) => _lockWaiters.TryRemove(sequence, out _);

    /// <summary>Lock requests of this node still waiting for their answer.</summary>
    internal int WatchedLockRequests => _lockWaiters.Count;

    /// <summary>
    /// Registers a callback for the end of the hold <paramref name="token"/> of lock <paramref name="name"/>
    /// (expired or released) in the lock table. Tokens are per lock: two locks granted in one entry share one.
    /// </summary>
    internal void WatchHold(string name, long token, Action onEnded) => _holds[(name, token)] = onEnded;

    internal void UnwatchHold(string name, long token) => _holds.TryRemove((name, token), out _);

    internal TimeProvider TimeProvider => _time;

    /// <summary>Every live hold of this node is lost (the node stops).</summary>
    private void LoseAllHolds()
    {
        foreach (var key in _holds.Keys)
        {
            if (_holds.TryRemove(key, out var onEnded))
            {
                onEnded();
            }
        }
    }

    private void ApplyLockCommand(long index, EntryEnvelope envelope)
    {
        if (LockCommand.TryDecode(envelope.Payload) is not { } command)
        {
            CountDropped(envelope.Origin, $"entry {index} holds a malformed lock command");
            return;
        }

        _lockTable.Apply(command, new RequestId(envelope.Origin, envelope.Incarnation, envelope.Sequence), envelope.Stamp, index);
        if (command.Type == LockCommandType.Time && envelope.Origin == Id)
        {
            _timeEntryInFlightUntilTick = -1;
        }

        foreach (var lockEvent in _lockTable.TakeEvents())
        {
            if (lockEvent.Request.Node == Id && lockEvent.Request.Incarnation == _incarnation)
            {
                OnOwnLockEvent(lockEvent);
            }
        }
    }

    private void OnOwnLockEvent(LockEvent lockEvent)
    {
        if (lockEvent.Type is LockEventType.Expired or LockEventType.Released && _holds.TryRemove((lockEvent.Name, lockEvent.Token), out var ended))
        {
            ended();
        }

        if (_lockWaiters.TryGetValue(lockEvent.Request.Sequence, out var onEvent))
        {
            onEvent(lockEvent);
        }
        else if (lockEvent.Type == LockEventType.Granted)
        {
            // Nobody waits for this grant any more (the caller gave up): give it back at once.
            _ = Locks.ReleaseAbandonedAsync(lockEvent.Name, lockEvent.Token);
        }
    }

    /// <summary>
    /// After a snapshot replaced the lock table, requests of ours it answered produced no events
    /// here: a request that holds a lock now is granted; one the table neither holds nor queues, but
    /// whose command was applied, was answered while we were behind (denied, or granted and already
    /// ended) and is reported denied.
    /// </summary>
    private void ReconcileLockRequestsAfterSnapshot()
    {
        foreach (var (sequence, onEvent) in _lockWaiters)
        {
            if (!_deduplicator.Contains(Id, _incarnation, sequence))
            {
                continue;
            }

            var request = new RequestId(Id, _incarnation, sequence);
            if (_lockTable.FindRequest(request) is { } found)
            {
                if (found.Holder is { } holder)
                {
                    onEvent(new LockEvent(LockEventType.Granted, found.Name, request, holder.Token, holder.Expiry));
                }
            }
            else
            {
                onEvent(new LockEvent(LockEventType.Denied, "", request));
            }
        }
    }

    /// <summary>The leader appends a time entry once a lease or wait deadline has passed, so expiry needs no client traffic.</summary>
    private void MaybeAppendTimeEntry(RaftCore core)
    {
        if (core.Role != RaftRole.Leader || _lockTable.NextDeadline == long.MaxValue || _tickCount < _timeEntryInFlightUntilTick)
        {
            return;
        }

        long now = LeaseClockNow(core);
        if (now < _lockTable.NextDeadline)
        {
            return;
        }

        long sequence = NextSequence();
        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, now, Id, _incarnation, sequence, new LockCommand(LockCommandType.Time, "").Encode()).Encode();
        if (core.Propose([envelope]) > 0)
        {
            // One at a time; if it is lost with a leader change, try again after an election timeout.
            _timeEntryInFlightUntilTick = _tickCount + RetryTicks(core);
        }
    }
}
