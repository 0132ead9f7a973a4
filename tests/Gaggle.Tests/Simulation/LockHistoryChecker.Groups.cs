using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The model's rules for multi-lock requests (AcquireAll), written from their specification: all of the
/// locks in one entry or none; try once, wait or be rejected as one request; when they are granted is
/// the rule every request follows (LockHistoryChecker.Grants.cs).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Granted at once only when it fits (every lock has room for it and only multi-lock requests
/// waiting, and no hold-off binds); then one grant per lock, in the same entry.</item>
/// <item>Otherwise a try-once is denied once, in the name of its ordinal-first lock; any other waits in
/// every one of its locks' queues, entered at its own entry (so every queue is in log order).</item>
/// <item>A waiting one is granted all of its locks in one entry, all from their queues; while it waits
/// it holds up nobody (requests behind it that fit are granted past it), and once it fits it must be
/// granted by the end of the pass (so nothing ever waits for it, and it cannot deadlock).</item>
/// <item>A wait that runs out is denied once, in the name of its ordinal-first lock; a cancel naming any
/// of its locks cancels it once, in that name; either way it leaves every queue.</item>
/// <item>Rejected only when invalid, or when one of its locks is in use as another kind of lock.</item>
/// </list>
/// </remarks>
internal sealed partial class LockHistoryChecker
{
    /// <summary>The multi-lock grants of the entry being checked.</summary>
    private readonly List<GroupGrant> _groupGrants = [];

    /// <summary>The multi-lock request <paramref name="request"/> of <paramref name="command"/>: its locks in ordinal order.</summary>
    private static TrackedGroup GroupOf(RequestId request, LockCommand command)
        => new(request, [.. command.Parts.Select(p => p.Name).Order(StringComparer.Ordinal)]);

    /// <summary>After an entry's events: each multi-lock request granted in it got all of its locks, all from their queues or all at once (the events' order aside).</summary>
    private void CheckGroupGrants(long index)
    {
        foreach (var grants in _groupGrants.GroupBy(g => g.Group.Request))
        {
            var group = grants.First().Group;
            var names = grants.Select(g => g.Name).Order(StringComparer.Ordinal).ToArray();
            Require(names.SequenceEqual(group.Names, StringComparer.Ordinal), index,
                $"multi-lock request {group.Request} for [{string.Join(", ", group.Names)}] was granted [{string.Join(", ", names)}] by this entry: all of its locks or none");
            Require(grants.All(g => g.FromQueue) || grants.All(g => !g.FromQueue), index,
                $"multi-lock request {group.Request} was granted some locks from their queues and others as a new request");
            Stats.GroupGrants++;
            Stats.GroupGrantsFromQueue += grants.First().FromQueue ? 1 : 0;
            Stats.LargestGroupGranted = Math.Max(Stats.LargestGroupGranted, names.Length);
        }
    }

    /// <summary>A multi-lock request got no answer: it waits in every one of its locks' queues.</summary>
    private void EnqueueGroup(long index, LockCommand command, RequestId request)
    {
        var parts = command.Parts.OrderBy(p => p.Name, StringComparer.Ordinal).ToArray();
        if (parts.Any(p => _history.Locks.TryGetValue(p.Name, out var used) && (used.Holders.Exists(h => h.Request == request) || used.Queue.Exists(w => w.Request == request))))
        {
            // The same request again (a retried append that escaped deduplication): it already counts.
            return;
        }

        Require(InvalidGroup(command) is null, index, $"an invalid multi-lock request by {request} was not rejected: {InvalidGroup(command)}");
        Require(!_history.GrantedLocks.ContainsKey(request), index, $"{request} asked again after its grant");
        Require(command.WaitMs > 0, index, $"a try-once multi-lock request by {request} for [{string.Join(", ", parts.Select(p => p.Name))}] got no answer");
        foreach (var part in parts)
        {
            Require(MisusedAs(part) is null, index, $"multi-lock request {request} queued for '{part.Name}' as {KindOf(part)}, but the lock is {MisusedAs(part)} (a request to reject)");
        }

        Require(!parts.All(FitsNew) || OutOfTokensFor(parts), index,
            $"multi-lock request {request} queued for [{string.Join(", ", parts.Select(p => p.Name))}] while every one of them had room for it and only multi-lock requests waiting");
        var group = GroupOf(request, command);
        foreach (var part in parts)
        {
            var state = Lock(part.Name);
            Fix(state, part);
            state.Queue.Add(new TrackedWait(request, part.Name, _history.Now + command.WaitMs, part.Type == LockCommandType.AcquireWrite, group));
            Stats.LongestQueue = Math.Max(Stats.LongestQueue, state.Queue.Count);
        }

        Stats.Queued++;
        Stats.GroupsQueued++;
    }

    /// <summary>A multi-lock request that tries once is denied: once, in the name of its first lock, and only when not all of its locks were free.</summary>
    private void DenyGroupTry(long index, LockCommand command, LockEvent e)
    {
        var parts = command.Parts.OrderBy(p => p.Name, StringComparer.Ordinal).ToArray();
        Require(InvalidGroup(command) is null, index, $"an invalid multi-lock request by {e.Request} was denied, not rejected: {InvalidGroup(command)}");
        Require(e.Name == parts[0].Name, index, $"a try-once multi-lock request by {e.Request} was denied in the name of '{e.Name}', not of its first lock '{parts[0].Name}'");
        foreach (var part in parts)
        {
            Require(MisusedAs(part) is null, index, $"a try-once multi-lock request by {e.Request} denied, not rejected, while '{part.Name}' is {MisusedAs(part)}");
        }

        Require(!parts.All(FitsNew) || OutOfTokensFor(parts), index,
            $"a try-once multi-lock request by {e.Request} for [{string.Join(", ", parts.Select(p => p.Name))}] denied while every one of them had room for it and only multi-lock requests waiting");
        Stats.TriesDenied++;
        Stats.GroupTriesDenied++;
    }

    /// <summary>A cancel naming any lock of a waiting multi-lock request withdraws it from every queue, answered once in the name of its first lock.</summary>
    private void CancelGroup(long index, LockCommand command, LockEvent e, TrackedGroup group)
    {
        Require(e.Name == group.Names[0], index, $"multi-lock request {group.Request} for [{string.Join(", ", group.Names)}] was cancelled in the name of '{e.Name}', not of its first lock");
        Require(group.Names.Contains(command.Name, StringComparer.Ordinal), index, $"multi-lock request {group.Request} was cancelled by a cancel naming '{command.Name}', not one of its locks");
        RemoveGroup(index, group);
        Stats.GroupsCancelled++;
    }

    /// <summary>A multi-lock request stops waiting: it leaves every one of its queues (a lock nobody uses any more is forgotten).</summary>
    private void RemoveGroup(long index, TrackedGroup group)
    {
        foreach (string name in group.Names)
        {
            Require(_history.Locks.TryGetValue(name, out var state) && state.Queue.RemoveAll(w => w.Group == group) == 1, index,
                $"multi-lock request {group.Request} was not waiting for '{name}', one of its locks");
            if (state!.Holders.Count == 0 && state.Queue.Count == 0)
            {
                _history.Locks.Remove(name);
            }
        }
    }

    /// <summary>A multi-lock request was rejected: once, in the name it was sent with, because it is invalid or one of its locks is in use as another kind.</summary>
    private void RequireGroupRejection(long index, LockCommand command, RequestId request, LockEvent e)
    {
        Require(e.Request == request && e.Name == command.Name, index, $"a rejection of {e.Request} in the name of '{e.Name}' answers no multi-lock request sent now");
        Require(InvalidGroup(command) is not null || command.Parts.Any(p => MisusedAs(p) is not null), index,
            $"a valid multi-lock request for [{string.Join(", ", command.Parts.Select(p => $"{p.Name} as {KindOf(p)}"))}] was rejected, though no lock of it is in use as another kind");
        Stats.GroupsRejected++;
    }

    /// <summary>What makes <paramref name="command"/> an invalid multi-lock request, or null: 2 to MaxParts locks of distinct, non-empty names, each a valid acquire of one lock, a lease and a wait that make sense.</summary>
    private static string? InvalidGroup(LockCommand command)
    {
        var parts = command.Parts;
        if (parts.Count is < 2 or > LockCommand.MaxParts)
        {
            return $"{parts.Count} locks";
        }

        if (command.LeaseMs < 1 || command.WaitMs < 0)
        {
            return $"lease {command.LeaseMs} ms, wait {command.WaitMs} ms";
        }

        if (parts.FirstOrDefault(p => p.Name.Length == 0 || !p.Type.IsSingleAcquire() || (p.Type == LockCommandType.Acquire && p.MaxCount < 1)) is { Name: not null } bad)
        {
            return $"the part '{bad.Name}' ({bad.Type}, maxCount {bad.MaxCount})";
        }

        return parts.Select(p => p.Name).Distinct(StringComparer.Ordinal).Count() == parts.Count ? null : "a lock named twice";
    }

    /// <summary>The kind <paramref name="part"/>'s lock is in use as, when another than the part asks for; null when it is not in use or the same.</summary>
    private (LockKindInModel Kind, int MaxCount)? MisusedAs(LockPart part)
        => _history.Locks.TryGetValue(part.Name, out var state) && state.Kind != LockKindInModel.Unset && (state.Kind, state.MaxCount) != KindOf(part) ? (state.Kind, state.MaxCount) : null;

    /// <summary>A multi-lock request: its locks in ordinal order (the order of its grants and the first of them its name in denials and cancels).</summary>
    private sealed class TrackedGroup(RequestId request, string[] names)
    {
        public RequestId Request { get; } = request;

        public string[] Names { get; } = names;
    }

    /// <summary>One lock of a multi-lock request granted by the entry being checked.</summary>
    private sealed record GroupGrant(TrackedGroup Group, string Name, bool FromQueue);
}
