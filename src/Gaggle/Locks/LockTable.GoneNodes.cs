namespace Gaggle.Locks;

/// <summary>
/// The waits of a node that is gone end: in an elastic cluster at its removal
/// (<see cref="LockCommandType.MembersChanged"/>), and when a later process of its member id (with a
/// fixed member list, a restart) finds them (<see cref="LockCommandType.IncarnationEnded"/>).
/// </summary>
/// <remarks>
/// <para>
/// Why: a node killed without warning (an instance stopped in a rolling deploy, a container evicted)
/// leaves its queued requests behind. Each would be granted in its turn and then block its lock for a
/// whole lease that nobody renews, one lease per dead waiter in the queue. Its removal (after the
/// member timeout, or at once when it leaves) is the cluster's agreed word that the node is gone; a
/// live process of the same member id is the word that the one before it ended (one process runs a
/// member id at a time).
/// </para>
/// <para>
/// Why it is safe: ending a wait grants nothing to the node whose wait ends, and what it grants to
/// others is what a cancelled wait grants (a waiter behind it that now fits), under the usual rule
/// and with tokens of the entry's index (for a removal, the configuration entry of this log that made
/// it: its index is no other entry's). Holds are untouched: a removed node that still runs (paused,
/// cut off) keeps what it was granted until its lease runs out, as a lock's safety needs. It is the
/// same on every replica: the entry is at the same position in every replica's log, and the waits
/// end in one order (by lock name, then queue position). A configuration that forces a new generation
/// grants nothing (see <see cref="LookAgainAtTheNextEntry"/>). A node removed while alive rarely
/// applies that entry (a leader stops replicating to it once its removal is logged): it hears of its
/// removal, starts over and fails its callers; one added again as the same incarnation hears
/// Rejected, with the reason. Removals end waits only in elastic clusters: there a
/// node forwards appends only as a member (a leader refuses the others), so a waiter of a node outside
/// the configuration is always one of a removed node.
/// </para>
/// </remarks>
internal sealed partial class LockTable
{
    /// <summary>Whether any request waits for a node that is not one of <paramref name="members"/> (what a <see cref="LockCommandType.MembersChanged"/> of them would end).</summary>
    public bool WaitsOutside(IReadOnlySet<string> members) => AnyWaiting(request => !members.Contains(request.Node));

    /// <summary>The incarnations of node <paramref name="node"/> other than <paramref name="incarnation"/> with a request waiting (what its <see cref="LockCommandType.IncarnationEnded"/> commands would end), in order.</summary>
    public List<ulong> OtherIncarnationsWaiting(string node, ulong incarnation)
    {
        var found = new SortedSet<ulong>();
        foreach (var request in _waiting)
        {
            if (request.Node == node && request.Incarnation != incarnation)
            {
                found.Add(request.Incarnation);
            }
        }

        return [.. found];
    }

    private bool AnyWaiting(Func<RequestId, bool> gone)
    {
        foreach (var request in _waiting)
        {
            if (gone(request))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Every request of a node that is not one of <paramref name="members"/> stops waiting.</summary>
    private void EndWaitsOfNonMembers(IReadOnlySet<string> members)
        => EndWaits(request => !members.Contains(request.Node), (node, name) =>
            $"Node '{node}' was removed from the cluster (it left, or was not heard from for the member timeout) while its request for '{name}' waited; the wait ended. Retry once the node is a member again.");

    /// <summary>
    /// Nothing is granted at this entry: the locks it changed are looked at again at the next entry
    /// (a deadline due at once), those left unused are forgotten now. For a configuration that forces
    /// a new generation: this entry's index may be one the lost majority used for a grant (the
    /// survivor's log was committed without them), and the generation start that follows holds grants off.
    /// </summary>
    private void LookAgainAtTheNextEntry()
    {
        while (_touched.TryDequeue(out string? name))
        {
            if (_locks.TryGetValue(name, out var state))
            {
                Forget(name, state);
                if (_locks.ContainsKey(name))
                {
                    _deadlines.Enqueue(name, Now);
                }
            }
        }
    }

    /// <summary>Every request of incarnation <paramref name="ended"/> of <paramref name="live"/>'s node stops waiting (none when it is <paramref name="live"/>'s own).</summary>
    private void EndWaitsOfEndedIncarnation(RequestId live, ulong ended)
        => EndWaits(request => request.Node == live.Node && request.Incarnation == ended && ended != live.Incarnation, (node, name) =>
            $"Node '{node}' started again as a new process while a request of its previous one waited for '{name}'; nobody would take the grant, so the wait ended.");

    /// <summary>Every request that is <paramref name="gone"/> stops waiting, each reported Rejected once (a multi-lock request in the name of its first lock).</summary>
    private void EndWaits(Func<RequestId, bool> gone, Func<string, string, string> reason)
    {
        if (!AnyWaiting(gone))
        {
            return;
        }

        foreach (string name in _locks.Keys.Order(StringComparer.Ordinal).ToList())
        {
            if (!_locks.TryGetValue(name, out var state))
            {
                continue;
            }

            foreach (var waiter in state.Waiters.Where(w => gone(w.Request)).ToList())
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
                _events.Add(new LockEvent(LockEventType.Rejected, named, waiter.Request, Reason: reason(waiter.Request.Node, named)));
            }
        }
    }
}
