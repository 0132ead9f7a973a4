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
/// due, fencing tokens unique and increasing per lock (two locks may share a token), the grant rule (FIFO among requests
/// of one lock, waiting multi-lock requests passed, no waiter that fits left waiting, arrival order: LockHistoryChecker.Grants.cs),
/// waits ending only at their deadline or on cancel, reads showing the model's holders and queue, multi-lock
/// requests granted all at once or not at all (LockHistoryChecker.Groups.cs), and in an
/// elastic run nothing granted during a generation's hold-off and tokens carrying their generation. The common history is kept per cluster
/// generation (each is a cluster of its own); client observations are checked against it too, and the
/// clients' beliefs across generations (see LockHistoryChecker.Clients.cs).
/// </summary>
internal sealed partial class LockHistoryChecker
{
    private const ulong DuplicateMark = 0xD0_D0_D0_D0_D0_D0_D0_D0;

    private readonly Dictionary<long, History> _histories = [];
    private HashSet<(long Generation, string Lock, long Token)> _tokens = [];

    /// <summary>The history of the generation being checked.</summary>
    private History _history = new();

    public LockSimStats Stats { get; private set; } = new();

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
        Agree(node, index, DuplicateMark, () => _history.Records.Add(new AppliedRecord(index, DuplicateMark, _history.GrantsFrom, _history.TableGeneration, default, null, [])));
    }

    /// <summary>A node of generation id <paramref name="generation"/> (by default the table's generation number) applied a lock command; its table and events must match the common history of that generation.</summary>
    public void ObserveApplied(string node, LockTable table, long index, EntryEnvelope envelope, LockCommand command, IReadOnlyList<LockEvent> events, long generation = -1)
    {
        _history = HistoryOf(generation < 0 ? table.Generation : generation);
        // A forced generation's log starts with the prefix of the one it replaced: its table says the
        // older generation until the new one's start entry applies (then grants carry the new one's bits).
        Require(GenerationIds.NumberOf(_history.Generation) == table.Generation || (_history.ForkedAt > 0 && table.Generation < GenerationIds.NumberOf(_history.Generation)), index,
            $"{node}'s lock table says generation {table.Generation}, its node {GenerationIds.Describe(_history.Generation)}");
        _history.GrantsFrom = table.GrantsFrom;
        _history.TableGeneration = table.Generation;
        if (table.NextDeadline != table.ScanNextDeadline())
        {
            throw new LockSimViolation($"{node}'s lock table after index {index} names {table.NextDeadline} as its next deadline; a scan of its locks finds {table.ScanNextDeadline()}");
        }

        using var stream = new MemoryStream();
        table.Write(stream);
        ulong fingerprint = Fingerprint(stream.GetBuffer().AsSpan(0, (int)stream.Length), events);
        Agree(node, index, fingerprint, () =>
        {
            _history.Records.Add(new AppliedRecord(index, fingerprint, _history.GrantsFrom, _history.TableGeneration, envelope, command, events));
            Check(table, index, envelope, command, events);
        });
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

    /// <summary>One command of the common history against the model (and against the table that applied it first; none when replayed: see LockHistoryChecker.Forks.cs).</summary>
    private void Check(LockTable? table, long index, EntryEnvelope envelope, LockCommand command, IReadOnlyList<LockEvent> events)
    {
        _history.Now = Math.Max(_history.Now, envelope.Stamp);
        Require(table is null || table.Now == _history.Now, index, $"the table's clock is {table?.Now}; the highest stamp applied is {_history.Now}");
        var request = new RequestId(envelope.Origin, envelope.Incarnation, envelope.Sequence);
        Stats.Commands[(int)command.Type]++;
        bool answered = false;
        _groupGrants.Clear();
        _entryGrants.Clear();
        _pass.Clear();
        foreach (var e in events)
        {
            answered |= e.Request == request && e.Type is LockEventType.Granted or LockEventType.Denied or LockEventType.Rejected;
            if (e.Type != LockEventType.Granted)
            {
                EndPass(index);
            }

            ApplyEvent(index, command, request, e);
        }

        EndPass(index);
        CheckGroupGrants(index);
        switch (command.Type)
        {
            case LockCommandType.AcquireAll when !answered:
                EnqueueGroup(index, command, request);
                break;
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
            case LockCommandType.MembersChanged or LockCommandType.IncarnationEnded:
                RequireNoWaitOfGoneNodes(index, command, request);
                break;
        }

        if (command is not { Type: LockCommandType.MembersChanged, Founding: true })
        {
            // A founding configuration grants nothing: what now fits is granted after the hold-off of the generation start that follows.
            CheckClosure(index, "after the entry");
        }
        foreach (var (name, state) in _history.Locks.ToList())
        {
            CheckState(table, index, name, state);
        }

        foreach (string name in table is null ? [] : _history.Names)
        {
            if (!_history.Locks.ContainsKey(name))
            {
                // Unused in the model, so forgotten by the table: no holder or waiter left behind (one lock of a withdrawn multi-lock request, say).
                var info = table!.Describe(name, index);
                Require(info.Holders.Count == 0 && info.QueueLength == 0, index, $"the table holds '{name}' as [{string.Join(", ", info.Holders.Select(h => h.FencingToken))}] with {info.QueueLength} waiting; the model has nobody");
            }
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
                Require(command.Type == LockCommandType.CancelWait && e.Request == request with { Sequence = command.RequestSequence }, index,
                    $"a wait of {e.Request} for '{e.Name}' cancelled by a {command.Type} of {request} (for request {command.RequestSequence})");
                if (state.Queue.Find(w => w.Request == e.Request) is { Group: { } group })
                {
                    CancelGroup(index, command, e, group);
                }
                else
                {
                    Require(state.Queue.RemoveAll(w => w.Request == e.Request) == 1, index, $"{e.Request} cancelled but was not waiting for '{e.Name}'");
                }

                Stats.Cancelled++;
                break;
            case LockEventType.Rejected when command.Type is LockCommandType.MembersChanged or LockCommandType.IncarnationEnded:
                EndWaitOfGoneNode(index, command, request, e, state);
                break;
            case LockEventType.Rejected when command.Type == LockCommandType.AcquireAll:
                RequireGroupRejection(index, command, request, e);
                Stats.Rejected++;
                break;
            case LockEventType.Rejected:
                Require(command.Type.IsAcquire() && e.Request == request && e.Name == command.Name && state.Kind != LockKindInModel.Unset && (state.Kind, state.MaxCount) != KindOf(command), index,
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
        TrackedGroup? group;
        TrackedWait[] ahead;
        int queued = state.Queue.FindIndex(w => w.Request == e.Request);
        if (queued >= 0)
        {
            // Only multi-lock requests may be passed: a waiter of one lock holds up everyone behind it.
            ahead = [.. state.Queue.Take(queued)];
            Require(OnlySetsAhead(state, queued), index,
                $"'{e.Name}' granted to waiter {e.Request} at position {queued} of its queue, past {Describe(Array.Find(ahead, w => w.Group is null))} (FIFO)");
            (writer, group) = (state.Queue[queued].Writer, state.Queue[queued].Group);
            state.Queue.RemoveAt(queued);
            Stats.GrantedFromQueue++;
        }
        else
        {
            Require(command.Type.IsAcquire() && e.Request == request, index, $"'{e.Name}' granted to {e.Request}, which neither waited nor asked now");
            var part = PartOf(index, command, e.Name);
            ahead = [.. state.Queue];
            Require(OnlySetsAhead(state, state.Queue.Count), index,
                $"'{e.Name}' granted at once to {e.Request} while {Describe(state.Queue.Find(w => w.Group is null))} waited (FIFO)");
            Require(state.Kind == LockKindInModel.Unset || (state.Kind, state.MaxCount) == KindOf(part), index,
                $"'{e.Name}' granted to {e.Request} as {KindOf(part)} while the lock is {(state.Kind, state.MaxCount)} (a request to reject)");
            Fix(state, part);
            writer = part.Type == LockCommandType.AcquireWrite;
            group = command.Type == LockCommandType.AcquireAll ? GroupOf(request, command) : null;
        }

        Require(HasRoomFor(state, writer), index,
            $"'{e.Name}' granted to {e.Request}{(state.Kind == LockKindInModel.ReaderWriter ? (writer ? " for writing" : " for reading") : "")} while held by {state.Holders.Count} "
            + $"({(state.Kind == LockKindInModel.ReaderWriter ? "a reader-writer lock" : $"max {state.MaxCount}")}): {string.Join(", ", state.Holders.Select(h => $"{h.Token}{(h.Writer ? " (writer)" : "")} until {h.Expiry}"))}");
        Require(_history.TableGeneration == GenerationIds.NumberOf(_history.Generation) || index <= _history.ForkedAt, index,
            $"'{e.Name}' granted to {e.Request} with token {e.Token} of generation {_history.TableGeneration}, at an index of forced generation {GenerationIds.Describe(_history.Generation)} "
            + $"(after the survivor's commit index {_history.ForkedAt}, where the lost majority may have granted it too) before that generation's start entry applied");
        Require(e.Token == TokenFrom(index, e.Token), index, $"token {e.Token} does not come from index {index}{(_history.Generation == 0 ? "" : $" of generation {_history.Generation}")}");
        Require(!HeldOff, index, $"'{e.Name}' granted to {e.Request} at {_history.Now}, during the generation's hold-off (nothing granted before {_history.GrantsFrom})");
        Require(e.Token > state.LastToken, index, $"token {e.Token} of '{e.Name}' is not above the previous one, {state.LastToken}");
        Require(_tokens.Add((_history.Generation, e.Name, e.Token)), index, $"token {e.Token} of '{e.Name}' granted twice");
        Require(_history.GrantedTokens.TryAdd((e.Request, e.Name), e.Token), index, $"{e.Request} granted '{e.Name}' twice");
        _history.GrantedLocks[e.Request] = _history.GrantedLocks.GetValueOrDefault(e.Request) + 1;
        if (group is not null)
        {
            _groupGrants.Add(new GroupGrant(group, e.Name, queued >= 0));
        }

        ReadGrant(index, request, e, queued >= 0, ahead);
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
            if (state.Queue[position].Group is { } group)
            {
                // A multi-lock request's wait ends once, in the name of its first lock, and in every queue.
                Require(e.Name == group.Names[0], index, $"the wait of multi-lock request {e.Request} for [{string.Join(", ", group.Names)}] ended in the name of '{e.Name}', not of its first lock");
                RemoveGroup(index, group);
                Stats.GroupWaitsTimedOut++;
            }
            else
            {
                state.Queue.RemoveAt(position);
            }

            Stats.WaitsTimedOut++;
            return;
        }

        Require(command.Type.IsAcquire() && e.Request == request && command.WaitMs <= 0, index, $"{e.Request} denied '{e.Name}' without waiting or trying once");
        if (command.Type == LockCommandType.AcquireAll)
        {
            DenyGroupTry(index, command, e);
            return;
        }

        Require(e.Name == command.Name, index, $"a try-once of '{command.Name}' denied in the name of '{e.Name}'");
        var asked = new LockPart(command.Type, command.Name, command.MaxCount);
        Require(!FitsNew(asked) || OutOfTokensFor([asked]), index,
            $"a try-once of '{e.Name}' ({KindOf(command)}) denied with {state.Holders.Count} held ({(state.Kind, state.MaxCount)}) and only multi-lock requests waiting");
        Stats.TriesDenied++;
    }

    private void Enqueue(long index, LockCommand command, RequestId request)
    {
        var state = Lock(command.Name);
        if (state.Holders.Exists(h => h.Request == request) || state.Queue.Exists(w => w.Request == request))
        {
            return;
        }

        Require(!_history.GrantedLocks.ContainsKey(request), index, $"{request} asked again after its grant");
        Require(command.WaitMs > 0, index, $"a try-once of '{command.Name}' by {request} got no answer");
        Fix(state, new LockPart(command.Type, command.Name, command.MaxCount));
        var asked = new LockPart(command.Type, command.Name, command.MaxCount);
        Require(!FitsNew(asked) || OutOfTokensFor([asked]), index, $"{request} queued for '{command.Name}' while it had room for it and only multi-lock requests waited");
        state.Queue.Add(new TrackedWait(request, command.Name, _history.Now + command.WaitMs, asked.Type == LockCommandType.AcquireWrite));
        Stats.Queued++;
        Stats.LongestQueue = Math.Max(Stats.LongestQueue, state.Queue.Count);
    }

    /// <summary>After each command: bounds hold, nothing overdue survives, the table agrees with the model (no waiter that fits is left: <see cref="CheckClosure"/>).</summary>
    private void CheckState(LockTable? table, long index, string name, TrackedLock state)
    {
        Require(state.Kind == LockKindInModel.ReaderWriter
            ? state.Holders.TrueForAll(h => !h.Writer) || state.Holders.Count == 1
            : state.Holders.Count <= state.MaxCount && state.Holders.TrueForAll(h => !h.Writer), index,
            $"'{name}' has {state.Holders.Count} holders ({state.Holders.Count(h => h.Writer)} writers), more than its {(state.Kind, state.MaxCount)} allows");
        Require(state.Holders.TrueForAll(h => h.Expiry > _history.Now), index, $"'{name}' still held past the end of a lease at {_history.Now}");
        Require(state.Queue.TrueForAll(w => w.Deadline > _history.Now), index, $"a wait for '{name}' outlived its deadline at {_history.Now}");
        if (table is not null)
        {
            var info = table.Describe(name, index);
            bool same = info.QueueLength == state.Queue.Count
                && (info.MaxCount == state.MaxCount || (info.MaxCount == 0 && state.Holders.Count == 0 && state.Queue.Count == 0))
                && info.Holders.Select(h => (h.FencingToken, h.LeaseExpiry, h.Kind)).SequenceEqual(state.Holders.Select(h => (h.Token, h.Expiry, KindOf(state, h))));
            Require(same, index, $"the table holds '{name}' as [{string.Join(", ", info.Holders.Select(h => $"{h.FencingToken} ({h.Kind}) until {h.LeaseExpiry}"))}] with {info.QueueLength} waiting (max {info.MaxCount}); "
                + $"the model has [{string.Join(", ", state.Holders.Select(h => $"{h.Token} ({KindOf(state, h)}) until {h.Expiry}"))}] with {state.Queue.Count} (max {state.MaxCount})");
        }

        if (state.Holders.Count == 0 && state.Queue.Count == 0)
        {
            // The table forgets an unused lock; a later user may pick another maxCount.
            _history.Locks.Remove(name);
        }
    }
}
