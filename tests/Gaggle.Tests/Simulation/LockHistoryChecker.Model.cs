using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The model the lock history is checked against: per cluster generation, each lock's kind, holders
/// and queue, and the rules of room, kinds and tokens that every check uses.
/// </summary>
internal sealed partial class LockHistoryChecker
{
    /// <summary>What <paramref name="command"/> (an acquire of one lock) asks the lock to be: a reader-writer lock, or slots of its MaxCount.</summary>
    private static (LockKindInModel Kind, int MaxCount) KindOf(LockCommand command) => KindOf(new LockPart(command.Type, command.Name, command.MaxCount));

    /// <summary>What <paramref name="part"/> asks its lock to be.</summary>
    private static (LockKindInModel Kind, int MaxCount) KindOf(LockPart part)
        => part.Type == LockCommandType.Acquire ? (LockKindInModel.Slots, part.MaxCount) : (LockKindInModel.ReaderWriter, 0);

    /// <summary>What <paramref name="command"/> asks of lock <paramref name="name"/>: the command itself, or its part of that name for a multi-lock request.</summary>
    private static LockPart PartOf(long index, LockCommand command, string name)
    {
        if (command.Type != LockCommandType.AcquireAll)
        {
            Require(name == command.Name, index, $"'{name}' granted to a request for '{command.Name}'");
            return new LockPart(command.Type, command.Name, command.MaxCount);
        }

        foreach (var part in command.Parts)
        {
            if (part.Name == name)
            {
                return part;
            }
        }

        throw Violation(index, $"'{name}' granted to a multi-lock request for [{string.Join(", ", command.Parts.Select(p => p.Name))}], which does not name it");
    }

    /// <summary>The kind of hold <paramref name="hold"/> is, as LockInfo tells it.</summary>
    private static LockHoldKind KindOf(TrackedLock state, TrackedHold hold) => state.Kind == LockKindInModel.ReaderWriter
        ? hold.Writer ? LockHoldKind.Write : LockHoldKind.Read
        : state.MaxCount == 1 ? LockHoldKind.Mutex : LockHoldKind.SemaphoreSlot;

    /// <summary>The first grant or queued request fixes what the lock is, until the table forgets it.</summary>
    private static void Fix(TrackedLock state, LockPart part)
    {
        if (state.Kind == LockKindInModel.Unset)
        {
            (state.Kind, state.MaxCount) = KindOf(part);
        }
    }

    /// <summary>
    /// The rule: a new holder fits (queue aside) in a free slot of a mutex or semaphore; in a reader-writer
    /// lock, a writer only when nobody holds it, a reader only when no writer does. A lock not in use
    /// takes the kind <paramref name="asked"/> asks for.
    /// </summary>
    private static bool HasRoomFor(TrackedLock state, bool writer, LockPart? asked = null)
    {
        var (kind, maxCount) = state.Kind == LockKindInModel.Unset && asked is { } part ? KindOf(part) : (state.Kind, state.MaxCount);
        return kind == LockKindInModel.ReaderWriter
            ? writer ? state.Holders.Count == 0 : !state.Holders.Exists(h => h.Writer)
            : state.Holders.Count < maxCount;
    }

    /// <summary>Whether the generation being checked is still in its hold-off (it grants nothing yet: see LockTable.GrantsFrom).</summary>
    private bool HeldOff => _history.Now < _history.GrantsFrom;

    /// <summary>
    /// The token a grant at <paramref name="index"/> carries (LockTable: the generation in the high bits in
    /// elastic mode: the table's, which is the history's but in the prefix a forced generation inherited),
    /// with <paramref name="token"/>'s count within the entry.
    /// </summary>
    private long TokenFrom(long index, long token)
        => _history.Generation == 0 ? (index << 16) | (token & 0xFFFF) : (_history.TableGeneration << 48) + (index << 8) + (token & 0xFF);

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
            _history.Names.Add(name);
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
    /// one, from index 1, with a table that starts empty, but for a forced generation, whose log and table
    /// start with the prefix of the one it replaced; other runs have generation 0 alone).
    /// </summary>
    private sealed class History
    {
        public long Generation { get; set; }

        /// <summary>A forced generation: the generation it replaced, and the survivor's commit index there (the end of the prefix it inherited); 0 otherwise.</summary>
        public long ForkedFrom { get; set; }

        public long ForkedAt { get; set; }

        /// <summary>Every index first applied, in order, with what the model was checked against (to replay a prefix into a forced generation's history).</summary>
        public List<AppliedRecord> Records { get; } = [];

        /// <summary>The generation number the table of the entry being checked says (its tokens' high bits).</summary>
        public long TableGeneration { get; set; }

        /// <summary>The table's fingerprint after each index, as the first node to apply it had it.</summary>
        public Dictionary<long, ulong> Fingerprints { get; } = [];

        public Dictionary<string, TrackedLock> Locks { get; } = new(StringComparer.Ordinal);

        /// <summary>Every lock name the model has seen used (the simulation uses a handful), to check the table keeps nothing of those it forgot.</summary>
        public HashSet<string> Names { get; } = new(StringComparer.Ordinal);

        /// <summary>The token each request was granted of each lock (a request a node carried into a generation it founded may have been granted in the one before).</summary>
        public Dictionary<(RequestId Request, string Lock), long> GrantedTokens { get; } = [];

        /// <summary>How many locks each request was granted (one, or every lock of a multi-lock request).</summary>
        public Dictionary<RequestId, int> GrantedLocks { get; } = [];

        public long CheckedUpTo { get; set; }

        /// <summary>The lease clock: the highest stamp applied.</summary>
        public long Now { get; set; }

        /// <summary>The table time before which the generation grants nothing (its hold-off).</summary>
        public long GrantsFrom { get; set; }
    }

    /// <summary>An index as first applied: its fingerprint and what the model checked (no command: dropped as a duplicate).</summary>
    private sealed record AppliedRecord(long Index, ulong Fingerprint, long GrantsFrom, long TableGeneration, EntryEnvelope Envelope, LockCommand? Command, IReadOnlyList<LockEvent> Events);

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

    /// <summary>A waiter in the queue of lock <paramref name="Name"/>; <paramref name="Group"/> when it is one lock of a multi-lock request (one waiter in each of its locks' queues).</summary>
    private sealed record TrackedWait(RequestId Request, string Name, long Deadline, bool Writer, TrackedGroup? Group = null);
}
