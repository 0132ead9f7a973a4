namespace Gaggle.Locks;

/// <summary>
/// Who gets a lock, and when: one rule for every kind of request, applied after every change.
/// </summary>
/// <remarks>
/// <para>
/// The rule: a waiting request is granted as soon as each of its locks has room for it (a free slot; for
/// a reader-writer lock, no holder for a writer, no writer holding for a reader) and nobody ahead of it
/// in any of those queues waits for one lock (FIFO: a request of one lock that waits, a writer among
/// them, holds up everyone behind it). A multi-lock request that waits holds up nobody: requests behind
/// it whose locks have room are granted past it. Waiters are looked at in the order they came, so a
/// multi-lock request that fits is granted before the requests that came after it.
/// </para>
/// <para>
/// Why no deadlock: only requests of one lock are waited for, and each of them waits for holders
/// (whose leases end) or for requests of its own lock that came before it. Multi-lock requests are
/// never waited for, so they add no cycle, even when a caller holds one lock while it waits for another.
/// The price: a multi-lock request whose locks are each busy in turn can wait long; a timeout bounds it.
/// </para>
/// <para>
/// The same on every node: after each entry no waiter that fits is left (but see tokens below), so
/// what an entry grants follows from the changes it makes. Two waiters that share no lock do not affect
/// each other, and waiters that share one are looked at in that queue's order; a node that restored a
/// snapshot, whose waiters are numbered anew, grants the same. The grants of one pass are reported
/// ordered by lock and token, so the events are the same too.
/// </para>
/// <para>
/// Tokens: an entry grants a lock at most 256 times in a generation (65536 otherwise). A waiter that
/// fits but would need more keeps its locks for itself until the next entry (a deadline due at once),
/// so nobody behind it takes the room it was to get.
/// </para>
/// </remarks>
internal sealed partial class LockTable
{
    private const int MaxGrantsPerEntry = 1 << 16;
    private const int MaxGrantsPerGenerationEntry = 1 << 8;

    /// <summary>Locks whose queues must be looked at again before the entry is done.</summary>
    private readonly Queue<string> _touched = new();

    /// <summary>Locks kept, for the rest of the entry, for a waiter that fits but for which the entry has no token left.</summary>
    private readonly HashSet<string> _frozen = new(StringComparer.Ordinal);

    /// <summary>
    /// Every request waiting in some queue (a multi-lock request once): a request id waits in one queue
    /// only, or as one set, so that a table read from a snapshot links the same waiters into sets.
    /// </summary>
    private readonly HashSet<RequestId> _waiting = [];

    /// <summary>The locks a pass of <see cref="Settle"/> looked at, and the waiters it looks at next (by arrival): kept between passes, cleared by each.</summary>
    private readonly HashSet<string> _looked = new(StringComparer.Ordinal);
    private readonly PriorityQueue<(LockWaiter Waiter, string Name), long> _candidates = new();

    /// <summary>How the grants of one pass are reported: by lock, then token (the order a node that restored a snapshot reports them in too).</summary>
    private static readonly Comparer<LockEvent> GrantOrder = Comparer<LockEvent>.Create((a, b) =>
    {
        int byName = string.CompareOrdinal(a.Name, b.Name);
        return byName != 0 ? byName : a.Token.CompareTo(b.Token);
    });

    /// <summary>Queue positions the last grant pass walked (its cost, which the tests bound).</summary>
    internal long LastPassWork { get; private set; }

    /// <summary>Lock <paramref name="name"/> changed (a holder or a waiter gone, a waiter added, a deadline due): its queue is looked at again.</summary>
    private void Touch(string name) => _touched.Enqueue(name);

    /// <summary>Grants every waiter of the touched locks that fits, in the order the waiters came, until none fits; forgets locks left unused.</summary>
    private void Settle(long index, Dictionary<string, int> grants)
    {
        if (_touched.Count == 0)
        {
            return;
        }

        int firstEvent = _events.Count;
        LastPassWork = 0;
        if (_touched.Count == 1 && !GeneralPassOnly && SettleSingles(index, grants))
        {
            return;
        }

        var looked = _looked;
        var candidates = _candidates;
        looked.Clear();
        candidates.Clear();
        while (_touched.TryDequeue(out string? name))
        {
            if (looked.Add(name))
            {
                AddCandidates(name, candidates);
            }
        }

        while (candidates.TryDequeue(out var candidate, out _))
        {
            var (waiter, name) = candidate;
            // Granted or gone since it was queued here: a request id waits in one place only.
            if (!_waiting.Contains(waiter.Request) || !_locks.TryGetValue(name, out var state) || !Fits(waiter, name, frozenToo: true))
            {
                continue;
            }

            if (waiter.Group is not { } group)
            {
                if (!TokenLeft(name, grants))
                {
                    Keep(name);
                    continue;
                }

                state.Waiters.RemoveAt(state.Waiters.FindIndex(w => ReferenceEquals(w, waiter)));
                _waiting.Remove(waiter.Request);
                Grant(name, state, waiter.Request, waiter.LeaseMs, waiter.Writer, index, grants);
                AddCandidates(name, candidates);
                continue;
            }

            if (!TokensLeft(group, grants))
            {
                foreach (var kept in group.Names)
                {
                    Keep(kept);
                }

                continue;
            }

            foreach (var granted in group.Names)
            {
                var lockState = _locks[granted];
                int at = lockState.Waiters.FindIndex(w => w.Group == group);
                var part = lockState.Waiters[at];
                lockState.Waiters.RemoveAt(at);
                Grant(granted, lockState, part.Request, part.LeaseMs, part.Writer, index, grants);
                looked.Add(granted);
                AddCandidates(granted, candidates);
            }

            _waiting.Remove(group.Request);
        }

        if (_events.Count - firstEvent > 1)
        {
            _events.Sort(firstEvent, _events.Count - firstEvent, GrantOrder);
        }

        foreach (var name in looked)
        {
            if (_locks.TryGetValue(name, out var state))
            {
                Forget(name, state);
            }
        }
    }

    /// <summary>
    /// The pass of <see cref="Settle"/> when one lock was touched, as long as requests of that lock alone
    /// wait at the front of its queue (the common case: a release handing a mutex over): its queue's head
    /// is the only candidate, so it is granted while it fits, without the pass's bookkeeping. Returns
    /// false, the lock still touched, when a multi-lock request comes to the front: the general pass goes
    /// on from there, and decides as it would have from the start (it too would have granted those heads
    /// first, one lock's grants being in token order already, and then looked at that lock's front only).
    /// </summary>
    private bool SettleSingles(long index, Dictionary<string, int> grants)
    {
        string name = _touched.Peek();
        if (!_locks.TryGetValue(name, out var state))
        {
            _touched.Clear();
            return true;
        }

        var waiters = state.Waiters;
        while (waiters.Count > 0)
        {
            var head = waiters[0];
            if (head.Group is not null)
            {
                return false;
            }

            LastPassWork++;
            if (Now < GrantsFrom || _frozen.Contains(name) || !state.HasRoomFor(head.Writer))
            {
                break;
            }

            if (!TokenLeft(name, grants))
            {
                Keep(name);
                break;
            }

            waiters.RemoveAt(0);
            _waiting.Remove(head.Request);
            Grant(name, state, head.Request, head.LeaseMs, head.Writer, index, grants);
        }

        _touched.Clear();
        Forget(name, state);
        return true;
    }

    /// <summary>A waiter fits but the entry has no token left for it: lock <paramref name="name"/> is kept for it (nobody behind it takes its room) until the next entry, due at once.</summary>
    private void Keep(string name)
    {
        _frozen.Add(name);
        _deadlines.Enqueue(name, Now);
    }

    private bool TokensLeft(LockGroup group, Dictionary<string, int> grants)
    {
        foreach (var name in group.Names)
        {
            if (!TokenLeft(name, grants))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The waiters of <paramref name="name"/> that may fit: the multi-lock requests at the front of its
    /// queue and the first request of one lock (everyone behind that one waits for it).
    /// </summary>
    private void AddCandidates(string name, PriorityQueue<(LockWaiter Waiter, string Name), long> candidates)
    {
        if (!_locks.TryGetValue(name, out var state))
        {
            return;
        }

        foreach (var waiter in state.Waiters)
        {
            LastPassWork++;
            candidates.Enqueue((waiter, name), waiter.Arrival);
            if (waiter.Group is null)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="waiter"/> (of lock <paramref name="name"/>, or of a multi-lock request)
    /// fits now: out of the hold-off, and in each of its locks, room for it and only multi-lock requests
    /// ahead of it; with <paramref name="frozenToo"/>, none of its locks kept for another waiter.
    /// </summary>
    private bool Fits(LockWaiter waiter, string name, bool frozenToo)
    {
        if (Now < GrantsFrom)
        {
            return false;
        }

        if (waiter.Group is not { } group)
        {
            return FitsIn(_locks[name], name, waiter, null, frozenToo);
        }

        foreach (var part in group.Names)
        {
            // Room for a reader or a slot is needed in any case, and cheap to see: most sets that do
            // not fit are told apart here, before a walk down any queue.
            if (!_locks.TryGetValue(part, out var state) || !state.HasRoomFor(writer: false))
            {
                return false;
            }
        }

        foreach (var part in group.Names)
        {
            if (!_locks.TryGetValue(part, out var state) || !FitsIn(state, part, null, group, frozenToo))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Whether the waiter (<paramref name="single"/>, or the part of <paramref name="group"/>) has room in lock <paramref name="name"/> and only sets ahead of it there.</summary>
    private bool FitsIn(LockState state, string name, LockWaiter? single, LockGroup? group, bool frozenToo)
    {
        if (frozenToo && _frozen.Contains(name))
        {
            return false;
        }

        foreach (var waiter in state.Waiters)
        {
            LastPassWork++;
            if (single is not null ? ReferenceEquals(waiter, single) : waiter.Group == group)
            {
                return state.HasRoomFor(waiter.Writer);
            }

            if (waiter.Group is null)
            {
                return false;
            }
        }

        return false;
    }

    /// <summary>Whether some waiter of lock <paramref name="name"/> fits now: only while an entry ran out of tokens for it (<see cref="Settle"/> grants every other one).</summary>
    private bool HasGrantable(string name, LockState state)
    {
        if (Now < GrantsFrom)
        {
            return false;
        }

        foreach (var waiter in state.Waiters)
        {
            if (Fits(waiter, name, frozenToo: false))
            {
                return true;
            }

            if (waiter.Group is null)
            {
                return false;
            }
        }

        return false;
    }

    /// <summary>Whether lock <paramref name="name"/> may get another grant in the entry being applied: its tokens' count within one entry is bounded.</summary>
    private bool TokenLeft(string name, Dictionary<string, int> grants)
        => grants.GetValueOrDefault(name) < (Generation == 0 ? MaxGrantsPerEntry : MaxGrantsPerGenerationEntry);

    private void Grant(string name, LockState state, RequestId request, long leaseMs, bool writer, long index, Dictionary<string, int> grants)
    {
        int n = grants.GetValueOrDefault(name);
        grants[name] = n + 1;
        long token = Generation == 0 ? (index << 16) | (long)n : (Generation << 48) + (index << 8) + n;
        var holder = new LockHolder(token, request, Now, Now + leaseMs, writer);
        state.Holders.Add(holder);
        _deadlines.Enqueue(name, holder.Expiry);
        _events.Add(new LockEvent(LockEventType.Granted, name, request, token, holder.Expiry));
    }
}
