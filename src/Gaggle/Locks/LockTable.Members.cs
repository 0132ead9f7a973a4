namespace Gaggle.Locks;

/// <summary>
/// Elastic mode: the waits of a node removed from the cluster end at its removal
/// (<see cref="LockCommandType.MembersChanged"/>).
/// </summary>
/// <remarks>
/// <para>
/// Why: a node killed without warning (an instance stopped in a rolling deploy, a container evicted)
/// leaves its queued requests behind. Each would be granted in its turn and then block its lock for a
/// whole lease that nobody renews, one lease per dead waiter in the queue. Its removal (after the
/// member timeout, or at once when it leaves) is the cluster's agreed word that the node is gone.
/// </para>
/// <para>
/// Why it is safe: ending a wait grants nothing to the node whose wait ends, and what it grants to
/// others is what a cancelled wait grants (a waiter behind it that now fits), under the usual rule
/// and tokens of the entry's index (a configuration entry of this log: its index is no other entry's).
/// Holds are untouched: a removed node that still runs (paused, cut off) keeps what it was granted
/// until its lease runs out, as a lock's safety needs. It is the same on every replica: the entry is
/// in every replica's log at the same position, and the waits end in one order (by lock name, then
/// queue position). A node removed while alive hears of it (Rejected, with the reason) if it
/// applies the entry as the incarnation that asked; otherwise it starts over and fails its callers anyway.
/// Only elastic clusters do this: there a node forwards appends only as a member (a leader refuses
/// the others), so a waiter of a node outside the configuration is always one of a removed node.
/// </para>
/// </remarks>
internal sealed partial class LockTable
{
    /// <summary>Whether any request waits for a node that is not one of <paramref name="members"/> (what a <see cref="LockCommandType.MembersChanged"/> of them would end).</summary>
    public bool WaitsOutside(IReadOnlySet<string> members)
    {
        foreach (var request in _waiting)
        {
            if (!members.Contains(request.Node))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Every request of a node that is not one of <paramref name="members"/> stops waiting, each reported Rejected once (a multi-lock request in the name of its first lock).</summary>
    private void EndWaitsOfNonMembers(IReadOnlySet<string> members)
    {
        if (!WaitsOutside(members))
        {
            return;
        }

        foreach (string name in _locks.Keys.Order(StringComparer.Ordinal).ToList())
        {
            if (!_locks.TryGetValue(name, out var state))
            {
                continue;
            }

            foreach (var waiter in state.Waiters.Where(w => !members.Contains(w.Request.Node)).ToList())
            {
                if (waiter.Group is { } group)
                {
                    // Met first in the queue of its first lock (locks are visited in ordinal order, as its names are kept).
                    RemoveGroup(group);
                }
                else
                {
                    state.Waiters.Remove(waiter);
                    _waiting.Remove(waiter.Request);
                    Touch(name);
                }

                string named = waiter.Group?.Names[0] ?? name;
                _events.Add(new LockEvent(LockEventType.Rejected, named, waiter.Request,
                    Reason: $"Node '{waiter.Request.Node}' was removed from the cluster (it left, or was not heard from for the member timeout) while its request for '{named}' waited; the wait ended. Retry once the node is a member again."));
            }
        }
    }
}
