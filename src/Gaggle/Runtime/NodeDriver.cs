using Gaggle.Channels;
using Gaggle.Leadership;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Storage;

namespace Gaggle.Runtime;

/// <summary>
/// Everything a node decides, around its <see cref="RaftCore"/>: appends (proposed, forwarded, retried,
/// timed out), the duplicate table and the state machines the committed log feeds (the lock table
/// among them), the lease clock and its time entries, snapshots, the leadership lease and RPC routing.
/// Synchronous and free of I/O, threads and clocks: time (a monotonic reading in microseconds) and
/// randomness (in <see cref="RaftConfig.Random"/>) come in as arguments, so the seeded simulation runs
/// this very code.
/// </summary>
/// <remarks>
/// Inputs: <see cref="Receive(string, ReadOnlyMemory{byte})"/>, <see cref="Tick"/> and the commands
/// (<see cref="Append"/>, <see cref="Dispatch"/>, the lock watches, ...). Output, in a loop until
/// <see cref="TakeReady"/> returns null: persist what the <see cref="NodeReady"/> holds, THEN send its
/// messages, then <see cref="Advance"/> (applies what committed); meanwhile <see cref="Events"/>
/// collects what the caller must carry out (complete callers, raise events, run RPC handlers, save
/// a snapshot and then <see cref="CompactTo"/>). Not thread-safe: one loop owns it.
/// </remarks>
internal sealed partial class NodeDriver
{
    private readonly NodeDriverSettings _settings;
    private readonly SequenceCounter _sequences;
    private readonly RaftCore _core;
    private readonly NodeReady _ready = new();
    private readonly List<Outgoing> _outbox = [];
    private readonly AppendPipeline _appends;
    private readonly DispatchRouter _dispatches;
    private readonly ForwardedTraces _forwardedTraces = new();
    private readonly LeaseClock _leaseClock = new();
    private readonly LeadershipLease _leadership;
    private readonly MembershipChanges _membership;
    private readonly Autopilot? _autopilot;
    private long _tickCount;
    private long _incarnationEndedInFlightUntilUs;
    private long _nowUs;
    private SoftState? _softState;
    private bool _lostStorageReported;
    private long _droppedMessages;

    /// <param name="settings">The node's settings.</param>
    /// <param name="persisted">What storage holds: hard state, log entries, snapshot (restored into the state machines here).</param>
    /// <param name="sequences">The node's append sequence numbers (shared with its callers).</param>
    public NodeDriver(NodeDriverSettings settings, PersistedState persisted, SequenceCounter sequences)
    {
        _settings = settings;
        _sequences = sequences;
        Machines = new NodeStateMachines(settings.Id, settings.Incarnation, settings.StateMachines, Events, settings.Admissions);
        if (persisted.Snapshot is { } snapshot)
        {
            Machines.ReadSnapshot(SnapshotFrame.Machines(snapshot.Data));
        }

        _core = new RaftCore(settings.Raft, persisted.HardState, persisted.Entries, snapshot: persisted.Snapshot);
        _appends = new AppendPipeline(settings.Id, settings.RetryTicks, settings.MaxMessageBytes, _outbox, Events, settings.Admissions);
        _dispatches = new DispatchRouter(settings.Incarnation, _outbox, Events);
        // The lease relies on the members refusing other candidates while they hear from their leader,
        // which only check-quorum makes them do (RaftCore.InLease): without it no lease is ever trusted
        // (a zero lease), and only a sole voter's leadership is.
        _leadership = new LeadershipLease(settings.Raft.CheckQuorum ? settings.LeadershipLeaseUs : 0);
        _membership = new MembershipChanges(Events);
        _autopilot = settings.Autopilot is { } autopilot ? new Autopilot(autopilot) : null;
        _generations = settings.Elastic is { } elastic ? new GenerationTracker(elastic.MemberTimeoutUs, elastic.BootstrapWaitUs, elastic.Echoes) : null;
        _fence = settings.Elastic is { } fenced ? new GenerationFence(fenced) : null;
    }

    public string Id => _settings.Id;

    public ulong Incarnation => _settings.Incarnation;

    /// <summary>The Raft core (read its state; drive it only through this driver).</summary>
    public RaftCore Core => _core;

    public NodeStateMachines Machines { get; }

    /// <summary>What the node loop must carry out; it clears it when done.</summary>
    public NodeEvents Events { get; } = new();

    /// <summary>Hand committed application entries out in <see cref="NodeEvents.Published"/> (someone listens).</summary>
    public bool PublishCommitted
    {
        get => Machines.Application.Publish;
        set => Machines.Application.Publish = value;
    }

    /// <summary>Hand this leader's new application entries out in <see cref="NodeEvents.Appended"/>.</summary>
    public bool PublishAppended { get; set; }

    /// <summary>Messages dropped because they were malformed or did not apply, including those the Raft core refused.</summary>
    public long DroppedMessages => _droppedMessages + _core.DroppedMessages + Machines.MalformedEntries;

    /// <summary>Appends waiting for their entry to be applied here.</summary>
    public int PendingAppends => _appends.Count;

    public long Ticks => _tickCount;

    /// <summary>A message from node <paramref name="from"/>, as the channel delivered it: decoded here; anything malformed is dropped and counted.</summary>
    public void Receive(string from, ReadOnlyMemory<byte> payload)
    {
        if (!GaggleOptionsValidator.IsValidId(from))
        {
            Drop(from, "the sender id is not a valid node id", "invalid-sender");
            return;
        }

        WireMessage message;
        long generation;
        try
        {
            message = WireCodec.Decode(payload, from, Id, out generation);
        }
        catch (FormatException e) when (payload.Length > 0 && payload.Span[0] != WireCodec.Version)
        {
            // Another release's instance on this cluster's channel: not silence (see GenerationTracker.HeardIncompatible).
            _generations?.HeardIncompatible(_nowUs);
            Drop(from, $"{e.Message} Instances of different wire versions do not form one cluster: stop the old ones before starting the new (a new generation forms once they are gone), or give the new release another cluster name", "wire-version");
            return;
        }
        catch (FormatException e)
        {
            Drop(from, e.Message, "malformed");
            return;
        }

        Receive(from, message, generation);
    }

    /// <summary>A decoded message from node <paramref name="from"/>, sent in cluster generation <paramref name="generation"/>.</summary>
    public void Receive(string from, WireMessage message, long generation = 0)
    {
        if (!AdmitGeneration(from, message, generation))
        {
            return;
        }

        _autopilot?.Heard(from, _nowUs);
        switch (message)
        {
            case RaftWireMessage raft:
                MaybeTellNotAMember(from, raft.Message);
                long refusedBefore = _core.DroppedMessages;
                _core.Step(raft.Message);
                if (_core.DroppedMessages != refusedBefore)
                {
                    // The core counts what it refuses (DroppedMessages includes it); the metric must too.
                    Events.Dropped.Add(new DroppedMessage(from, "refused by the Raft core", "refused", _core.DroppedMessages - refusedBefore));
                }

                break;
            case ForwardAppend forward:
                ProposeForwarded(from, forward);
                break;
            case TraceContexts traces:
                _forwardedTraces.Remember(from, traces);
                break;
            case DispatchRequest request:
                _dispatches.Serve(_core, from, request, _forwardedTraces.TakeCall(from, request.CallId));
                break;
            case DispatchReply reply:
                _dispatches.OnReply(reply);
                break;
            case JoinAnnounce or JoinRefused or NotAMember:
                ReceiveJoining(from, message);
                break;
        }
    }

    /// <summary>One tick of the node's clock: Raft's timers, time entries, retries, append deadlines.</summary>
    /// <param name="nowUs">The node's monotonic clock, in microseconds.</param>
    public void Tick(long nowUs)
    {
        _nowUs = Math.Max(_nowUs, nowUs);
        _tickCount++;
        _core.Tick();
        FenceProposals();
        MaybeAppendTimeEntry();
        MaybeEndWaitsOfEarlierIncarnations();
        if (_tickCount % _settings.RetryTicks == 0)
        {
            _appends.RetryStalled(_core, _tickCount);
            _dispatches.RouteUnsent(_core);
        }

        _appends.Expire(_nowUs);
        Machines.Locks.ForgetAbandoned(_nowUs - _settings.LockSettleUs);
        _membership.Update(_core, _nowUs);
        if (_autopilot?.Next(_core, _nowUs, _membership.ChangePending) is { } change)
        {
            _membership.Request(_core, change, _nowUs);
        }

        TickJoining();
    }

    /// <summary>One of this node's own broadcasts came back (see <see cref="Channels.IEchoingChannel"/>): its subscription works.</summary>
    /// <param name="nowUs">The node's monotonic clock, in microseconds.</param>
    public void HeardOwnEcho(long nowUs)
    {
        _nowUs = Math.Max(_nowUs, nowUs);
        _generations?.HeardOwnEcho(_nowUs);
    }

    /// <summary>Moves the driver's clock on without a tick (inputs between ticks carry the time they arrived).</summary>
    public void Observe(long nowUs) => _nowUs = Math.Max(_nowUs, nowUs);

    /// <summary>Appends an entry (its envelope made by the caller): proposed or forwarded with the next batch.</summary>
    public void Append(DriverAppend append) => _appends.Add(append);

    /// <summary>An append of a lock request (of <paramref name="parts"/> locks, the first named <paramref name="name"/>) whose outcome the caller waits for: the request is watched from now on.</summary>
    public void AppendLockRequest(DriverAppend append, int parts = 1, string name = "")
    {
        Machines.Locks.Watch(append.Sequence, parts, name);
        _appends.Add(append);
    }

    /// <summary>The caller of append <paramref name="sequence"/> stopped waiting (it may still commit).</summary>
    public void Abandon(long sequence) => _appends.Abandon(sequence);

    public void Dispatch(DriverDispatch call) => _dispatches.Call(_core, call);

    public void AbandonDispatch(long callId) => _dispatches.Abandon(callId);

    /// <summary>The caller took the outcome of lock request <paramref name="sequence"/>.</summary>
    public void UnwatchLockRequest(long sequence) => Machines.Locks.Unwatch(sequence);

    /// <summary>The caller stopped waiting for lock request <paramref name="sequence"/> on <paramref name="name"/> without an outcome.</summary>
    public void GiveUpLockRequest(long sequence, string name)
    {
        Machines.Locks.GiveUp(sequence, name, _nowUs);
        ProposeLockCommands();
    }

    /// <summary>The node stops: every request it still watches is given up (a wait cancelled, a grant released), in one batch.</summary>
    public void GiveUpAllLockRequests()
    {
        Machines.Locks.GiveUpAll(_nowUs);
        ProposeLockCommands();
    }

    public void WatchHold(string name, long token) => Machines.Locks.WatchHold(name, token);

    public void UnwatchHold(string name, long token) => Machines.Locks.UnwatchHold(name, token);

    /// <summary>A leader leaving hands over to its most up-to-date follower, so the cluster need not wait for an election timeout.</summary>
    public void HandOverLeadership()
    {
        if (_core.Role == RaftRole.Leader && _core.MostUpToDateFollower() is { } successor)
        {
            _core.TransferLeadership(successor);
        }
    }

    public bool TransferLeadership(string target) => _core.TransferLeadership(target);

    /// <summary>A membership change or leadership transfer for this node to carry out as leader (see <see cref="MembershipChanges"/>); the result comes in <see cref="NodeEvents.MembershipResults"/>.</summary>
    public void ChangeMembership(MembershipRequest request)
    {
        if (request.Kind == MembershipRequestKind.Leave)
        {
            if (_autopilot is null)
            {
                Events.MembershipResults.Add((request, MembershipResult.Refused(GaggleMembershipError.NotSupported,
                    $"Node '{request.NodeId}' cannot leave through leader '{Id}': this cluster has no voter management (set Voters, or use elastic mode)")));
                return;
            }

            // Leave requests skip the one-at-a-time queue: the autopilot works on them with its own changes.
            _autopilot.Leaving(request.NodeId, _nowUs + request.TimeoutUs);
        }

        _membership.Request(_core, request, _nowUs);
    }

    /// <summary>Whether this node's leadership can be trusted now (the leadership lease; see <see cref="GaggleLeadership"/>).</summary>
    public bool IsLeadershipTrusted(long nowUs)
        => _leadership.IsTrusted(_core, Math.Max(_nowUs, nowUs)) && FenceOpenAt(Math.Max(_nowUs, nowUs), startClock: false);

    /// <summary>This node's applied view of lock <paramref name="name"/> (no log entry; possibly stale).</summary>
    public LockInfo PeekLock(string name) => Machines.Locks.Table.Describe(name, _core.AppliedIndex);

    /// <summary>
    /// Submits the appends batched since the last call, then returns what must be persisted and sent,
    /// or null when nothing is due. See the type's remarks for the order.
    /// </summary>
    public NodeReady? TakeReady(long nowUs)
    {
        _nowUs = Math.Max(_nowUs, nowUs);
        SubmitAppends();
        var raft = _core.TakeReady();
        if (raft is null && _outbox.Count == 0)
        {
            return null;
        }

        _ready.Raft = raft;
        _ready.Generation = Generation;
        _ready.Messages.Clear();
        if (raft is not null)
        {
            _leadership.RecordRounds(raft.Messages, _nowUs);
            foreach (var message in raft.Messages)
            {
                _ready.Messages.Add(new Outgoing(message.To, new RaftWireMessage(message)));
            }
        }

        _ready.Messages.AddRange(_outbox);
        _outbox.Clear();
        return _ready;
    }

    /// <summary>
    /// After the last <see cref="NodeReady"/> was persisted and sent: restores an installed snapshot,
    /// applies the committed entries, reacts to a change of leader, and snapshots when due.
    /// </summary>
    public void Advance()
    {
        var raft = _ready.Raft;
        _ready.Raft = null;
        if (raft is null)
        {
            return;
        }

        if (raft.Snapshot is { } installed)
        {
            // From the leader (Raft §7), persisted by now: rebuild the state machines from it.
            Machines.ReadSnapshot(SnapshotFrame.Machines(installed.Data));
            _appends.CompleteCoveredBy(installed, AppliedHere);
            Machines.Locks.ReconcileAfterSnapshot(AppliedHere);
        }

        foreach (var entry in raft.CommittedEntries)
        {
            if (Machines.TryApply(entry, out var envelope) && envelope.Origin == Id && envelope.Incarnation == _settings.Incarnation)
            {
                _appends.Complete(envelope.Sequence, entry.Index);
            }
        }

        ProposeLockCommands();
        _membership.Update(_core, _nowUs);
        MaybeSnapshot();
        if (_core.LostStorageDetected && !_lostStorageReported)
        {
            _lostStorageReported = true;
            Events.LostStorageDetected = true;
        }

        if (raft.SoftState is { } soft)
        {
            OnSoftStateChanged(soft);
        }
    }

    /// <summary>After the snapshot in <see cref="NodeEvents.SnapshotToSave"/> was saved: compacts the log (Raft §7).</summary>
    public void CompactTo(RaftSnapshot snapshot) => _core.CompactTo(snapshot, _settings.SnapshotRetainEntries);

    /// <summary>The entries of this node's log (after the last compaction).</summary>
    public IReadOnlyList<LogEntry> Log() => _core.Log.All();

    private bool AppliedHere(long sequence) => Machines.Deduplicator.Contains(Id, _settings.Incarnation, sequence);

    private void SubmitAppends()
    {
        FenceProposals();
        if (_appends.HasBatch)
        {
            long stamp = _core.Role == RaftRole.Leader ? LeaseClockNow() : 0;
            _appends.Submit(_core, stamp, _tickCount, PublishAppended);
        }
    }

    private long LeaseClockNow() => _leaseClock.Now(_core.Term, Machines.Locks.Table.Now, _nowUs);

    /// <summary>The leader appends a time entry once a lease or wait deadline has passed, so expiry needs no client traffic.</summary>
    private void MaybeAppendTimeEntry()
    {
        var locks = Machines.Locks;
        if (_core.Role != RaftRole.Leader || locks.Table.NextDeadline == long.MaxValue || _tickCount < locks.TimeEntryInFlightUntilTick || !FenceOpen)
        {
            return;
        }

        long now = LeaseClockNow();
        if (now < locks.Table.NextDeadline)
        {
            return;
        }

        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, now, Id, _settings.Incarnation, _sequences.Next(), new LockCommand(LockCommandType.Time, "").Encode()).Encode();
        if (_core.Propose([envelope]) > 0)
        {
            // One at a time; if it is lost with a leader change, try again after an election timeout.
            locks.TimeEntryInFlightUntilTick = _tickCount + _settings.RetryTicks;
        }
    }

    /// <summary>
    /// When this node's lock table shows a request of another incarnation of its own member id still
    /// waiting, that process is gone (one process runs a member id at a time: a process that ran before
    /// this one, or this one before it started over), and nobody would take the grant: appends an
    /// <see cref="LockCommandType.IncarnationEnded"/> for each such incarnation, which ends those waits.
    /// Only while it has caught up with the leader (a lagging table may show waits that ended long ago),
    /// and one round at a time, for a settle time.
    /// </summary>
    private void MaybeEndWaitsOfEarlierIncarnations()
    {
        var locks = Machines.Locks;
        if (!locks.EarlierIncarnationMayWait || _nowUs < _incarnationEndedInFlightUntilUs)
        {
            return;
        }

        bool caughtUp = _core.Role == RaftRole.Leader
            ? _core.AppliedIndex >= _core.CommitIndex
            : _core.HearsFromLeader && _core.AppliedIndex >= _core.LeaderCommitSeen;
        if (!caughtUp)
        {
            return;
        }

        var ended = locks.Table.OtherIncarnationsWaiting(Id, _settings.Incarnation);
        if (ended.Count == 0)
        {
            locks.EarlierIncarnationMayWait = false;
            return;
        }

        foreach (ulong incarnation in ended)
        {
            AppendOwnLockCommand(new LockCommand(LockCommandType.IncarnationEnded, "", Token: (long)incarnation));
        }

        _incarnationEndedInFlightUntilUs = _nowUs + _settings.LockSettleUs;
    }

    /// <summary>Appends the lock commands this node decided on (releases of unwanted grants, cancelled waits), each for one settle time at most.</summary>
    private void ProposeLockCommands()
    {
        foreach (var command in Machines.Locks.TakeCommands())
        {
            AppendOwnLockCommand(command);
        }
    }

    /// <summary>Appends a lock command this node decided on, tried for one settle time at most.</summary>
    private void AppendOwnLockCommand(LockCommand command)
    {
        long sequence = _sequences.Next();
        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, 0, Id, _settings.Incarnation, sequence, command.Encode()).Encode();
        _appends.Add(new DriverAppend(sequence, envelope) { DeadlineUs = _nowUs + _settings.LockSettleUs });
    }

    /// <summary>Once enough entries were applied since the last snapshot, snapshots the state machines (Raft §7); the loop saves it, then compacts.</summary>
    private void MaybeSnapshot()
    {
        long applied = _core.AppliedIndex;
        long last = _core.Snapshot?.Index ?? 0;
        if (_settings.SnapshotThresholdEntries == 0 || applied - last < _settings.SnapshotThresholdEntries || Events.SnapshotToSave is not null)
        {
            return;
        }

        Events.SnapshotToSave = _core.CreateSnapshot(applied, Machines.WriteSnapshot());
    }

    private void OnSoftStateChanged(SoftState soft)
    {
        var previous = _softState;
        _softState = soft;
        if (previous?.LeaderId == soft.LeaderId && previous?.Role == soft.Role)
        {
            return;
        }

        Events.LeaderChange = (Events.LeaderChange?.Previous ?? previous, soft);
        if (soft.LeaderId is not null)
        {
            _appends.ResubmitForNewLeader(_core);
            _dispatches.RouteUnsent(_core);
        }
    }

    private void Drop(string from, string reason, string kind)
    {
        _droppedMessages++;
        Events.Dropped.Add(new DroppedMessage(from, reason, kind));
    }
}
