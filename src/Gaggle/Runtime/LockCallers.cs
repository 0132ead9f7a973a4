using System.Collections.Concurrent;
using Gaggle.Locks;

namespace Gaggle.Runtime;

/// <summary>
/// The lock API's callbacks: callers waiting for the events that answer their requests, and handles
/// watching their holds. Registered from any thread; invoked on the loop from the driver's events
/// (they only complete tasks or hand work to the thread pool).
/// </summary>
internal sealed class LockCallers
{
    private readonly ConcurrentDictionary<long, (Action<LockEvent> OnEvent, Action<Exception> OnFailed)> _waiters = new();
    private readonly ConcurrentDictionary<(string Name, long Token), Action> _holds = new();

    /// <summary>Lock requests still waiting for their answer.</summary>
    public int WatchedRequests => _waiters.Count;

    /// <summary>Watches request <paramref name="sequence"/>: its events, or the node's failure (<see cref="FailAll"/>).</summary>
    public void Watch(long sequence, Action<LockEvent> onEvent, Action<Exception> onFailed) => _waiters[sequence] = (onEvent, onFailed);

    /// <summary>No more events for the request; true when it was still watched.</summary>
    public bool Unwatch(long sequence) => _waiters.TryRemove(sequence, out _);

    public void WatchHold(string name, long token, Action onEnded) => _holds[(name, token)] = onEnded;

    /// <summary>No more news of the hold; true when it was still watched.</summary>
    public bool UnwatchHold(string name, long token) => _holds.TryRemove((name, token), out _);

    public void CarryOut(NodeEvents events)
    {
        foreach (var (sequence, lockEvent) in events.LockEvents)
        {
            if (_waiters.TryGetValue(sequence, out var waiter))
            {
                waiter.OnEvent(lockEvent);
            }
        }

        foreach (var hold in events.HoldsEnded)
        {
            if (_holds.TryRemove(hold, out var ended))
            {
                ended();
            }
        }
    }

    /// <summary>
    /// No event will come for any watched request (the node stopped, or started over with a new
    /// driver that never heard of them): each waiter gets <paramref name="error"/>.
    /// </summary>
    public void FailAll(Exception error)
    {
        foreach (var key in _waiters.Keys)
        {
            if (_waiters.TryRemove(key, out var waiter))
            {
                waiter.OnFailed(error);
            }
        }
    }

    /// <summary>Every live hold is lost (the node stops).</summary>
    public void LoseAll()
    {
        foreach (var key in _holds.Keys)
        {
            if (_holds.TryRemove(key, out var onEnded))
            {
                onEnded();
            }
        }
    }
}
