using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle.Tests.LockSimulation;

/// <summary>An append a simulated node waits to see committed: GaggleNode's own PendingAppend (whose retry rules it follows) plus its caller's timeout.</summary>
internal sealed class SimAppend(long sequence, byte[] envelope, long deadlineUs, Action<long>? onCommitted, Action? onTimedOut)
{
    public PendingAppend Pending { get; } = new(sequence, envelope);

    public long Sequence => Pending.Sequence;

    public byte[] Envelope => Pending.Envelope;

    /// <summary>The caller's timeout on the node's own clock; long.MaxValue for none.</summary>
    public long DeadlineUs { get; } = deadlineUs;

    public Action<long>? OnCommitted { get; } = onCommitted;

    public Action? OnTimedOut { get; } = onTimedOut;
}

/// <summary>
/// One simulated server running GaggleNode's lock path around a <see cref="RaftCore"/>: appends proposed
/// on the leader or forwarded to it and retried, the leader's lease clock stamped into entries, time
/// entries when a deadline passes, committed lock commands applied to its own <see cref="LockTable"/>
/// and their events routed to this incarnation's clients. Storage (hard state and log) survives a
/// crash; everything else is rebuilt on restart, from the log or (a durable state machine) as it was.
/// Each member mirrors the GaggleNode member of the same name.
/// </summary>
internal sealed partial class LockSimNode(LockSimulator sim, string id, NodeClock clock)
{
    private readonly List<LogEntry> _log = [];
    private readonly Dictionary<long, SimAppend> _appends = [];
    private readonly List<SimAppend> _posted = [];
    private readonly List<SimAppend> _toSubmit = [];
    private readonly Dictionary<long, Action<LockEvent>> _lockWaiters = [];
    private readonly Dictionary<(string Name, long Token), Action> _holds = [];
    private ProposalDeduplicator _deduplicator = new();
    private long _nextSequence;
    private long _tickCount;
    private long _timeEntryInFlightUntilTick = -1;
    private SoftState? _lastSoftState;
    private long _leaseClockBase;
    private long _leaseClockStartUs;
    private long _lastStamp;
    private long _leaseClockTerm = -1;

    public string Id { get; } = id;

    public NodeClock Clock { get; } = clock;

    public RaftCore? Core { get; private set; }

    public bool IsUp => Core is not null;

    public HardState HardState { get; private set; } = HardState.Empty;

    public LockTable Table { get; private set; } = new();

    public ulong Incarnation { get; private set; }

    /// <summary>The last index applied to <see cref="Table"/>.</summary>
    public long Applied { get; private set; }

    /// <summary>The real time of this node's next tick.</summary>
    public long NextTickAtUs { get; set; }

    public List<LockSimClient> Clients { get; } = [];

    /// <summary>This node's monotonic clock now, in microseconds.</summary>
    public long LocalUs => Clock.Local(sim.NowUs);

    public long LeaseMs => sim.Settings.LeaseMs;

    public void Start(RaftConfig config, bool durableStateMachine, ulong incarnation, int clients)
    {
        if (!durableStateMachine)
        {
            Table = new LockTable();
            _deduplicator = new ProposalDeduplicator();
            Applied = 0;
        }
        else
        {
            // As if restored from a snapshot taken at the applied index.
            var copy = new LockTable();
            using (var stream = new MemoryStream())
            {
                Table.Write(stream);
                stream.Position = 0;
                copy.Read(stream);
            }

            Table = copy;
            var writer = new WireWriter();
            _deduplicator.Write(writer);
            var reader = new WireReader(writer.ToArray());
            _deduplicator = new ProposalDeduplicator();
            _deduplicator.Read(ref reader);
        }

        Core = new RaftCore(config, HardState, _log.ToArray(), Applied);
        Incarnation = incarnation;
        _nextSequence = 0;
        _tickCount = 0;
        _timeEntryInFlightUntilTick = -1;
        _lastSoftState = null;
        _leaseClockBase = 0;
        _leaseClockStartUs = 0;
        _lastStamp = 0;
        _leaseClockTerm = -1;
        Clients.Clear();
        for (int i = 0; i < clients; i++)
        {
            Clients.Add(new LockSimClient(sim, this, $"{Id}.{incarnation}.c{i}"));
        }

        NextTickAtUs = sim.NowUs + Clock.RealSpan(LockSimSettings.TickMs * 1000L);
        RunLoop();
    }

    /// <summary>The process dies: its clients with it, and everything not in storage.</summary>
    public void Crash()
    {
        foreach (var client in Clients)
        {
            client.OnProcessDied();
        }

        Clients.Clear();
        Core = null;
        _appends.Clear();
        _posted.Clear();
        _toSubmit.Clear();
        _lockWaiters.Clear();
        _holds.Clear();
    }

    public long NextSequence() => ++_nextSequence;

    /// <summary>GaggleNode.AppendEnvelopeAsync: the append is queued for the loop; its caller stops waiting at <paramref name="deadlineUs"/>.</summary>
    public void Append(long sequence, LockCommand command, long deadlineUs, Action<long>? onCommitted, Action? onTimedOut)
    {
        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, 0, Id, Incarnation, sequence, command.Encode()).Encode();
        var pending = new SimAppend(sequence, envelope, deadlineUs, onCommitted, onTimedOut);
        _appends[sequence] = pending;
        _posted.Add(pending);
    }

    /// <summary>The caller gave up waiting (GaggleNode.AppendEnvelopeAsync's finally): no more retries.</summary>
    public void Abandon(long sequence) => _appends.Remove(sequence);

    public void WatchLockRequest(long sequence, Action<LockEvent> onEvent) => _lockWaiters[sequence] = onEvent;

    public void UnwatchLockRequest(long sequence) => _lockWaiters.Remove(sequence);

    public void WatchHold(string name, long token, Action onEnded) => _holds[(name, token)] = onEnded;

    public void UnwatchHold(string name, long token) => _holds.Remove((name, token));

    /// <summary>GaggleLocks.ReleaseAbandonedAsync: a best-effort release whose failure leaves the lease to expire.</summary>
    public void ReleaseAbandoned(string name, long token)
        => Append(NextSequence(), new LockCommand(LockCommandType.Release, name, Token: token), LocalUs + (LeaseMs * 1000), null, null);

    public void Tick()
    {
        HandleTick();
        EndBatch(timers: true);
    }

    public void Deliver(LockSimPacket packet)
    {
        Handle(packet);
        EndBatch(timers: false);
    }

    /// <summary>GaggleNode.Handle(TickInput): one input of a loop pass.</summary>
    public void HandleTick()
    {
        var core = Core!;
        TakePosted();
        _tickCount++;
        core.Tick();
        MaybeAppendTimeEntry(core);
        if (_tickCount % sim.Settings.RetryTicks == 0)
        {
            RetryStalledAppends(core);
        }
    }

    /// <summary>GaggleNode.HandleInbound: one input of a loop pass.</summary>
    public void Handle(LockSimPacket packet)
    {
        var core = Core!;
        TakePosted();
        if (packet.Raft is { } message)
        {
            core.Step(message);
        }
        else
        {
            ProposeForwarded(core, packet.From, packet.Forwarded!);
        }
    }

    /// <summary>The rest of the loop pass (submit, persist, send, apply), then the clients' timers when time moved.</summary>
    public void EndBatch(bool timers)
    {
        RunLoop();
        if (!timers || Core is null)
        {
            return;
        }

        TimeOutAppends();
        foreach (var client in Clients.ToList())
        {
            client.OnTimer();
        }

        RunLoop();
    }

    public void TransferLeadership(string target)
    {
        Core!.TransferLeadership(target);
        RunLoop();
    }

    /// <summary>One pass of GaggleNode's loop, repeated while appends posted during it wait (the next batch).</summary>
    public void RunLoop()
    {
        var core = Core!;
        TakePosted();
        while (true)
        {
            SubmitAppends(core);
            ProcessReady(core);
            if (Core is null || _posted.Count == 0)
            {
                return;
            }

            TakePosted();
        }
    }

    private void ProcessReady(RaftCore core)
    {
        while (core.TakeReady() is { } ready)
        {
            Persist(ready);
            foreach (var message in ready.Messages)
            {
                sim.Network.Send(Id, message);
            }

            Apply(ready.CommittedEntries);
            if (ready.SoftState is { } soft)
            {
                OnSoftStateChanged(core, soft);
            }
        }
    }

    private void Persist(Ready ready)
    {
        var entries = ready.EntriesToPersist;
        if (entries.Count > 0)
        {
            int first = (int)entries[0].Index;
            _log.RemoveRange(first - 1, _log.Count - first + 1);
            _log.AddRange(entries);
        }

        if (ready.HardState is { } hardState)
        {
            HardState = hardState;
        }
    }

    private void Apply(IReadOnlyList<LogEntry> entries)
    {
        foreach (var entry in entries)
        {
            if (entry.Index != Applied + 1)
            {
                throw new LockSimViolation($"{Id} applies index {entry.Index} after {Applied}");
            }

            Applied = entry.Index;
            if (entry.Kind != EntryKind.Normal)
            {
                continue;
            }

            if (!EntryEnvelope.TryDecode(entry.Data, out var envelope) || envelope.Kind != EntryPayloadKind.Lock)
            {
                throw new LockSimViolation($"{Id}: entry {entry.Index} is not a lock envelope");
            }

            if (!_deduplicator.FirstTime(envelope.Origin, envelope.Incarnation, envelope.Sequence, entry.Index))
            {
                sim.Checker.ObserveDuplicate(Id, entry.Index);
                continue;
            }

            ApplyLockCommand(entry.Index, envelope);
            CompleteAppend(envelope, entry.Index);
        }
    }

    private void ApplyLockCommand(long index, EntryEnvelope envelope)
    {
        var command = LockCommand.TryDecode(envelope.Payload) ?? throw new LockSimViolation($"{Id}: entry {index} holds a malformed lock command");
        Table.Apply(command, new RequestId(envelope.Origin, envelope.Incarnation, envelope.Sequence), envelope.Stamp, index);
        if (command.Type == LockCommandType.Time && envelope.Origin == Id)
        {
            _timeEntryInFlightUntilTick = -1;
        }

        var events = Table.TakeEvents();
        sim.Checker.ObserveApplied(Id, Table, index, envelope, command, events);
        foreach (var lockEvent in events)
        {
            if (lockEvent.Request.Node == Id && lockEvent.Request.Incarnation == Incarnation)
            {
                OnOwnLockEvent(lockEvent);
            }
        }

        foreach (var ended in events.Where(e => e.Type is LockEventType.Expired or LockEventType.Released && e.Request.Node == Id && e.Request.Incarnation == Incarnation))
        {
            foreach (var client in Clients)
            {
                LockHistoryChecker.RequireNotified(client, ended.Name, ended.Token);
            }
        }
    }

    private void OnOwnLockEvent(LockEvent lockEvent)
    {
        if (lockEvent.Type is LockEventType.Expired or LockEventType.Released && _holds.Remove((lockEvent.Name, lockEvent.Token), out var ended))
        {
            ended();
        }

        if (_lockWaiters.TryGetValue(lockEvent.Request.Sequence, out var onEvent))
        {
            onEvent(lockEvent);
        }
        else if (lockEvent.Type == LockEventType.Granted)
        {
            ReleaseAbandoned(lockEvent.Name, lockEvent.Token);
        }
    }

    private void CompleteAppend(EntryEnvelope envelope, long index)
    {
        if (envelope.Origin == Id && envelope.Incarnation == Incarnation && _appends.Remove(envelope.Sequence, out var pending))
        {
            if (LocalUs >= pending.DeadlineUs)
            {
                // The caller's timeout fired first (a race the runtime may lose either way).
                pending.OnTimedOut?.Invoke();
            }
            else
            {
                pending.OnCommitted?.Invoke(index);
            }
        }
    }

    private void OnSoftStateChanged(RaftCore core, SoftState soft)
    {
        var previous = _lastSoftState;
        _lastSoftState = soft;
        if (previous?.LeaderId == soft.LeaderId && previous?.Role == soft.Role)
        {
            return;
        }

        if (soft.LeaderId is not null)
        {
            ResubmitForNewLeader(core);
        }
    }

    /// <summary>GaggleNode.LeaseClockNow: started before the first stamp of each term from the table's time, advancing with this node's clock.</summary>
    private long LeaseClockNow(RaftCore core)
    {
        if (core.Term != _leaseClockTerm)
        {
            _leaseClockTerm = core.Term;
            _leaseClockBase = Table.Now;
            _lastStamp = Table.Now;
            _leaseClockStartUs = LocalUs;
        }

        long elapsed = (LocalUs - _leaseClockStartUs) / 1000;
        _lastStamp = Math.Max(_lastStamp, Math.Max(Table.Now, _leaseClockBase + elapsed));
        return _lastStamp;
    }

    private void MaybeAppendTimeEntry(RaftCore core)
    {
        if (core.Role != RaftRole.Leader || Table.NextDeadline == long.MaxValue || _tickCount < _timeEntryInFlightUntilTick)
        {
            return;
        }

        long now = LeaseClockNow(core);
        if (now < Table.NextDeadline)
        {
            return;
        }

        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, now, Id, Incarnation, NextSequence(), new LockCommand(LockCommandType.Time, "").Encode()).Encode();
        if (core.Propose([envelope]) > 0)
        {
            _timeEntryInFlightUntilTick = _tickCount + sim.Settings.RetryTicks;
        }
    }

    public string Describe() => Core is { } core
        ? $"{Id} {core.Role} term {core.Term} leader {core.LeaderId ?? "-"} commit {core.CommitIndex} applied {Applied} lease-clock {Table.Now} next-deadline {Table.NextDeadline} (stamps from {_leaseClockBase} + since {_leaseClockStartUs} us, last {_lastStamp}, term {_leaseClockTerm}; tick {_tickCount}, time entry retry at {_timeEntryInFlightUntilTick})"
        : $"{Id} down (term {HardState.Term}, commit {HardState.Commit}, log {_log.Count})";
}
