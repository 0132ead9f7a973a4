using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>A lock property that did not hold; the simulator reports it with the seed and step.</summary>
internal sealed class LockSimViolation(string message) : Exception(message);

/// <summary>
/// Checks the lock history. Every node's table must equal, at each applied index, what the first node
/// to apply that index had (serialized tables and events compared). That common history is then
/// checked command by command against a model of the rules kept here, independently of LockTable:
/// mutual exclusion and the semaphore bound in lease-clock time, a reader-writer lock held by one writer
/// alone or by readers only (and a name in use as one kind of lock refusing the others), holds ending only when released or
/// due, fencing tokens unique and increasing per lock (two locks may share a token), FIFO grants, waits ending only at their
/// deadline or on cancel, no idle slot while someone waits, reads showing the model's holders and queue, and in an
/// elastic run nothing granted during a generation's hold-off and tokens carrying their generation. The common history is kept per cluster
/// generation (each is a cluster of its own); client observations are checked against it too, and the
/// clients' beliefs across generations (see LockHistoryChecker.Clients.cs).
/// </summary>
internal sealed partial class LockHistoryChecker
{
    private const ulong DuplicateMark = 0xD0_D0_D0_D0_D0_D0_D0_D0;

    private readonly Dictionary<long, History> _histories = [];
    private readonly HashSet<(long Generation, string Lock, long Token)> _tokens = [];

    /// <summary>The history of the generation being checked.</summary>
    private History _history = new();

    public LockSimStats Stats { get; } = new();

    /// <summary>Number of locks held or waited for in the common history of <paramref name="generation"/> now.</summary>
    public int LiveLocks(long generation) => HistoryOf(generation).Locks.Count;

    /// <summary>
    /// The cluster of <paramref name="generation"/> ended and its id was founded again: its history is
    /// closed. (Tokens are unique per generation id: two generations of one number, founded after the
    /// store lost its value, may repeat each other's tokens, as nothing remembers them; they never hold
    /// at once, which the clients' beliefs check.)
    /// </summary>
    public void Close(long generation)
    {
        _histories.Remove(generation);
        _tokens.RemoveWhere(t => t.Generation == generation);
    }

    public void ObserveDuplicate(string node, long index, long generation = 0)
    {
        _history = HistoryOf(generation);
        Agree(node, index, DuplicateMark, () => { });
    }

    /// <summary>A node of generation id <paramref name="generation"/> (by default the table's generation number) applied a lock command; its table and events must match the common history of that generation.</summary>
    public void ObserveApplied(string node, LockTable table, long index, EntryEnvelope envelope, LockCommand command, IReadOnlyList<LockEvent> events, long generation = -1)
    {
        _history = HistoryOf(generation < 0 ? table.Generation : generation);
        Require(GenerationIds.NumberOf(_history.Generation) == table.Generation, index, $"{node}'s lock table says generation {table.Generation}, its node {GenerationIds.Describe(_history.Generation)}");
        _history.GrantsFrom = table.GrantsFrom;
        if (table.NextDeadline != table.ScanNextDeadline())
        {
            throw new LockSimViolation($"{node}'s lock table after index {index} names {table.NextDeadline} as its next deadline; a scan of its locks finds {table.ScanNextDeadline()}");
        }

        using var stream = new MemoryStream();
        table.Write(stream);
        ulong fingerprint = Fingerprint(stream.GetBuffer().AsSpan(0, (int)stream.Length), events);
        Agree(node, index, fingerprint, () => Check(table, index, envelope, command, events));
    }

    private void Agree(string node, long index, ulong fingerprint, Action checkFirst)
    {
        if (_history.Fingerprints.TryGetValue(index, out ulong expected))
        {
            if (expected != fingerprint)
            {
                throw new LockSimViolation($"{node}'s lock table after index {index} differs from the one the first node to apply it had "
                    + (expected == DuplicateMark || fingerprint == DuplicateMark ? "(one dropped the entry as a duplicate, the other applied it)" : "(state or events)"));
            }

            return;
        }

        if (index <= _history.CheckedUpTo)
        {
            throw new LockSimViolation($"{node} applied index {index} first, but the history was already checked up to {_history.CheckedUpTo}");
        }

        _history.Fingerprints[index] = fingerprint;
        _history.CheckedUpTo = index;
        checkFirst();
    }

    private static ulong Fingerprint(ReadOnlySpan<byte> table, IReadOnlyList<LockEvent> events)
    {
        ulong hash = 14695981039346656037;
        void Mix(long value)
        {
            hash = (hash ^ (ulong)value) * 1099511628211;
        }

        foreach (byte b in table)
        {
            Mix(b);
        }

        foreach (var e in events)
        {
            Mix((long)e.Type);
            Mix(e.Name.GetHashCode(StringComparison.Ordinal));
            Mix(e.Request.Node.GetHashCode(StringComparison.Ordinal));
            Mix((long)e.Request.Incarnation);
            Mix(e.Request.Sequence);
            Mix(e.Token);
            Mix(e.Expiry);
        }

        return hash;
    }

    /// <summary>One command of the common history against the model.</summary>
    private void Check(LockTable table, long index, EntryEnvelope envelope, LockCommand command, IReadOnlyList<LockEvent> events)
    {
        _history.Now = Math.Max(_history.Now, envelope.Stamp);
        Require(table.Now == _history.Now, index, $"the table's clock is {table.Now}; the highest stamp applied is {_history.Now}");
        var request = new RequestId(envelope.Origin, envelope.Incarnation, envelope.Sequence);
        Stats.Commands[(int)command.Type]++;
        bool answered = false;
        foreach (var e in events)
        {
            answered |= e.Request == request && e.Type is LockEventType.Granted or LockEventType.Denied or LockEventType.Rejected;
            ApplyEvent(index, command, request, e);
        }

        switch (command.Type)
        {
            case var type when type.IsAcquire() && !answered:
                Enqueue(index, command, request);
                break;
            case LockCommandType.Release:
                Require(!Lock(command.Name).Holds(command.Token), index,
                    $"a committed release of token {command.Token} left the hold in place");
                break;
            case LockCommandType.Renew:
                Require(!Lock(command.Name).Holds(command.Token) || events.Any(e => e.Type == LockEventType.Renewed && e.Token == command.Token), index,
                    $"renewal of held token {command.Token} of '{command.Name}' had no effect");
                break;
            case LockCommandType.CancelWait:
                Require(!Lock(command.Name).Queue.Exists(w => w.Request == request with { Sequence = command.RequestSequence }), index,
                    $"a committed cancel left request {command.RequestSequence} of {request.Node} waiting for '{command.Name}'");
                break;
        }

        foreach (var (name, state) in _history.Locks.ToList())
        {
            CheckState(table, index, name, state);
        }
    }

    private void ApplyEvent(long index, LockCommand command, RequestId request, LockEvent e)
    {
        var state = Lock(e.Name);
        switch (e.Type)
        {
            case LockEventType.Expired:
                var expired = state.Holder(e.Token) ?? throw Violation(index, $"token {e.Token} of '{e.Name}' expired but was not held");
                Require(expired.Expiry <= _history.Now, index, $"token {e.Token} of '{e.Name}' expired at {_history.Now}, before its lease ran out at {expired.Expiry}");
                state.Holders.Remove(expired);
                Stats.Expired++;
                break;
            case LockEventType.Released:
                Require(command.Type == LockCommandType.Release && command.Token == e.Token, index, $"token {e.Token} of '{e.Name}' released by a {command.Type}");
                state.Holders.Remove(state.Holder(e.Token) ?? throw Violation(index, $"token {e.Token} of '{e.Name}' released but was not held"));
                Stats.Released++;
                break;
            case LockEventType.Renewed:
                var renewed = state.Holder(e.Token) ?? throw Violation(index, $"token {e.Token} of '{e.Name}' renewed but was not held");
                Require(command.Type == LockCommandType.Renew && command.Token == e.Token, index, $"token {e.Token} renewed by a {command.Type}");
                Require(e.Expiry == Math.Max(renewed.Expiry, _history.Now + command.LeaseMs), index, $"token {e.Token} renewed to {e.Expiry}, not max({renewed.Expiry}, {_history.Now} + {command.LeaseMs})");
                renewed.Expiry = e.Expiry;
                Stats.Renewed++;
                break;
            case LockEventType.Granted:
                Grant(index, command, request, e, state);
                break;
            case LockEventType.Denied:
                Deny(index, command, request, e, state);
                break;
            case LockEventType.Cancelled:
                Require(command.Type == LockCommandType.CancelWait, index, $"a wait for '{e.Name}' cancelled by a {command.Type}");
                Require(state.Queue.RemoveAll(w => w.Request == e.Request) == 1, index, $"{e.Request} cancelled but was not waiting for '{e.Name}'");
                Stats.Cancelled++;
                break;
            case LockEventType.Rejected:
                Require(command.Type.IsAcquire() && state.Kind != LockKindInModel.Unset && (state.Kind, state.MaxCount) != KindOf(command), index,
                    $"an acquire of '{e.Name}' as {KindOf(command)} rejected while the lock is {(state.Kind, state.MaxCount)}");
                Stats.Rejected++;
                break;
            case LockEventType.Inspected:
                Require(command.Type == LockCommandType.Inspect && e.Request == request && e.Info is { } info && info.AsOfIndex == index
                    && info.Holders.Select(h => (h.FencingToken, h.Kind)).SequenceEqual(state.Holders.Select(h => (h.Token, KindOf(state, h)))) && info.QueueLength == state.Queue.Count, index,
                    $"a read of '{e.Name}' showed {(e.Info is { } shown ? $"tokens [{string.Join(", ", shown.Holders.Select(h => h.FencingToken))}] and {shown.QueueLength} waiting as of {shown.AsOfIndex}" : "nothing")}, "
                    + $"not tokens [{string.Join(", ", state.Holders.Select(h => h.Token))}] and {state.Queue.Count} waiting");
                break;
            default:
                throw Violation(index, $"unexpected event {e.Type}");
        }

        if (state.Holders.Count == 0 && state.Queue.Count == 0)
        {
            // The table forgets an unused lock at once; a later user may pick another maxCount.
            _history.Locks.Remove(e.Name);
        }
    }

    private void Grant(long index, LockCommand command, RequestId request, LockEvent e, TrackedLock state)
    {
        bool writer;
        int position = state.Queue.FindIndex(w => w.Request == e.Request);
        if (position >= 0)
        {
            Require(position == 0, index, $"'{e.Name}' granted to waiter {e.Request} at position {position} of its queue (FIFO)");
            writer = state.Queue[0].Writer;
            state.Queue.RemoveAt(0);
            Stats.GrantedFromQueue++;
        }
        else
        {
            Require(command.Type.IsAcquire() && e.Request == request, index, $"'{e.Name}' granted to {e.Request}, which neither waited nor asked now");
            Require(state.Queue.Count == 0, index, $"'{e.Name}' granted at once to {e.Request} while {state.Queue.Count} waited (FIFO)");
            Fix(state, command);
            writer = command.Type == LockCommandType.AcquireWrite;
        }

        Require(HasRoomFor(state, writer), index,
            $"'{e.Name}' granted to {e.Request}{(state.Kind == LockKindInModel.ReaderWriter ? (writer ? " for writing" : " for reading") : "")} while held by {state.Holders.Count} "
            + $"({(state.Kind == LockKindInModel.ReaderWriter ? "a reader-writer lock" : $"max {state.MaxCount}")}): {string.Join(", ", state.Holders.Select(h => $"{h.Token}{(h.Writer ? " (writer)" : "")} until {h.Expiry}"))}");
        Require(e.Token == TokenFrom(index, e.Token), index, $"token {e.Token} does not come from index {index}{(_history.Generation == 0 ? "" : $" of generation {_history.Generation}")}");
        Require(!HeldOff, index, $"'{e.Name}' granted to {e.Request} at {_history.Now}, during the generation's hold-off (nothing granted before {_history.GrantsFrom})");
        Require(e.Token > state.LastToken, index, $"token {e.Token} of '{e.Name}' is not above the previous one, {state.LastToken}");
        Require(_tokens.Add((_history.Generation, e.Name, e.Token)), index, $"token {e.Token} of '{e.Name}' granted twice");
        Require(_history.GrantedTokens.TryAdd(e.Request, e.Token), index, $"{e.Request} granted twice");
        Require(e.Expiry > _history.Now, index, $"'{e.Name}' granted with a lease ending at {e.Expiry}, not after now ({_history.Now})");
        state.LastToken = e.Token;
        state.Holders.Add(new TrackedHold(e.Token, e.Request, writer) { Expiry = e.Expiry });
        Stats.Granted++;
        if (state.Kind == LockKindInModel.ReaderWriter)
        {
            Stats.ReaderWriterGrants[writer ? 1 : 0]++;
            Stats.MostReadersTogether = Math.Max(Stats.MostReadersTogether, state.Holders.Count(h => !h.Writer));
        }
    }

    private void Deny(long index, LockCommand command, RequestId request, LockEvent e, TrackedLock state)
    {
        int position = state.Queue.FindIndex(w => w.Request == e.Request);
        if (position >= 0)
        {
            Require(state.Queue[position].Deadline <= _history.Now, index, $"{e.Request} stopped waiting for '{e.Name}' at {_history.Now}, before its deadline {state.Queue[position].Deadline}");
            state.Queue.RemoveAt(position);
            Stats.WaitsTimedOut++;
            return;
        }

        Require(command.Type.IsAcquire() && e.Request == request && command.WaitMs <= 0, index, $"{e.Request} denied '{e.Name}' without waiting or trying once");
        bool writer = command.Type == LockCommandType.AcquireWrite;
        Require(!HasRoomFor(state, writer, command) || state.Queue.Count > 0 || HeldOff, index,
            $"a try-once of '{e.Name}' ({KindOf(command)}) denied with {state.Holders.Count} held ({(state.Kind, state.MaxCount)}) and nobody waiting");
        Stats.TriesDenied++;
    }

    private void Enqueue(long index, LockCommand command, RequestId request)
    {
        var state = Lock(command.Name);
        if (state.Holders.Exists(h => h.Request == request) || state.Queue.Exists(w => w.Request == request))
        {
            return;
        }

        Require(!_history.GrantedTokens.ContainsKey(request), index, $"{request} asked again after its grant");
        Require(command.WaitMs > 0, index, $"a try-once of '{command.Name}' by {request} got no answer");
        Fix(state, command);
        bool writer = command.Type == LockCommandType.AcquireWrite;
        Require(!HasRoomFor(state, writer) || state.Queue.Count > 0 || HeldOff, index, $"{request} queued for '{command.Name}' while it had room for it");
        state.Queue.Add(new TrackedWait(request, _history.Now + command.WaitMs, writer));
        Stats.Queued++;
        Stats.LongestQueue = Math.Max(Stats.LongestQueue, state.Queue.Count);
    }

    /// <summary>After each command: bounds hold, nothing overdue survives, no slot idles while someone waits, the table agrees with the model.</summary>
    private void CheckState(LockTable table, long index, string name, TrackedLock state)
    {
        Require(state.Kind == LockKindInModel.ReaderWriter
            ? state.Holders.TrueForAll(h => !h.Writer) || state.Holders.Count == 1
            : state.Holders.Count <= state.MaxCount && state.Holders.TrueForAll(h => !h.Writer), index,
            $"'{name}' has {state.Holders.Count} holders ({state.Holders.Count(h => h.Writer)} writers), more than its {(state.Kind, state.MaxCount)} allows");
        Require(state.Holders.TrueForAll(h => h.Expiry > _history.Now), index, $"'{name}' still held past the end of a lease at {_history.Now}");
        Require(state.Queue.TrueForAll(w => w.Deadline > _history.Now), index, $"a wait for '{name}' outlived its deadline at {_history.Now}");
        Require(state.Queue.Count == 0 || !HasRoomFor(state, state.Queue[0].Writer) || HeldOff, index, $"'{name}' has room for the first of the {state.Queue.Count} waiting");
        var info = table.Describe(name, index);
        bool same = info.QueueLength == state.Queue.Count
            && (info.MaxCount == state.MaxCount || (info.MaxCount == 0 && state.Holders.Count == 0 && state.Queue.Count == 0))
            && info.Holders.Select(h => (h.FencingToken, h.LeaseExpiry, h.Kind)).SequenceEqual(state.Holders.Select(h => (h.Token, h.Expiry, KindOf(state, h))));
        Require(same, index, $"the table holds '{name}' as [{string.Join(", ", info.Holders.Select(h => $"{h.FencingToken} ({h.Kind}) until {h.LeaseExpiry}"))}] with {info.QueueLength} waiting (max {info.MaxCount}); "
            + $"the model has [{string.Join(", ", state.Holders.Select(h => $"{h.Token} ({KindOf(state, h)}) until {h.Expiry}"))}] with {state.Queue.Count} (max {state.MaxCount})");
        if (state.Holders.Count == 0 && state.Queue.Count == 0)
        {
            // The table forgets an unused lock; a later user may pick another maxCount.
            _history.Locks.Remove(name);
        }
    }

    /// <summary>What <paramref name="command"/> asks the lock to be: a reader-writer lock, or slots of its MaxCount.</summary>
    private static (LockKindInModel Kind, int MaxCount) KindOf(LockCommand command)
        => command.Type == LockCommandType.Acquire ? (LockKindInModel.Slots, command.MaxCount) : (LockKindInModel.ReaderWriter, 0);

    /// <summary>The kind of hold <paramref name="hold"/> is, as LockInfo tells it.</summary>
    private static LockHoldKind KindOf(TrackedLock state, TrackedHold hold) => state.Kind == LockKindInModel.ReaderWriter
        ? hold.Writer ? LockHoldKind.Write : LockHoldKind.Read
        : state.MaxCount == 1 ? LockHoldKind.Mutex : LockHoldKind.SemaphoreSlot;

    /// <summary>The first grant or queued request fixes what the lock is, until the table forgets it.</summary>
    private static void Fix(TrackedLock state, LockCommand command)
    {
        if (state.Kind == LockKindInModel.Unset)
        {
            (state.Kind, state.MaxCount) = KindOf(command);
        }
    }

    /// <summary>
    /// The rule: a new holder fits (queue aside) in a free slot of a mutex or semaphore; in a reader-writer
    /// lock, a writer only when nobody holds it, a reader only when no writer does. A lock not in use
    /// takes the kind <paramref name="asked"/> asks for.
    /// </summary>
    private static bool HasRoomFor(TrackedLock state, bool writer, LockCommand? asked = null)
    {
        var (kind, maxCount) = state.Kind == LockKindInModel.Unset && asked is not null ? KindOf(asked) : (state.Kind, state.MaxCount);
        return kind == LockKindInModel.ReaderWriter
            ? writer ? state.Holders.Count == 0 : !state.Holders.Exists(h => h.Writer)
            : state.Holders.Count < maxCount;
    }

    /// <summary>Whether the generation being checked is still in its hold-off (it grants nothing yet: see LockTable.GrantsFrom).</summary>
    private bool HeldOff => _history.Now < _history.GrantsFrom;

    /// <summary>The token a grant at <paramref name="index"/> carries (LockTable: the generation in the high bits in elastic mode), with <paramref name="token"/>'s count within the entry.</summary>
    private long TokenFrom(long index, long token)
        => _history.Generation == 0 ? (index << 16) | (token & 0xFFFF) : (GenerationIds.NumberOf(_history.Generation) << 48) + (index << 8) + (token & 0xFF);

    private History HistoryOf(long generation)
    {
        if (!_histories.TryGetValue(generation, out var history))
        {
            history = new History { Generation = generation };
            _histories[generation] = history;
        }

        return history;
    }

    private TrackedLock Lock(string name)
    {
        if (!_history.Locks.TryGetValue(name, out var state))
        {
            state = new TrackedLock();
            _history.Locks[name] = state;
        }

        return state;
    }

    private static void Require(bool condition, long index, string what)
    {
        if (!condition)
        {
            throw Violation(index, what);
        }
    }

    private static LockSimViolation Violation(long index, string what) => new($"at log index {index}: {what}");

    /// <summary>
    /// The common lock history of one cluster generation (elastic runs: each generation's log is a new
    /// one, from index 1, with a table that starts empty; other runs have generation 0 alone).
    /// </summary>
    private sealed class History
    {
        public long Generation { get; init; }

        /// <summary>The table's fingerprint after each index, as the first node to apply it had it.</summary>
        public Dictionary<long, ulong> Fingerprints { get; } = [];

        public Dictionary<string, TrackedLock> Locks { get; } = new(StringComparer.Ordinal);

        /// <summary>The token each request was granted (a request a node carried into a generation it founded may have been granted in the one before).</summary>
        public Dictionary<RequestId, long> GrantedTokens { get; } = [];

        public long CheckedUpTo { get; set; }

        /// <summary>The lease clock: the highest stamp applied.</summary>
        public long Now { get; set; }

        /// <summary>The table time before which the generation grants nothing (its hold-off).</summary>
        public long GrantsFrom { get; set; }
    }

    private enum LockKindInModel
    {
        /// <summary>Not fixed yet: no grant or queued request so far.</summary>
        Unset,

        /// <summary>A mutex or semaphore: <see cref="TrackedLock.MaxCount"/> slots.</summary>
        Slots,

        /// <summary>A reader-writer lock.</summary>
        ReaderWriter,
    }

    private sealed class TrackedLock
    {
        public LockKindInModel Kind { get; set; }

        /// <summary>The slots of a mutex or semaphore; 0 until the first grant or queued request fixes it, and for a reader-writer lock.</summary>
        public int MaxCount { get; set; }

        public List<TrackedHold> Holders { get; } = [];

        public List<TrackedWait> Queue { get; } = [];

        public long LastToken { get; set; }

        public TrackedHold? Holder(long token) => Holders.Find(h => h.Token == token);

        public bool Holds(long token) => Holders.Exists(h => h.Token == token);
    }

    private sealed record TrackedHold(long Token, RequestId Request, bool Writer)
    {
        public long Expiry { get; set; }
    }

    private sealed record TrackedWait(RequestId Request, long Deadline, bool Writer);
}

/// <summary>What a run's history contained, to show the checks were not vacuous.</summary>
internal sealed class LockSimStats
{
    public long[] Commands { get; } = new long[10];

    /// <summary>Reader-writer grants: for reading, for writing.</summary>
    public long[] ReaderWriterGrants { get; } = new long[2];

    /// <summary>The most readers that held a reader-writer lock at once.</summary>
    public int MostReadersTogether { get; set; }

    public long Granted { get; set; }

    public long GrantedFromQueue { get; set; }

    public long Queued { get; set; }

    public long Released { get; set; }

    public long Expired { get; set; }

    public long Renewed { get; set; }

    public long TriesDenied { get; set; }

    public long WaitsTimedOut { get; set; }

    public long Cancelled { get; set; }

    public long Rejected { get; set; }

    public int LongestQueue { get; set; }

    public long ClientGrants { get; set; }

    public long ContendedBeliefs { get; set; }

    public long LostOnArrival { get; set; }
}
