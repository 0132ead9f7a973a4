using Gaggle.Channels;

namespace Gaggle.Locks;

/// <summary>
/// The replicated lock table: applied from committed lock commands, identically on every node. It
/// never reads a clock: time is the leader's stamp on each entry (<see cref="Now"/> only moves
/// forward), so lease expiry and hand-over happen at the same log position everywhere.
/// </summary>
/// <remarks>
/// Per lock: up to MaxCount holders (1 = mutex) and a FIFO queue of waiters. A grant's fencing token
/// is <c>(entry index &lt;&lt; 16) | n</c>, n counting grants of that lock in the entry, so tokens of
/// one lock strictly increase in grant order and never repeat, even after the lock is forgotten. In an
/// elastic cluster's generation g (see <see cref="Generation"/>) it is
/// <c>(g &lt;&lt; 48) + (entry index &lt;&lt; 8) + n</c>, so every token of a later generation is larger
/// than every token of an earlier one, as long as generations stay below 32768 and a generation's log
/// below 2^40 entries. One entry grants a lock at most 256 times in a generation (65536 otherwise);
/// the waiters that would fit beyond that are granted by the next entry (the leader's time entry, which
/// a deadline due at once brings), so no two holders of a lock ever share a token.
/// Commands that do not apply (a release of an unknown token, ...) change nothing.
/// Who is granted when is decided in one place (LockTable.Grants.cs); a multi-lock request waits in
/// the queue of each of its locks and is granted all at once (LockTable.Groups.cs).
/// </remarks>
internal sealed partial class LockTable
{
    /// <summary>The longest lease a request or renewal may ask for: the longest LockLeaseDuration, an hour.</summary>
    public const long MaxLeaseMs = 3_600_000;

    /// <summary>The longest wait a request may ask for: 365 days, the wait of a request without timeout.</summary>
    public const long MaxWaitMs = 365L * 24 * 3_600_000;

    private readonly Dictionary<string, LockState> _locks = new(StringComparer.Ordinal);
    private readonly List<LockEvent> _events = [];

    /// <summary>Grants per lock within the entry being applied (the n of its tokens); cleared for every entry.</summary>
    private readonly Dictionary<string, int> _grants = new(StringComparer.Ordinal);
    private long _nextDeadline = long.MaxValue;

    /// <summary>
    /// Every lease expiry and wait deadline ever set, by time, with the lock's name; an entry is live
    /// while that lock still has a holder or waiter with that deadline (a renewal or a release leaves
    /// the old one behind, dropped when it reaches the front). Keeps the next deadline at O(log n) per
    /// command instead of a scan of every lock.
    /// </summary>
    private readonly PriorityQueue<string, long> _deadlines = new();

    /// <summary>The elastic cluster generation whose log this table applies (0 outside elastic mode): the high bits of its tokens, set by <see cref="LockCommandType.Generation"/>.</summary>
    public long Generation { get; private set; }

    /// <summary>
    /// The table time before which nothing is granted (requests queue; try-once requests are denied):
    /// a new generation's hold-off, so that every hold of the generation before it has expired.
    /// </summary>
    public long GrantsFrom { get; private set; }

    /// <summary>The lease clock (ms): the highest leader stamp applied so far.</summary>
    public long Now { get; private set; }

    /// <summary>The earliest lease expiry or wait deadline pending; long.MaxValue when none.</summary>
    public long NextDeadline => _nextDeadline;

    public int Count => _locks.Count;

    /// <summary>
    /// Decide every grant by the general pass of <see cref="Settle"/>, without the shortcuts taken when
    /// only requests of one lock are concerned: the tests check that both decide the same.
    /// </summary>
    internal bool GeneralPassOnly { get; init; }

    /// <summary>Events produced since the last call, in order.</summary>
    public List<LockEvent> TakeEvents()
    {
        var events = new List<LockEvent>(_events);
        _events.Clear();
        return events;
    }

    public void Apply(LockCommand command, RequestId request, long stamp, long index)
    {
        Now = Math.Max(Now, stamp);
        var grants = _grants;
        grants.Clear();
        _frozen.Clear();
        if (command.Type == LockCommandType.Generation)
        {
            // The hold-off binds from this entry on, the expiries it finds due included: a waiter next in
            // line is not granted at the very entry that says another generation's holds may still run.
            Generation = Math.Max(Generation, command.Token);
            if (Now + command.LeaseMs > GrantsFrom)
            {
                GrantsFrom = Now + command.LeaseMs;
                foreach (var (name, state) in _locks)
                {
                    if (state.Waiters.Count > 0)
                    {
                        // The queue moves up when the hold-off ends, as for a waiter that came during it.
                        _deadlines.Enqueue(name, GrantsFrom);
                    }
                }
            }
        }

        if (Now >= _nextDeadline)
        {
            ExpireDue();
            if (command is not { Type: LockCommandType.MembersChanged, Founding: true })
            {
                // (A founding configuration grants nothing: what is due is looked at at the next entry.)
                Settle(index, grants);
            }
        }

        switch (command.Type)
        {
            case LockCommandType.Acquire or LockCommandType.AcquireRead or LockCommandType.AcquireWrite:
                Acquire(command, request, index, grants);
                break;
            case LockCommandType.AcquireAll:
                AcquireAll(command, request, index, grants);
                break;
            case LockCommandType.Release:
                if (_locks.TryGetValue(command.Name, out var released) && released.RemoveHolder(command.Token) is { } gone)
                {
                    _events.Add(new LockEvent(LockEventType.Released, command.Name, gone.Request, gone.Token));
                    Touch(command.Name);
                }

                break;
            case LockCommandType.Renew:
                if (LeaseInRange(command.LeaseMs) && _locks.TryGetValue(command.Name, out var renewed) && renewed.Holders.Find(h => h.Token == command.Token) is { } holder)
                {
                    holder.Expiry = Math.Max(holder.Expiry, Now + command.LeaseMs);
                    _deadlines.Enqueue(command.Name, holder.Expiry);
                    _events.Add(new LockEvent(LockEventType.Renewed, command.Name, holder.Request, holder.Token, holder.Expiry));
                }

                break;
            case LockCommandType.CancelWait:
                var target = request with { Sequence = command.RequestSequence };
                if (_locks.TryGetValue(command.Name, out var waited) && waited.Waiters.Find(w => w.Request == target) is { Group: { } group })
                {
                    // A multi-lock request stops waiting for all of its locks.
                    RemoveGroup(group);
                    _events.Add(new LockEvent(LockEventType.Cancelled, group.Names[0], target));
                }
                else if (waited is not null && waited.Waiters.RemoveAll(w => w.Request == target) > 0)
                {
                    _waiting.Remove(target);
                    _events.Add(new LockEvent(LockEventType.Cancelled, command.Name, target));
                    // A writer that stops waiting may leave readers at the front of the queue that fit now.
                    Touch(command.Name);
                }

                break;
            case LockCommandType.Inspect:
                _events.Add(new LockEvent(LockEventType.Inspected, command.Name, request, Info: Describe(command.Name, index)));
                break;
            case LockCommandType.IncarnationEnded:
                EndWaitsOfEndedIncarnation(request, (ulong)command.Token);
                break;
            case LockCommandType.MembersChanged:
                EndWaitsOfNonMembers(command.Members);
                if (command.Founding)
                {
                    LookAgainAtTheNextEntry();
                }

                break;
        }

        Settle(index, grants);
        SettleNextDeadline();
    }

    /// <summary>Whether lock <paramref name="name"/> is held with fencing token <paramref name="token"/>.</summary>
    public bool IsHeld(string name, long token)
        => _locks.TryGetValue(name, out var state) && state.Holders.Exists(h => h.Token == token);

    public LockInfo Describe(string name, long index)
    {
        if (!_locks.TryGetValue(name, out var state))
        {
            return new LockInfo(name, 0, [], 0, index);
        }

        var kind = state.ReaderWriter ? (LockHoldKind?)null : state.MaxCount == 1 ? LockHoldKind.Mutex : LockHoldKind.SemaphoreSlot;
        return new LockInfo(name, state.MaxCount, state.Holders.Select(h => new LockHolderInfo(h.Request.Node, h.Token, h.Since, h.Expiry)
        {
            Kind = kind ?? (h.Writer ? LockHoldKind.Write : LockHoldKind.Read),
        }).ToArray(), state.Waiters.Count, index);
    }

    private void Acquire(LockCommand command, RequestId request, long index, Dictionary<string, int> grants)
    {
        bool readerWriter = command.Type != LockCommandType.Acquire;
        bool writer = command.Type == LockCommandType.AcquireWrite;
        if ((!readerWriter && command.MaxCount < 1) || !LeaseInRange(command.LeaseMs) || !WaitInRange(command.WaitMs) || command.Name.Length == 0)
        {
            // Only a buggy or hostile member sends this; it must not block a queue.
            _events.Add(new LockEvent(LockEventType.Rejected, command.Name, request,
                Reason: $"The acquire request for '{command.Name}' is invalid: maxCount {command.MaxCount} (must be >= 1), lease {command.LeaseMs} ms (1 to {MaxLeaseMs}), wait {command.WaitMs} ms (0 to {MaxWaitMs})."));
            return;
        }

        int maxCount = readerWriter ? LockState.ReaderWriterMaxCount : command.MaxCount;
        if (!_locks.TryGetValue(command.Name, out var state))
        {
            state = new LockState(maxCount);
            _locks[command.Name] = state;
        }
        else if (state.MaxCount != maxCount)
        {
            _events.Add(new LockEvent(LockEventType.Rejected, command.Name, request, Reason: state.ReaderWriter || readerWriter
                ? $"'{command.Name}' is in use as {DescribeKind(state.MaxCount)}; this request asked for {DescribeKind(maxCount)}."
                : $"'{command.Name}' is in use with a maximum of {state.MaxCount} holders; this request asked for {maxCount}."));
            return;
        }

        if (_waiting.Contains(request) || state.IsHeldBy(request))
        {
            // The same request again (a retried append that escaped deduplication): it already counts.
            // Waiting anywhere counts: a request id waits in one queue only (or as one multi-lock request).
            Forget(command.Name, state);
            return;
        }

        // It may be granted now only if it has room and only multi-lock requests (or nobody) wait ahead of it.
        bool mayFit = Now >= GrantsFrom && state.HasRoomFor(writer) && !_frozen.Contains(command.Name)
            && (state.Waiters.Count == 0 || state.Waiters[0].Group is not null);
        if (mayFit && state.Waiters.Count == 0 && TokenLeft(command.Name, grants) && !GeneralPassOnly)
        {
            // Nobody waits: what Settle would decide, without a queue entry.
            Grant(command.Name, state, request, command.LeaseMs, writer, index, grants);
            return;
        }

        // Granted now if it fits (Settle decides, past the sets ahead); otherwise it waits, or a try-once is denied.
        var waiter = new LockWaiter(request, command.LeaseMs, Now + command.WaitMs, writer) { Arrival = index };
        state.Waiters.Add(waiter);
        _waiting.Add(request);
        if (mayFit || GeneralPassOnly)
        {
            Touch(command.Name);
            Settle(index, grants);
            if (!_waiting.Contains(request))
            {
                return;
            }
        }

        if (command.WaitMs <= 0)
        {
            state.Waiters.Remove(waiter);
            _waiting.Remove(request);
            _events.Add(new LockEvent(LockEventType.Denied, command.Name, request));
            Forget(command.Name, state);
            return;
        }

        _deadlines.Enqueue(command.Name, waiter.Deadline);
        if (Now < GrantsFrom)
        {
            // Held off: the queue moves up when the hold-off ends (a deadline like any other).
            _deadlines.Enqueue(command.Name, GrantsFrom);
        }
    }

    /// <summary>
    /// Whether a lease asked for is one a node may ask for (LockLeaseDuration is at most an hour). A
    /// longer one, from a buggy or hostile member, would hold a lock for as long as it says, and one
    /// near long.MaxValue would wrap the expiry around to a negative time no snapshot can hold.
    /// </summary>
    private static bool LeaseInRange(long leaseMs) => leaseMs is >= 1 and <= MaxLeaseMs;

    /// <summary>Whether a wait asked for is one a node may ask for (at most 365 days, the wait of a request without timeout).</summary>
    private static bool WaitInRange(long waitMs) => waitMs is >= 0 and <= MaxWaitMs;

    /// <summary>How a lock of <paramref name="maxCount"/> is used, for rejections.</summary>
    private static string DescribeKind(int maxCount) => maxCount switch
    {
        LockState.ReaderWriterMaxCount => "a reader-writer lock",
        1 => "a mutex",
        _ => $"a semaphore with a maximum of {maxCount} holders",
    };

    /// <summary>Leases that ran out end (Expired), waits that ran out end (Denied); the queues of the locks due are looked at again (<see cref="Settle"/>).</summary>
    private void ExpireDue()
    {
        // The locks with a deadline due are those queued at or before Now (stale entries included:
        // harmless, as Settle finds nothing to grant there). Every other lock has nothing due.
        var due = new SortedSet<string>(StringComparer.Ordinal);
        while (_deadlines.TryPeek(out string? queued, out long deadline) && deadline <= Now)
        {
            due.Add(queued);
            _deadlines.Dequeue();
        }

        foreach (var name in due)
        {
            if (!_locks.TryGetValue(name, out var state))
            {
                continue;
            }

            foreach (var holder in state.Holders.Where(h => h.Expiry <= Now).ToList())
            {
                state.Holders.Remove(holder);
                _events.Add(new LockEvent(LockEventType.Expired, name, holder.Request, holder.Token));
            }

            foreach (var waiter in state.Waiters.Where(w => w.Deadline <= Now).ToList())
            {
                if (waiter.Group is { } group)
                {
                    // Its other locks had the same deadline; it is denied once, in the name of its first lock.
                    RemoveGroup(group);
                    _events.Add(new LockEvent(LockEventType.Denied, group.Names[0], waiter.Request));
                }
                else
                {
                    state.Waiters.Remove(waiter);
                    _waiting.Remove(waiter.Request);
                    _events.Add(new LockEvent(LockEventType.Denied, name, waiter.Request));
                }
            }

            Touch(name);
        }
    }

    private void Forget(string name, LockState state)
    {
        if (state.Holders.Count == 0 && state.Waiters.Count == 0)
        {
            _locks.Remove(name);
        }
    }

    /// <summary>Drops deadlines nobody has any more from the front; the first live one is the next deadline.</summary>
    private void SettleNextDeadline()
    {
        while (_deadlines.TryPeek(out string? name, out long deadline))
        {
            if (_locks.TryGetValue(name, out var state) && (HasDeadline(state, deadline) || IsHoldOffEnd(state, deadline) || (deadline <= Now && HasGrantable(name, state))))
            {
                _nextDeadline = deadline;
                return;
            }

            _deadlines.Dequeue();
        }

        _nextDeadline = long.MaxValue;
    }

    /// <summary>Whether <paramref name="deadline"/> is the end of the hold-off, still ahead, with <paramref name="state"/>'s waiters held off.</summary>
    private bool IsHoldOffEnd(LockState state, long deadline) => deadline == GrantsFrom && Now < GrantsFrom && state.Waiters.Count > 0;

    private static bool HasDeadline(LockState state, long deadline)
    {
        foreach (var holder in state.Holders)
        {
            if (holder.Expiry == deadline)
            {
                return true;
            }
        }

        foreach (var waiter in state.Waiters)
        {
            if (waiter.Deadline == deadline)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The next deadline by a scan of every lock: what <see cref="NextDeadline"/> must equal (checked by the tests).</summary>
    internal long ScanNextDeadline()
    {
        long next = long.MaxValue;
        foreach (var (name, state) in _locks)
        {
            foreach (var holder in state.Holders)
            {
                next = Math.Min(next, holder.Expiry);
            }

            foreach (var waiter in state.Waiters)
            {
                next = Math.Min(next, waiter.Deadline);
            }

            if (state.Waiters.Count > 0 && Now < GrantsFrom)
            {
                next = Math.Min(next, GrantsFrom);
            }

            if (HasGrantable(name, state))
            {
                next = Math.Min(next, Now);
            }
        }

        return next;
    }

    private sealed class LockState(int maxCount)
    {
        /// <summary>The <see cref="MaxCount"/> of a reader-writer lock.</summary>
        public const int ReaderWriterMaxCount = 0;

        public int MaxCount { get; } = maxCount;

        public bool ReaderWriter => MaxCount == ReaderWriterMaxCount;

        /// <summary>
        /// Whether a new holder fits now, queue aside: a free slot of a mutex or semaphore; for a
        /// reader-writer lock, no holder at all for a writer, no writer holding for a reader.
        /// </summary>
        public bool HasRoomFor(bool writer) => !ReaderWriter ? Holders.Count < MaxCount
            : writer ? Holders.Count == 0
            : !Holders.Exists(h => h.Writer);

        public List<LockHolder> Holders { get; } = [];

        public List<LockWaiter> Waiters { get; } = [];

        /// <summary>Whether <paramref name="request"/> holds this lock.</summary>
        public bool IsHeldBy(RequestId request)
        {
            foreach (var holder in Holders)
            {
                if (holder.Request == request)
                {
                    return true;
                }
            }

            return false;
        }

        public LockHolder? RemoveHolder(long token)
        {
            int at = Holders.FindIndex(h => h.Token == token);
            if (at < 0)
            {
                return null;
            }

            var holder = Holders[at];
            Holders.RemoveAt(at);
            return holder;
        }
    }
}
