using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;

namespace Gaggle.Tests.Simulation;

/// <summary>An append of a simulated caller: the driver's own append type, with the caller's callbacks.</summary>
internal sealed class SimAppend(long sequence, byte[] envelope, Action<long>? onCommitted, Action? onTimedOut) : DriverAppend(sequence, envelope)
{
    public Action<long>? OnCommitted { get; } = onCommitted;

    public Action? OnTimedOut { get; } = onTimedOut;
}

/// <summary>
/// One simulated server: the <see cref="NodeDriver"/> that ships (while the process is up), its
/// durable storage (hard state, snapshot and log, written as the Ready contract says), its drifting
/// clock, and the application threads using it (lock clients). It plays GaggleNode's part around the
/// driver: callers' appends and lock watches in, the driver's events back to the callers. A crash loses
/// the process (driver, clients, callbacks) and may lose unflushed writes or the whole storage; a
/// restart builds a new driver, with a new incarnation, from storage. In an elastic run the process
/// also resets when a newer generation replaced its cluster (see <see cref="ResetForGeneration"/>).
/// </summary>
internal sealed class SimulatedNode(Simulator sim, string id, NodeClock clock)
{
    private readonly Dictionary<long, Action<LockEvent>> _lockWaiters = [];
    private readonly Dictionary<(string Name, long Token), Action> _holds = [];

    public string Id { get; } = id;

    public NodeClock Clock { get; } = clock;

    public NodeDriver? Driver { get; private set; }

    public RaftCore? Core => Driver?.Core;

    public bool IsUp => Driver is not null;

    public SimulatedStorage Storage { get; private set; } = new();

    private long _generationWhenDown;

    /// <summary>The cluster generation of this node's state (elastic runs; 0 otherwise): its driver's while up, else the one it had.</summary>
    public long Generation => Driver?.Generation ?? _generationWhenDown;

    /// <summary>The number of <see cref="Generation"/> (its id carries the founder's tag too).</summary>
    public long GenerationNumber => Gaggle.Channels.GenerationIds.NumberOf(Generation);

    /// <summary>Elastic runs: a newer generation replaced this node's; the loop resets it once the current pass is done.</summary>
    public long? SupersededBy { get; set; }

    /// <summary>The driver said this node was removed (elastic): it starts over as a new incarnation keeping its term and vote.</summary>
    public bool Removed { get; set; }

    /// <summary>The driver said this learner heard no voter for the member timeout (elastic): it starts over with nothing.</summary>
    public bool Orphaned { get; set; }

    /// <summary>Times this process started over in a newer generation.</summary>
    public int Resets { get; private set; }

    /// <summary>Times this process started over as an orphaned learner (it heard no voter for the member timeout).</summary>
    public int OrphanedStarts { get; set; }

    /// <summary>How many of its own broadcasts came back (see Simulator.Checks), and how many the driver was told of.</summary>
    public long EchoesHeard { get; set; }

    private long _echoesTold;

    /// <summary>A tick of the driver, as GaggleNode's loop gives it: told first of the echoes heard since the last.</summary>
    public void TickDriver()
    {
        if (EchoesHeard != _echoesTold)
        {
            _echoesTold = EchoesHeard;
            Driver!.HeardOwnEcho(LocalUs);
        }

        Driver!.Tick(LocalUs);
    }

    /// <summary>The persisted hard state.</summary>
    public HardState HardState => Storage.HardState;

    public HistoryMachine? History { get; private set; }

    public SequenceCounter Sequences { get; private set; } = new();

    public ulong Incarnation { get; set; }

    /// <summary>The index this node's state machines have applied up to (as the checker saw it).</summary>
    public long Applied { get; set; }

    /// <summary>The index of the snapshot this driver last installed from a leader (appends it covered complete with it); 0 when none.</summary>
    public long InstalledSnapshotIndex { get; set; }

    /// <summary>Whether a completion at <paramref name="index"/> came from an installed snapshot (an entry applied here is always after it).</summary>
    public bool CoveredBySnapshot(long index) => index != 0 && index == InstalledSnapshotIndex;

    /// <summary>The highest commit index this node has reported (it never goes down, unless storage lost it).</summary>
    public long Commit { get; set; }

    /// <summary>The term in which this node was last checked as a leader, and how far that check got.</summary>
    public long LeaderTerm { get; set; } = -1;

    public long LeaderCheckedUpTo { get; set; }

    public int Restarts { get; private set; }

    /// <summary>A crash lost written state since the node last started (it restarts as one whose storage lost data).</summary>
    public bool LostData { get; set; }

    /// <summary>Lost state and is not yet known to be whole again (see <see cref="LossModel"/>); set with <see cref="LostData"/>.</summary>
    public bool Unhealed { get; set; }

    /// <summary>Whether the core was rejoining when last processed (to report the changes).</summary>
    public bool ReportedRejoining { get; set; }

    /// <summary>Lost state and has not yet proven it may vote again: at most N - majority nodes may be so at once.</summary>
    public bool IsDamaged => Unhealed || (Core?.Rejoining ?? HardState.Rejoining);

    /// <summary>The latest configuration in this node's log when last checked: what it restarts with after a crash.</summary>
    public ClusterConfig? LatestConfig { get; set; }

    /// <summary>The real time until which the process is paused: it neither ticks nor receives (what is sent to it is lost).</summary>
    public long PausedUntilUs { get; set; }

    public bool IsPausedAt(long nowUs) => IsUp && PausedUntilUs > nowUs;

    /// <summary>Elastic runs: when the last short silence of this node (a cut from the hub, a short pause) ended or ends.</summary>
    public long SilenceEndsAtUs { get; set; } = long.MinValue / 2;

    /// <summary>The real time of this node's next tick.</summary>
    public long NextTickAtUs { get; set; }

    public List<SimulatedLockClient> Clients { get; } = [];

    /// <summary>This node's monotonic clock now, in microseconds.</summary>
    public long LocalUs => Clock.Local(sim.NowUs);

    public long LeaseMs => sim.Settings.LeaseMs;

    /// <summary>How long a release is tried (GaggleLocks: the lease, at most four election timeouts).</summary>
    public long SettleUs => Math.Min(sim.Settings.LeaseMs, 4L * sim.Settings.ElectionTicksMax * SimulationSettings.TickMs) * 1000;

    /// <summary>Starts (or restarts) the process: a driver built from storage, with a new incarnation.</summary>
    public void Start(Func<HistoryMachine, NodeDriverSettings> settings, ulong incarnation, int clients)
    {
        Incarnation = incarnation;
        Sequences = new SequenceCounter();
        Boot(settings);
        if (LostData)
        {
            Commit = Driver!.Core.CommitIndex;
            LostData = false;
        }

        Restarts++;
        AddClients(clients, $"{Id}.{incarnation}");
        NextTickAtUs = sim.NowUs + Clock.RealSpan(SimulationSettings.TickMs * 1000L);
    }

    /// <summary>
    /// GaggleNode.ResetForGeneration: a newer generation replaced this node's cluster. The process lives
    /// on (same id, incarnation and sequence numbers) with a new driver on empty storage, started in
    /// <paramref name="generation"/> as a newcomer; its callers' pending requests fail and their holds
    /// are lost, as when the process dies (the application's lock users start over).
    /// </summary>
    public void ResetForGeneration(Func<HistoryMachine, NodeDriverSettings> settings, long generation, int clients)
        => StartOver(settings, generation, live: true, HardState.Empty, clients, lifeConfigurationIndex: 0);

    /// <summary>
    /// GaggleNode.StartOver: a new driver on empty storage (but for <paramref name="keep"/>, the term and
    /// vote a removed member keeps), started in <paramref name="generation"/> as a newcomer; its callers'
    /// pending requests fail and their holds are lost, as when the process dies.
    /// </summary>
    public void StartOver(Func<HistoryMachine, NodeDriverSettings> settings, long generation, bool live, HardState keep, int clients, long lifeConfigurationIndex)
    {
        DropClients();
        Storage = new SimulatedStorage();
        if (keep.Term > 0)
        {
            Storage.SaveHardState(keep);
        }

        Boot(settings);
        Driver!.StartGeneration(generation, live);
        Driver.StartOverAfter(lifeConfigurationIndex);
        Commit = 0;
        LatestConfig = null;
        ReportedRejoining = false;
        Resets++;
        AddClients(clients, $"{Id}.{Incarnation}r{Resets}");
    }

    /// <summary>A new driver on what storage holds, watched by the simulator.</summary>
    private void Boot(Func<HistoryMachine, NodeDriverSettings> settings)
    {
        History = new HistoryMachine(Id, sim.Appends, () => Driver?.Generation ?? 0);
        var snapshot = Storage.Snapshot;
        Driver = new NodeDriver(settings(History), new PersistedState(HardState, Storage.Entries.ToArray(), snapshot), Sequences);
        Driver.PublishAppended = false;
        Driver.PublishCommitted = false;
        Driver.Machines.Observer = sim.ObserveEntry(this);
        Applied = snapshot?.Index ?? 0;
        InstalledSnapshotIndex = 0;
        LeaderTerm = -1;
        LeaderCheckedUpTo = 0;
        SupersededBy = null;
        Removed = false;
        Orphaned = false;
    }

    private void AddClients(int clients, string prefix)
    {
        _lockWaiters.Clear();
        _holds.Clear();
        Clients.Clear();
        for (int i = 0; i < clients; i++)
        {
            Clients.Add(new SimulatedLockClient(sim, this, $"{prefix}.c{i}"));
        }
    }

    private void DropClients()
    {
        foreach (var client in Clients)
        {
            client.OnProcessDied();
        }

        Clients.Clear();
        _lockWaiters.Clear();
        _holds.Clear();
    }

    /// <summary>The process dies: its clients with it, and everything not in storage.</summary>
    public void Crash()
    {
        DropClients();
        _generationWhenDown = Generation;
        Driver = null;
        PausedUntilUs = 0;
        SupersededBy = null;
    }

    /// <summary>GaggleNode.AppendAsync: an application entry, its caller waiting until <paramref name="deadlineUs"/> on this node's clock.</summary>
    public void AppendData(byte[] data, long deadlineUs, Action<long>? onCommitted, Action? onTimedOut)
    {
        long sequence = Sequences.Next();
        var envelope = new EntryEnvelope(EntryPayloadKind.User, 0, Id, Incarnation, sequence, data).Encode();
        Driver!.Append(new SimAppend(sequence, envelope, onCommitted, onTimedOut) { DeadlineUs = deadlineUs });
    }

    /// <summary>GaggleNode.AppendLockRequestAsync: a lock request whose events go to <paramref name="onEvent"/> until unwatched or given up.</summary>
    public void AppendLockRequest(long sequence, LockCommand command, Action<LockEvent> onEvent, long deadlineUs, Action<long>? onCommitted, Action? onTimedOut)
    {
        _lockWaiters[sequence] = onEvent;
        Driver!.AppendLockRequest(new SimAppend(sequence, LockEnvelope(sequence, command), onCommitted, onTimedOut) { DeadlineUs = deadlineUs }, Math.Max(1, command.Parts.Count));
    }

    /// <summary>GaggleNode.AppendLockCommandAsync: a renewal or release; returns its sequence.</summary>
    public long AppendLockCommand(LockCommand command, long deadlineUs, Action<long>? onCommitted, Action? onTimedOut)
    {
        long sequence = Sequences.Next();
        Driver!.Append(new SimAppend(sequence, LockEnvelope(sequence, command), onCommitted, onTimedOut) { DeadlineUs = deadlineUs });
        return sequence;
    }

    /// <summary>The caller gave up waiting for append <paramref name="sequence"/> (GaggleNode.AppendEnvelopeAsync's finally).</summary>
    public void Abandon(long sequence) => Driver!.Abandon(sequence);

    public void UnwatchLockRequest(long sequence)
    {
        if (_lockWaiters.Remove(sequence))
        {
            Driver!.UnwatchLockRequest(sequence);
        }
    }

    public void GiveUpLockRequest(long sequence, string name)
    {
        _lockWaiters.Remove(sequence);
        Driver!.GiveUpLockRequest(sequence, name);
    }

    public void WatchHold(string name, long token, Action onEnded)
    {
        _holds[(name, token)] = onEnded;
        Driver!.WatchHold(name, token);
    }

    public void UnwatchHold(string name, long token)
    {
        if (_holds.Remove((name, token)))
        {
            Driver!.UnwatchHold(name, token);
        }
    }

    /// <summary>GaggleNode's CarryOut for a simulated process: the driver's events to the callers (who may add inputs).</summary>
    public void CarryOut()
    {
        var events = Driver!.Events;
        if (events.IsEmpty)
        {
            return;
        }

        var lockEvents = events.LockEvents.ToArray();
        var holdsEnded = events.HoldsEnded.ToArray();
        var committed = events.Committed.ToArray();
        var timedOut = events.TimedOut.ToArray();
        sim.CountAdmissions(events.Dropped.Count(d => d.Kind == "stale-admission"), timedOut.Count(a => a.GivenUpBecause is not null));
        var (claim, probe, confirm, release, rival) = (events.ClaimGeneration, events.ProbeGenerationStore, events.ConfirmGeneration, events.ReleaseClaim, events.CheckRival);
        SupersededBy ??= events.Superseded;
        Removed |= events.Removed;
        Orphaned |= events.Orphaned;
        events.Clear();
        sim.CarryOutGenerations(this, claim, probe, confirm, release, rival);
        foreach (var (sequence, lockEvent) in lockEvents)
        {
            if (_lockWaiters.TryGetValue(sequence, out var onEvent))
            {
                onEvent(lockEvent);
            }
        }

        foreach (var hold in holdsEnded)
        {
            if (_holds.Remove(hold, out var ended))
            {
                ended();
            }
        }

        foreach (var (append, index) in committed)
        {
            if (append is SimAppend caller)
            {
                if (LocalUs >= caller.DeadlineUs)
                {
                    // The caller's timeout fired first (GaggleNode's timer may win that race).
                    caller.OnTimedOut?.Invoke();
                }
                else
                {
                    caller.OnCommitted?.Invoke(index);
                }
            }
        }

        foreach (var append in timedOut)
        {
            (append as SimAppend)?.OnTimedOut?.Invoke();
        }
    }

    /// <summary>
    /// Persists what the ready hands out, in the documented order: the snapshot, then the log from the
    /// first new entry's index on, then the hard state. Each written entry is shown to the checker.
    /// </summary>
    public void Persist(Ready ready, SafetyChecker checker)
    {
        if (ready.Snapshot is null && ready.HardState is null && ready.EntriesToPersist.Count == 0)
        {
            return;
        }

        Storage.BeginBatch();
        if (ready.Snapshot is { } snapshot)
        {
            Storage.SaveSnapshot(snapshot);
        }

        PersistEntries(ready.EntriesToPersist, checker);
        if (ready.HardState is { } hardState)
        {
            if (hardState.Term < HardState.Term)
            {
                throw new SafetyViolationException($"{Id}'s persisted term went down from {HardState.Term} to {hardState.Term}");
            }

            if (hardState.Term == HardState.Term && HardState.VotedFor is not null && hardState.VotedFor != HardState.VotedFor)
            {
                throw new SafetyViolationException(
                    $"{Id} changed its vote in term {hardState.Term} from {HardState.VotedFor} to {hardState.VotedFor ?? "nobody"}");
            }

            Storage.SaveHardState(hardState);
        }

        Storage.EndBatch();
    }

    private void PersistEntries(IReadOnlyList<LogEntry> entries, SafetyChecker checker)
    {
        if (entries.Count == 0)
        {
            return;
        }

        long first = entries[0].Index;
        if (first <= Storage.SnapshotIndex || first > Storage.LastIndex + 1)
        {
            throw new SafetyViolationException(
                $"{Id} was handed entries from index {first} but its storage holds {Storage.SnapshotIndex + 1}..{Storage.LastIndex} after a snapshot at {Storage.SnapshotIndex}");
        }

        if (first <= HardState.Commit)
        {
            throw new SafetyViolationException(
                $"{Id} was told to overwrite its log from index {first}, at or below its persisted commit index {HardState.Commit}");
        }

        long previousTerm = first - 1 == Storage.SnapshotIndex ? Storage.Snapshot?.Term ?? 0 : Storage.TryGet(first - 1, out var before) ? before.Term : 0;
        for (int i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (entry.Index != first + i)
            {
                throw new SafetyViolationException($"{Id} was handed non-contiguous entries: {entry.Index} after {first + i - 1}");
            }

            checker.ObserveLogged(Id, entry, previousTerm);
            previousTerm = entry.Term;
        }

        Storage.Append(entries);
    }

    public string Describe() => Core is { } core
        ? $"{Id} {(Driver!.Generations is null ? "" : $"g{Driver.Generation} ")}{core.Role} term {core.Term} leader {core.LeaderId ?? "-"} commit {core.CommitIndex} applied {Applied} last {core.LastIndex} snapshot {core.Snapshot?.Index ?? 0}"
            + $"{(core.Rejoining ? " rejoining" : "")} configuration {core.Configuration} at {core.ConfigurationIndex} lease-clock {Driver!.Machines.Locks.Table.Now} next-deadline {Driver.Machines.Locks.Table.NextDeadline} tick {Driver.Ticks}"
        : $"{Id} down (term {HardState.Term}, commit {HardState.Commit}, snapshot {Storage.SnapshotIndex}, last {Storage.LastIndex}{(IsDamaged ? ", lost data" : "")})";

    private byte[] LockEnvelope(long sequence, LockCommand command)
        => new EntryEnvelope(EntryPayloadKind.Lock, 0, Id, Incarnation, sequence, command.Encode()).Encode();
}
