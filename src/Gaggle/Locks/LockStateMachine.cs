using Gaggle.Runtime;

namespace Gaggle.Locks;

/// <summary>
/// The replicated lock table as one of the node's state machines, plus what this node decides about
/// its own requests: which requests of this incarnation callers still wait for (their events go out
/// to them), which holds they watch, and which grants nobody wants any more (given back at once).
/// </summary>
/// <remarks>
/// A request is watched from its append until its caller claims the outcome (<see cref="Unwatch"/>) or
/// gives up (<see cref="GiveUp"/>). A caller that gives up before its outcome arrives leaves the request
/// abandoned: a queued wait is cancelled, and a grant that still comes is released. A grant that
/// reaches no watcher at all is released too. Releases are proposed by the driver
/// (<see cref="TakeCommands"/>), as appends of this node.
/// </remarks>
internal sealed class LockStateMachine : INodeStateMachine, ISnapshotPart
{
    /// <summary>The name of the lock table in node snapshots.</summary>
    public const string SnapshotName = "gaggle.locks";

    private readonly string _id;
    private readonly ulong _incarnation;
    private readonly NodeEvents _events;
    private readonly Dictionary<long, RequestWatch> _requests = [];
    private readonly HashSet<(string Name, long Token)> _holds = [];
    private readonly List<LockCommand> _commands = [];
    private int _abandoned;

    public LockStateMachine(string id, ulong incarnation, NodeEvents events)
    {
        _id = id;
        _incarnation = incarnation;
        _events = events;
    }

    private enum WatchState
    {
        Waiting,
        Granted,
        Abandoned,
    }

    public LockTable Table { get; } = new();

    /// <summary>The events of the last command applied (all nodes' requests), for observers such as the simulation's checker.</summary>
    public IReadOnlyList<LockEvent> LastEvents { get; private set; } = [];

    /// <summary>The last command applied, or null when the entry held no valid command.</summary>
    public LockCommand? LastCommand { get; private set; }

    /// <summary>A time entry of this node is in flight until this tick (one at a time).</summary>
    public long TimeEntryInFlightUntilTick { get; set; } = -1;

    /// <summary>
    /// A request of another incarnation of this node's member id may be waiting in the table: one was
    /// applied, or a snapshot was read. The driver looks (<see cref="LockTable.OtherIncarnationsWaiting"/>)
    /// and clears it when none is.
    /// </summary>
    public bool EarlierIncarnationMayWait { get; set; }

    /// <summary>Lock requests of this node still watched.</summary>
    public int WatchedRequests => _requests.Count;

    /// <summary>Holds of this node watched by their handles.</summary>
    public int WatchedHolds => _holds.Count;

    public IEnumerable<(string Name, ISnapshotPart Part)> SnapshotParts => [(SnapshotName, this)];

    public void Apply(long index, long term, in EntryEnvelope envelope)
    {
        if (LockCommand.TryDecode(envelope.Payload) is not { } command)
        {
            LastCommand = null;
            LastEvents = [];
            _events.Dropped.Add(new DroppedMessage(envelope.Origin, $"entry {index} holds a malformed lock command", "invalid"));
            return;
        }

        if (command.Type == LockCommandType.Time && envelope.Origin == _id)
        {
            TimeEntryInFlightUntilTick = -1;
        }

        if (command.Type.IsAcquire() && envelope.Origin == _id && envelope.Incarnation != _incarnation)
        {
            EarlierIncarnationMayWait = true;
        }

        if (envelope.Origin == _id && envelope.Incarnation == _incarnation && _requests.TryGetValue(envelope.Sequence, out var own))
        {
            // Known applied even once the duplicate table forgot it (at this node's removal, should it be added again).
            own.Applied = true;
        }

        ApplyCommand(command, new RequestId(envelope.Origin, envelope.Incarnation, envelope.Sequence), envelope.Stamp, index);
    }

    /// <summary>
    /// Elastic mode: the configuration entry at <paramref name="index"/> lists <paramref name="members"/>.
    /// When a request waits for a node that is not one of them, the table applies a
    /// <see cref="LockCommandType.MembersChanged"/> (which ends those waits) and true is returned;
    /// otherwise nothing changes (false), so most configuration entries leave the table alone.
    /// </summary>
    /// <param name="index">The configuration entry's index.</param>
    /// <param name="members">Its members.</param>
    /// <param name="founding">It founds a cluster or forces a new generation (see <see cref="LockCommand.Founding"/>).</param>
    public bool ApplyMembers(long index, IReadOnlySet<string> members, bool founding = false)
    {
        if (!Table.WaitsOutside(members))
        {
            return false;
        }

        ApplyCommand(new LockCommand(LockCommandType.MembersChanged, "") { Members = members, Founding = founding }, default, 0, index);
        return true;
    }

    private void ApplyCommand(LockCommand command, RequestId request, long stamp, long index)
    {
        LastCommand = command;
        Table.Apply(command, request, stamp, index);
        var events = Table.TakeEvents();
        LastEvents = events;
        foreach (var lockEvent in events)
        {
            if (lockEvent.Request.Node == _id && lockEvent.Request.Incarnation == _incarnation)
            {
                OnOwnEvent(lockEvent);
            }
        }
    }

    /// <summary>A caller waits for the outcome of its request <paramref name="sequence"/> of <paramref name="parts"/> locks, the first named <paramref name="name"/> (registered with the request's append).</summary>
    public void Watch(long sequence, int parts = 1, string name = "") => _requests[sequence] = new RequestWatch { Parts = parts, Name = name };

    /// <summary>The caller took its outcome: no more events for the request (a grant now belongs to its handle).</summary>
    public void Unwatch(long sequence) => Forget(sequence);

    /// <summary>
    /// The caller stopped waiting without taking an outcome: a grant it got is released, a queued wait
    /// cancelled, and a grant that comes later released.
    /// </summary>
    /// <param name="sequence">The request's sequence.</param>
    /// <param name="name">The lock's name.</param>
    /// <param name="nowUs">The driver's clock: an abandoned request whose outcome never comes is forgotten later (<see cref="ForgetAbandoned"/>).</param>
    public void GiveUp(long sequence, string name, long nowUs)
    {
        if (_requests.TryGetValue(sequence, out var given) && given.State == WatchState.Abandoned)
        {
            // Given up already (the node stopping gave up everything, then the caller its own).
            return;
        }

        if (_requests.TryGetValue(sequence, out var watch) && watch.State == WatchState.Granted)
        {
            // Every lock of a multi-lock request was granted by the one entry that granted the first.
            Forget(sequence);
            foreach (var (grantedName, token) in watch.Grants)
            {
                _commands.Add(new LockCommand(LockCommandType.Release, grantedName, Token: token));
            }

            return;
        }

        int parts = watch?.Parts ?? 1;
        Forget(sequence);
        _requests[sequence] = new RequestWatch { State = WatchState.Abandoned, AbandonedAtUs = nowUs, Parts = parts, Name = name };
        _abandoned++;
        _commands.Add(new LockCommand(LockCommandType.CancelWait, name, RequestSequence: sequence));
    }

    /// <summary>The node stops: every request still watched is given up (see <see cref="GiveUp"/>), in sequence order.</summary>
    public void GiveUpAll(long nowUs)
    {
        foreach (var (sequence, watch) in _requests.Where(r => r.Value.State != WatchState.Abandoned).OrderBy(r => r.Key).ToArray())
        {
            GiveUp(sequence, watch.Name, nowUs);
        }
    }

    /// <summary>
    /// Forgets abandoned requests given up before <paramref name="beforeUs"/>: their acquire may never
    /// commit (it was not retried). Should it commit after all, its grant reaches no watcher and is
    /// released all the same.
    /// </summary>
    public void ForgetAbandoned(long beforeUs)
    {
        if (_abandoned == 0)
        {
            return;
        }

        foreach (var (sequence, watch) in _requests.ToArray())
        {
            if (watch.State == WatchState.Abandoned && watch.AbandonedAtUs < beforeUs)
            {
                Forget(sequence);
            }
        }
    }

    /// <summary>
    /// A handle watches its hold: the hold's end (expired or released) is reported, at once when it has
    /// ended already (a handle is made after its grant was applied here, and the end may have been
    /// applied before the handle asked).
    /// </summary>
    public void WatchHold(string name, long token)
    {
        if (Table.IsHeld(name, token))
        {
            _holds.Add((name, token));
        }
        else
        {
            _events.HoldsEnded.Add((name, token));
        }
    }

    public void UnwatchHold(string name, long token) => _holds.Remove((name, token));

    /// <summary>Lock commands this node decided to append (releases and cancelled waits); the list is cleared by the next call.</summary>
    public List<LockCommand> TakeCommands()
    {
        if (_commands.Count == 0)
        {
            return _commands;
        }

        var taken = new List<LockCommand>(_commands);
        _commands.Clear();
        return taken;
    }

    /// <summary>
    /// After a snapshot replaced the table, requests of ours it answered produced no events here: a
    /// request that holds its locks now (all of them, for a multi-lock request) is granted; one the
    /// table neither holds nor queues, but whose command was applied, was answered while we were
    /// behind (denied, or granted and already ended) and is reported denied. So is a multi-lock request
    /// some of whose holds ended: the holds left are released.
    /// </summary>
    public void ReconcileAfterSnapshot(Func<long, bool> applied)
    {
        if (_requests.Count == 0)
        {
            return;
        }

        var table = Table.IndexRequests();
        foreach (var (sequence, watch) in _requests.ToArray())
        {
            if (watch.State == WatchState.Granted || !(watch.Applied || applied(sequence)))
            {
                continue;
            }

            var request = new RequestId(_id, _incarnation, sequence);
            var (holds, waiting) = table.TryGetValue(request, out var found) ? found : ([], false);
            if (waiting)
            {
                continue;
            }

            if (holds.Count == watch.Parts)
            {
                foreach (var (name, holder) in holds)
                {
                    OnOwnEvent(new LockEvent(LockEventType.Granted, name, request, holder.Token, holder.Expiry));
                }

                continue;
            }

            foreach (var (name, holder) in holds)
            {
                _commands.Add(new LockCommand(LockCommandType.Release, name, Token: holder.Token));
            }

            OnOwnEvent(new LockEvent(LockEventType.Denied, "", request));
        }
    }

    public void WriteSnapshot(Stream output) => Table.Write(output);

    public void ReadSnapshot(Stream input)
    {
        Table.Read(input);
        EarlierIncarnationMayWait = true;
    }

    private void OnOwnEvent(LockEvent lockEvent)
    {
        if (lockEvent.Type is LockEventType.Expired or LockEventType.Released && _holds.Remove((lockEvent.Name, lockEvent.Token)))
        {
            _events.HoldsEnded.Add((lockEvent.Name, lockEvent.Token));
        }

        long sequence = lockEvent.Request.Sequence;
        if (!_requests.TryGetValue(sequence, out var watch))
        {
            if (lockEvent.Type == LockEventType.Granted)
            {
                // Nobody waits for this grant any more: give it back at once.
                _commands.Add(new LockCommand(LockCommandType.Release, lockEvent.Name, Token: lockEvent.Token));
            }

            return;
        }

        if (watch.State == WatchState.Abandoned)
        {
            if (lockEvent.Type == LockEventType.Granted)
            {
                _commands.Add(new LockCommand(LockCommandType.Release, lockEvent.Name, Token: lockEvent.Token));
            }

            if (lockEvent.Type is LockEventType.Granted or LockEventType.Denied or LockEventType.Rejected or LockEventType.Cancelled)
            {
                Forget(sequence);
            }

            return;
        }

        if (lockEvent.Type == LockEventType.Granted)
        {
            watch.State = WatchState.Granted;
            watch.Grants.Add((lockEvent.Name, lockEvent.Token));
        }

        _events.LockEvents.Add((sequence, lockEvent));
    }

    private void Forget(long sequence)
    {
        if (_requests.Remove(sequence, out var watch) && watch.State == WatchState.Abandoned)
        {
            _abandoned--;
        }
    }

    private sealed class RequestWatch
    {
        public long AbandonedAtUs { get; init; }

        public WatchState State { get; set; }

        /// <summary>Its command was applied here.</summary>
        public bool Applied { get; set; }

        /// <summary>How many locks the request asks for (several for a multi-lock request).</summary>
        public int Parts { get; init; } = 1;

        /// <summary>The name its withdrawal names: the (first) lock's.</summary>
        public string Name { get; init; } = "";

        /// <summary>The grants of the request, one per lock, once granted.</summary>
        public List<(string Name, long Token)> Grants { get; } = [];
    }
}
