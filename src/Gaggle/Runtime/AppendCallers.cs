using System.Collections.Concurrent;

namespace Gaggle.Runtime;

/// <summary>
/// The callers waiting for their appends to commit: registered by the append API (any thread),
/// completed from the driver's events on the loop, failed by the node's timer when their deadline
/// passed while the loop is stuck (a stalled disk), failed all when the node stops.
/// </summary>
internal sealed class AppendCallers(TimeProvider time, KeyValuePair<string, object?> nodeTag, Func<PendingAppend, TimeoutException> timedOut)
{
    private readonly ConcurrentDictionary<long, PendingAppend> _pending = new();

    /// <summary>How long callers count as concurrent after two or more of their appends waited at once.</summary>
    public static readonly TimeSpan ConcurrencyMemory = TimeSpan.FromMilliseconds(100);

    private int _count;
    private long _concurrentUntil;
    private int _answeredNotResumed;

    /// <summary>
    /// Appends the loop answered whose caller has not resumed yet: its continuation waits for a
    /// thread-pool thread (what it does next, such as a lock renewal's next timer, is yet to happen).
    /// </summary>
    public int AnsweredNotResumed => Volatile.Read(ref _answeredNotResumed);

    /// <summary>The caller of <paramref name="pending"/> resumed (or gave up waiting).</summary>
    public void Resumed(PendingAppend pending)
    {
        if (pending.Leave())
        {
            Interlocked.Decrement(ref _answeredNotResumed);
        }
    }

    private void Answering(PendingAppend pending)
    {
        if (pending.HandOver())
        {
            Interlocked.Increment(ref _answeredNotResumed);
        }
    }

    /// <summary>Appends of this node's callers not yet answered (committed, timed out or given up).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Whether two or more appends of this node's callers waited at once within the last
    /// <see cref="ConcurrencyMemory"/>: a node under a steady load of several callers, whose appends
    /// also meet at moments when only one waits.
    /// </summary>
    public bool RecentlyConcurrent => time.GetTimestamp() < Volatile.Read(ref _concurrentUntil);

    public void Add(PendingAppend append)
    {
        if (_pending.TryAdd(append.Sequence, append))
        {
            if (Interlocked.Increment(ref _count) > 1)
            {
                Volatile.Write(ref _concurrentUntil, time.GetTimestamp() + (long)(ConcurrencyMemory.TotalSeconds * time.TimestampFrequency));
            }
        }
        else
        {
            _pending[append.Sequence] = append;
        }
    }

    private bool TryTake(long sequence, out PendingAppend pending)
    {
        if (_pending.TryRemove(sequence, out pending!))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }

        return false;
    }

    /// <summary>Whether append <paramref name="sequence"/> still has a caller (it may have given up since it was posted).</summary>
    public bool IsWaiting(long sequence) => _pending.ContainsKey(sequence);

    /// <summary>The caller stopped waiting; true when it had not been completed yet.</summary>
    public bool Remove(long sequence) => TryTake(sequence, out _);

    /// <summary>Completes the callers whose entries the driver applied or timed out.</summary>
    public void CarryOut(NodeEvents events)
    {
        foreach (var (append, index) in events.Committed)
        {
            if (append is PendingAppend pending && TryTake(pending.Sequence, out _))
            {
                if (pending.StartedAt != 0)
                {
                    GaggleMetrics.AppendDuration.Record(time.GetElapsedTime(pending.StartedAt).TotalMilliseconds, nodeTag);
                }

                Answering(pending);
                pending.Completion.TrySetResult(index);
            }
        }

        foreach (var append in events.TimedOut)
        {
            if (append is PendingAppend pending && TryTake(pending.Sequence, out _))
            {
                Answering(pending);
                pending.Completion.TrySetException(pending.GivenUpBecause is { } reason
                    ? new InvalidOperationException($"The append was given up: {reason}. Append it again if it is still wanted.")
                    : timedOut(pending));
            }
        }
    }

    /// <summary>
    /// Fails the appends whose deadline passed, on the node's timer (thread-safe): the driver times them
    /// out at its tick, but a loop stuck on a stalled disk does not tick.
    /// </summary>
    public void ExpireStuck(long nowUs)
    {
        if (_pending.IsEmpty)
        {
            return;
        }

        foreach (var (sequence, pending) in _pending)
        {
            if (pending.DeadlineUs <= nowUs && TryTake(sequence, out _))
            {
                pending.Completion.TrySetException(timedOut(pending));
            }
        }
    }

    public void FailAll(Exception error)
    {
        foreach (var key in _pending.Keys)
        {
            if (TryTake(key, out var pending))
            {
                pending.Completion.TrySetException(error);
            }
        }
    }
}
