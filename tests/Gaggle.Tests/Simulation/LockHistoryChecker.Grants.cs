using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The model's grant rule, written from its specification: who may be granted, who must be, and in what
/// order, for requests of one lock and multi-lock requests alike.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>A waiter fits when each of its locks has room for it and every waiter ahead of it in each of
/// those queues is a multi-lock request: a waiting multi-lock request holds up nobody, a waiting request
/// of one lock holds up everyone behind it (FIFO among them; a writer holds up later readers).</item>
/// <item>A new request is granted at once exactly when it fits (room, and only multi-lock requests
/// waiting); otherwise it waits or, trying once, is denied.</item>
/// <item>Closure: after each grant pass and each entry, no waiter that fits is left; except when the
/// entry ran out of tokens for a lock (its per-entry maximum of grants): a waiter needing such a lock,
/// or a lock of another fitting waiter kept for it, may wait until the next entry.</item>
/// <item>Arrival order: a request granted in a pass took no room that a waiter ahead of it in one of
/// its queues (still waiting after the pass) needed: with its grants of the pass taken back, that waiter
/// does not fit.</item>
/// <item>A pass's grants are reported ordered by lock name (ordinal), then token; nothing else about
/// their order is relied on.</item>
/// </list>
/// </remarks>
internal sealed partial class LockHistoryChecker
{
    /// <summary>Grants of one lock an entry makes at most (LockTable's tokens count them in 16 bits, 8 in a generation).</summary>
    private const int MaxGrantsPerEntry = 1 << 16;

    private const int MaxGrantsPerGenerationEntry = 1 << 8;

    /// <summary>Grants per lock in the entry being checked.</summary>
    private readonly Dictionary<string, int> _entryGrants = new(StringComparer.Ordinal);

    /// <summary>The grants of the pass being read (a run of Granted events), in event order.</summary>
    private readonly List<PassGrant> _pass = [];

    /// <summary>Whether <paramref name="waiter"/> fits now: in each of its locks, room for it and only multi-lock requests ahead of it.</summary>
    private bool Fits(TrackedWait waiter)
    {
        if (HeldOff)
        {
            return false;
        }

        foreach (string name in NamesOf(waiter))
        {
            if (!_history.Locks.TryGetValue(name, out var state))
            {
                return false;
            }

            int at = state.Queue.FindIndex(w => w.Request == waiter.Request);
            if (at < 0 || !OnlySetsAhead(state, at) || !HasRoomFor(state, state.Queue[at].Writer))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Whether a new request for <paramref name="part"/> fits its lock now: room for it, and only multi-lock requests waiting.</summary>
    private bool FitsNew(LockPart part)
        => !HeldOff && (!_history.Locks.TryGetValue(part.Name, out var state)
            || (OnlySetsAhead(state, state.Queue.Count) && HasRoomFor(state, part.Type == LockCommandType.AcquireWrite, part)));

    private static bool OnlySetsAhead(TrackedLock state, int position)
    {
        for (int i = 0; i < position; i++)
        {
            if (state.Queue[i].Group is null)
            {
                return false;
            }
        }

        return true;
    }

    private static IReadOnlyList<string> NamesOf(TrackedWait waiter) => waiter.Group?.Names ?? [waiter.Name];

    /// <summary>Every waiting request once (a multi-lock request by its waiter in the queue of its first lock).</summary>
    private IEnumerable<TrackedWait> Waiters()
        => _history.Locks.Values.SelectMany(s => s.Queue).Where(w => w.Group is null || w.Name == w.Group.Names[0]);

    /// <summary>
    /// The locks that may keep a fitting waiter waiting to the next entry: those this entry granted its
    /// maximum number of times, and every lock of a fitting waiter that needs one of them (kept for it).
    /// </summary>
    private HashSet<string> OutOfTokens()
    {
        int max = _history.Generation == 0 ? MaxGrantsPerEntry : MaxGrantsPerGenerationEntry;
        var locks = _entryGrants.Where(g => g.Value >= max).Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        for (bool more = locks.Count > 0; more;)
        {
            more = false;
            foreach (var waiter in Waiters().Where(w => NamesOf(w).Any(locks.Contains) && Fits(w)).ToList())
            {
                foreach (string name in NamesOf(waiter))
                {
                    more |= locks.Add(name);
                }
            }
        }

        return locks;
    }

    /// <summary>Records a grant of the pass being read, starting a new pass at a new request's grants after other grants (the command's own pass).</summary>
    private void ReadGrant(long index, RequestId request, LockEvent e, bool fromQueue, TrackedWait[] ahead)
    {
        _entryGrants[e.Name] = _entryGrants.GetValueOrDefault(e.Name) + 1;
        if (_pass.Count > 0)
        {
            var last = _pass[^1];
            if (!fromQueue && e.Request == request && last.Request != request)
            {
                EndPass(index);
            }
            else
            {
                int byName = string.CompareOrdinal(last.Name, e.Name);
                Require(byName < 0 || (byName == 0 && last.Token < e.Token), index,
                    $"the grants of one pass are not ordered by lock, then token: '{last.Name}' ({last.Token}) before '{e.Name}' ({e.Token})");
            }
        }

        Stats.GrantsPastSets += ahead.Length > 0 ? 1 : 0;
        _pass.Add(new PassGrant(e.Request, e.Name, e.Token, ahead));
    }

    /// <summary>
    /// A pass of grants ended: nothing that fits is left, and no request granted in it took the room of a
    /// waiter ahead of it in one of its queues (checked with its grants of the pass taken back).
    /// </summary>
    private void EndPass(long index)
    {
        if (_pass.Count == 0)
        {
            return;
        }

        CheckClosure(index, "after a pass of grants");
        foreach (var grants in _pass.GroupBy(g => g.Request))
        {
            var earlier = grants.SelectMany(g => g.Ahead).DistinctBy(w => w.Request).ToList();
            if (earlier.Count == 0)
            {
                continue;
            }

            var taken = new List<(TrackedLock State, TrackedHold Hold, int At)>();
            foreach (var grant in grants)
            {
                var state = _history.Locks[grant.Name];
                int at = state.Holders.FindIndex(h => h.Token == grant.Token);
                taken.Add((state, state.Holders[at], at));
                state.Holders.RemoveAt(at);
            }

            Stats.ArrivalOrderChecks += earlier.Count;
            var outOfTokens = OutOfTokens();
            var wronged = earlier.Find(w => Waiters().Any(x => x.Request == w.Request) && Fits(w) && !NamesOf(w).Any(outOfTokens.Contains));
            for (int i = taken.Count - 1; i >= 0; i--)
            {
                taken[i].State.Holders.Insert(taken[i].At, taken[i].Hold);
            }

            Require(wronged is null, index,
                $"{grants.Key} was granted [{string.Join(", ", grants.Select(g => g.Name))}] and took the room of {Describe(wronged)}, which waited ahead of it and would fit without those grants (arrival order)");
        }

        _pass.Clear();
    }

    /// <summary>No waiter that fits is left, but for one the entry ran out of tokens for.</summary>
    private void CheckClosure(long index, string when)
    {
        if (HeldOff)
        {
            return;
        }

        HashSet<string>? outOfTokens = null;
        foreach (var waiter in Waiters())
        {
            if (Fits(waiter))
            {
                outOfTokens ??= OutOfTokens();
                Require(NamesOf(waiter).Any(outOfTokens.Contains), index,
                    $"{Describe(waiter)} has room in each of its locks with only multi-lock requests ahead of it, but it waits {when}");
            }
        }
    }

    /// <summary>Whether a new request for <paramref name="parts"/> that fits may still wait: its entry ran out of tokens for one of its locks.</summary>
    private bool OutOfTokensFor(IEnumerable<LockPart> parts)
    {
        var outOfTokens = OutOfTokens();
        return parts.Any(p => outOfTokens.Contains(p.Name));
    }

    private static string Describe(TrackedWait? waiter) => waiter?.Group is { } group
        ? $"multi-lock request {group.Request} for [{string.Join(", ", group.Names)}]"
        : $"waiter {waiter?.Request} of '{waiter?.Name}'";

    /// <summary>A grant of the pass being read: the waiters that were ahead of it in that lock's queue (all multi-lock requests).</summary>
    private sealed record PassGrant(RequestId Request, string Name, long Token, TrackedWait[] Ahead);
}
