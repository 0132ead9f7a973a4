namespace Gaggle.Locks;

/// <summary>
/// Multi-lock requests (<see cref="LockCommandType.AcquireAll"/>): several locks granted all at once,
/// in one entry, or none of them.
/// </summary>
/// <remarks>
/// <para>
/// A multi-lock request that cannot be granted at once waits in the queue of every one of its locks,
/// entered at one log position (the entry that applies it). It is granted when it is the first waiter
/// of each of those queues and each lock has room for it; until then it holds up the waiters behind it
/// in each queue (FIFO), even where that lock alone has room.
/// </para>
/// <para>
/// No deadlock: every queue is in log order, because a request enters all of its queues at the entry
/// that applies it. So any two requests stand in the same order in every queue they share (two callers
/// taking {A, B} and {B, A} never wait for each other in a cycle), and the waiter applied first of all
/// those waiting is first in each of its queues: it waits only for holders, which end by a release or
/// by their lease. Every change that can make a waiting request grantable (a holder gone, a waiter ahead
/// of it granted or gone, a hold-off over) happens to one of its locks, whose queue is then looked at
/// again (<see cref="GrantWaiters"/>, for each lock a granted or withdrawn multi-lock request leaves).
/// </para>
/// <para>
/// Tokens: each lock's grant takes that lock's next token of the entry, so all of a request's tokens
/// carry the entry's index (atomicity made visible). A grant that would need more tokens of one of its
/// locks than the entry has left waits, as a deadline due at once, for the leader's next time entry.
/// </para>
/// </remarks>
internal sealed partial class LockTable
{
    /// <summary>Locks whose queue must be looked at again before the entry is done: a multi-lock request granted or withdrawn left them.</summary>
    private readonly Queue<string> _touched = new();

    /// <summary>Every hold of <paramref name="request"/> (a multi-lock request has one per lock), and whether it still waits anywhere.</summary>
    public (List<(string Name, LockHolder Holder)> Holds, bool Waiting) FindHolds(RequestId request)
    {
        var holds = new List<(string, LockHolder)>();
        bool waiting = false;
        foreach (var (name, state) in _locks.OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            if (state.Holders.Find(h => h.Request == request) is { } holder)
            {
                holds.Add((name, holder));
            }

            waiting |= state.Waiters.Exists(w => w.Request == request);
        }

        return (holds, waiting);
    }

    private void AcquireAll(LockCommand command, RequestId request, long index, Dictionary<string, int> grants)
    {
        var parts = command.Parts;
        if (InvalidGroup(command) is { } invalid)
        {
            // Only a buggy or hostile member sends this; it must not block a queue.
            _events.Add(new LockEvent(LockEventType.Rejected, command.Name, request, Reason: $"The multi-lock request is invalid: {invalid}."));
            return;
        }

        var ordered = parts.OrderBy(p => p.Name, StringComparer.Ordinal).ToArray();
        foreach (var part in ordered)
        {
            int maxCount = part.Type == LockCommandType.Acquire ? part.MaxCount : LockState.ReaderWriterMaxCount;
            if (_locks.TryGetValue(part.Name, out var used) && used.MaxCount != maxCount)
            {
                _events.Add(new LockEvent(LockEventType.Rejected, command.Name, request, Reason: used.ReaderWriter || maxCount == LockState.ReaderWriterMaxCount
                    ? $"'{part.Name}' is in use as {DescribeKind(used.MaxCount)}; this multi-lock request asked for {DescribeKind(maxCount)}."
                    : $"'{part.Name}' is in use with a maximum of {used.MaxCount} holders; this multi-lock request asked for {maxCount}."));
                return;
            }

            if (used is not null && (used.Holders.Exists(h => h.Request == request) || used.Waiters.Exists(w => w.Request == request)))
            {
                // The same request again (a retried append that escaped deduplication): it already counts.
                return;
            }
        }

        var states = new LockState[ordered.Length];
        bool grantNow = Now >= GrantsFrom;
        for (int i = 0; i < ordered.Length; i++)
        {
            var part = ordered[i];
            if (!_locks.TryGetValue(part.Name, out states[i]!))
            {
                states[i] = new LockState(part.Type == LockCommandType.Acquire ? part.MaxCount : LockState.ReaderWriterMaxCount);
                _locks[part.Name] = states[i];
            }

            grantNow &= states[i].Waiters.Count == 0 && states[i].HasRoomFor(part.Type == LockCommandType.AcquireWrite) && TokenLeft(part.Name, grants);
        }

        if (grantNow)
        {
            for (int i = 0; i < ordered.Length; i++)
            {
                Grant(ordered[i].Name, states[i], request, command.LeaseMs, ordered[i].Type == LockCommandType.AcquireWrite, index, grants);
            }

            return;
        }

        if (command.WaitMs <= 0)
        {
            _events.Add(new LockEvent(LockEventType.Denied, ordered[0].Name, request));
            for (int i = 0; i < ordered.Length; i++)
            {
                Forget(ordered[i].Name, states[i]);
            }

            return;
        }

        var group = new LockGroup(request, [.. ordered.Select(p => p.Name)]);
        long deadline = Now + command.WaitMs;
        for (int i = 0; i < ordered.Length; i++)
        {
            states[i].Waiters.Add(new LockWaiter(request, command.LeaseMs, deadline, ordered[i].Type == LockCommandType.AcquireWrite, group));
            _deadlines.Enqueue(ordered[i].Name, deadline);
            if (Now < GrantsFrom)
            {
                _deadlines.Enqueue(ordered[i].Name, GrantsFrom);
            }
        }

        if (GroupFits(group))
        {
            // It fits but the entry ran out of tokens for one of its locks: the next entry grants it.
            _deadlines.Enqueue(ordered[0].Name, Now);
        }
    }

    /// <summary>What is wrong with the multi-lock request <paramref name="command"/>, or null.</summary>
    private static string? InvalidGroup(LockCommand command)
    {
        var parts = command.Parts;
        if (parts.Count is < 2 or > LockCommand.MaxParts)
        {
            return $"it names {parts.Count} locks (must be 2 to {LockCommand.MaxParts})";
        }

        if (command.LeaseMs < 1 || command.WaitMs < 0)
        {
            return $"lease {command.LeaseMs} ms (must be >= 1), wait {command.WaitMs} ms (>= 0)";
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var part in parts)
        {
            if (part.Name.Length == 0 || !part.Type.IsSingleAcquire() || (part.Type == LockCommandType.Acquire && part.MaxCount < 1))
            {
                return $"the part '{part.Name}' ({part.Type}, maxCount {part.MaxCount}) needs a name and, for a mutex or semaphore, a maxCount >= 1";
            }

            if (!names.Add(part.Name))
            {
                return $"it names '{part.Name}' twice";
            }
        }

        return null;
    }

    /// <summary>Whether <paramref name="group"/> is the first waiter of every one of its locks, and each has room for it.</summary>
    private bool GroupFits(LockGroup group)
    {
        foreach (var name in group.Names)
        {
            if (!_locks.TryGetValue(name, out var state) || state.Waiters.Count == 0 || state.Waiters[0].Group != group || !state.HasRoomFor(state.Waiters[0].Writer))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Whether the entry being applied has a token left for each lock of <paramref name="group"/>.</summary>
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

    /// <summary>Grants every lock of <paramref name="group"/> (it fits: <see cref="GroupFits"/>), in its order, and looks at the queues it leaves again.</summary>
    private void GrantGroup(LockGroup group, long index, Dictionary<string, int> grants)
    {
        foreach (var name in group.Names)
        {
            var state = _locks[name];
            var waiter = state.Waiters[0];
            state.Waiters.RemoveAt(0);
            Grant(name, state, group.Request, waiter.LeaseMs, waiter.Writer, index, grants);
            _touched.Enqueue(name);
        }
    }

    /// <summary>Takes <paramref name="group"/> out of every queue it waits in (denied or cancelled); those queues are looked at again.</summary>
    private void RemoveGroup(LockGroup group)
    {
        foreach (var name in group.Names)
        {
            if (_locks.TryGetValue(name, out var state))
            {
                state.Waiters.RemoveAll(w => w.Group == group);
                _touched.Enqueue(name);
            }
        }
    }

    /// <summary>Moves up the queues that multi-lock requests granted or withdrawn in this entry left, until none is left to look at.</summary>
    private void GrantTouched(long index, Dictionary<string, int> grants)
    {
        while (_touched.TryDequeue(out string? name))
        {
            if (_locks.TryGetValue(name, out var state))
            {
                GrantWaiters(name, state, index, grants);
            }
        }
    }

    /// <summary>
    /// After a snapshot was read: waiters of one request in several queues are one multi-lock request
    /// (a request of one lock waits in one queue only), its locks in ordinal order as when it was applied.
    /// </summary>
    private void LinkGroups()
    {
        var byRequest = new Dictionary<RequestId, List<string>>();
        foreach (var (name, state) in _locks.OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            foreach (var waiter in state.Waiters)
            {
                if (!byRequest.TryGetValue(waiter.Request, out var names))
                {
                    names = [];
                    byRequest[waiter.Request] = names;
                }
                else if (names[^1] == name)
                {
                    throw new FormatException($"The lock table snapshot has request {waiter.Request.Sequence} of '{waiter.Request.Node}' waiting twice for '{name}'.");
                }

                names.Add(name);
            }
        }

        foreach (var (request, names) in byRequest)
        {
            if (names.Count < 2)
            {
                continue;
            }

            var group = new LockGroup(request, [.. names]);
            foreach (var name in names)
            {
                var waiters = _locks[name].Waiters;
                int at = waiters.FindIndex(w => w.Request == request);
                waiters[at] = waiters[at] with { Group = group };
            }
        }
    }
}
