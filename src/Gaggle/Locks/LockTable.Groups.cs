namespace Gaggle.Locks;

/// <summary>
/// Multi-lock requests (<see cref="LockCommandType.AcquireAll"/>): several locks granted all at once,
/// in one entry, or none of them.
/// </summary>
/// <remarks>
/// A multi-lock request that cannot be granted at once waits in the queue of every one of its locks,
/// entered at one log position (the entry that applies it); when it is granted is decided by the rule
/// every request follows (LockTable.Grants.cs): it holds up nobody while it waits, and it is granted as
/// soon as each of its locks has room for it with nobody ahead of it there waiting for one lock. Each
/// lock's grant takes that lock's next token of the entry, so all of a request's tokens carry the
/// entry's index (atomicity made visible). A denied, cancelled or timed-out request leaves every queue.
/// </remarks>
internal sealed partial class LockTable
{
    /// <summary>
    /// Every request holding or waiting in the table: its holds (one per lock; several for a multi-lock
    /// request), by lock name, and whether it still waits anywhere. Built once per snapshot install.
    /// </summary>
    public Dictionary<RequestId, (List<(string Name, LockHolder Holder)> Holds, bool Waiting)> IndexRequests()
    {
        var index = new Dictionary<RequestId, (List<(string, LockHolder)> Holds, bool Waiting)>();
        foreach (var (name, state) in _locks.OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            foreach (var holder in state.Holders)
            {
                var entry = index.TryGetValue(holder.Request, out var found) ? found : ([], false);
                entry.Holds.Add((name, holder));
                index[holder.Request] = entry;
            }

            foreach (var waiter in state.Waiters)
            {
                index[waiter.Request] = index.TryGetValue(waiter.Request, out var found) ? (found.Holds, true) : ([], true);
            }
        }

        return index;
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

            if (_waiting.Contains(request) || (used is not null && used.Holders.Exists(h => h.Request == request)))
            {
                // The same request again (a retried append that escaped deduplication): it already counts.
                return;
            }
        }

        var group = new LockGroup(request, [.. ordered.Select(p => p.Name)]);
        var states = new LockState[ordered.Length];
        var waiters = new LockWaiter[ordered.Length];
        for (int i = 0; i < ordered.Length; i++)
        {
            var part = ordered[i];
            if (!_locks.TryGetValue(part.Name, out states[i]!))
            {
                states[i] = new LockState(part.Type == LockCommandType.Acquire ? part.MaxCount : LockState.ReaderWriterMaxCount);
                _locks[part.Name] = states[i];
            }

            waiters[i] = new LockWaiter(request, command.LeaseMs, Now + command.WaitMs, part.Type == LockCommandType.AcquireWrite, group, index);
            states[i].Waiters.Add(waiters[i]);
            Touch(part.Name);
        }

        _waiting.Add(request);

        Settle(index, grants);
        if (!_waiting.Contains(request))
        {
            return;
        }

        if (command.WaitMs <= 0)
        {
            RemoveGroup(group);
            _events.Add(new LockEvent(LockEventType.Denied, ordered[0].Name, request));
            return;
        }

        foreach (var part in ordered)
        {
            _deadlines.Enqueue(part.Name, Now + command.WaitMs);
            if (Now < GrantsFrom)
            {
                _deadlines.Enqueue(part.Name, GrantsFrom);
            }
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

        if (!LeaseInRange(command.LeaseMs) || !WaitInRange(command.WaitMs))
        {
            return $"lease {command.LeaseMs} ms (must be 1 to {MaxLeaseMs}), wait {command.WaitMs} ms (0 to {MaxWaitMs})";
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

    /// <summary>Takes <paramref name="group"/> out of every queue it waits in (denied or cancelled); those queues are looked at again (a lock left unused is forgotten).</summary>
    private void RemoveGroup(LockGroup group)
    {
        foreach (var name in group.Names)
        {
            if (_locks.TryGetValue(name, out var state))
            {
                state.Waiters.RemoveAll(w => w.Group == group);
                Touch(name);
            }
        }

        _waiting.Remove(group.Request);
    }

    /// <summary>
    /// After a snapshot was read: waiters of one request in several queues are one multi-lock request
    /// (a request of one lock waits in one queue only), its locks in ordinal order as when it was
    /// applied; then every waiter is numbered (<see cref="LockWaiter.Arrival"/>) in an order that keeps
    /// every queue's, smallest request id first among those free to go next.
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

        _waiting.Clear();
        _waiting.UnionWith(byRequest.Keys);
        var groups = new Dictionary<RequestId, LockGroup>();
        foreach (var (request, names) in byRequest)
        {
            if (names.Count > 1)
            {
                groups[request] = new LockGroup(request, [.. names]);
            }
        }

        // Kahn's order over "comes right after in some queue": a request goes once everything ahead of
        // it in each of its queues went. A cycle means the queues disagree: no table ever wrote that.
        var ahead = byRequest.ToDictionary(r => r.Key, _ => 0);
        var behind = new Dictionary<RequestId, List<RequestId>>();
        foreach (var state in _locks.Values)
        {
            for (int i = 1; i < state.Waiters.Count; i++)
            {
                ahead[state.Waiters[i].Request]++;
                var before = state.Waiters[i - 1].Request;
                if (!behind.TryGetValue(before, out var list))
                {
                    list = [];
                    behind[before] = list;
                }

                list.Add(state.Waiters[i].Request);
            }
        }

        var ready = new PriorityQueue<RequestId, RequestId>(Comparer<RequestId>.Create(CompareRequests));
        foreach (var (request, count) in ahead)
        {
            if (count == 0)
            {
                ready.Enqueue(request, request);
            }
        }

        var arrival = new Dictionary<RequestId, long>();
        while (ready.TryDequeue(out var next, out _))
        {
            arrival[next] = arrival.Count + 1;
            foreach (var after in behind.GetValueOrDefault(next) ?? [])
            {
                if (--ahead[after] == 0)
                {
                    ready.Enqueue(after, after);
                }
            }
        }

        if (arrival.Count != byRequest.Count)
        {
            throw new FormatException("The lock table snapshot has multi-lock requests queued in orders no table could have (a request ahead of another in one queue and behind it in another).");
        }

        foreach (var state in _locks.Values)
        {
            for (int i = 0; i < state.Waiters.Count; i++)
            {
                var waiter = state.Waiters[i];
                state.Waiters[i] = waiter with { Group = groups.GetValueOrDefault(waiter.Request), Arrival = arrival[waiter.Request] };
            }
        }
    }

    private static int CompareRequests(RequestId a, RequestId b)
    {
        int byNode = string.CompareOrdinal(a.Node, b.Node);
        if (byNode != 0)
        {
            return byNode;
        }

        int byIncarnation = a.Incarnation.CompareTo(b.Incarnation);
        return byIncarnation != 0 ? byIncarnation : a.Sequence.CompareTo(b.Sequence);
    }
}
