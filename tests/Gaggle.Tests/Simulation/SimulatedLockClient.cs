using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// A simulated application thread on one node using the lock API: it acquires one lock, or now and
/// then a set of locks at once (GaggleLocks.AcquireAllAsync), trying once, with a timeout or without
/// one, following GaggleLocks.AcquireCoreAsync step by step; then holds what it got (one
/// <see cref="SimulatedLockHold"/> per lock, each renewing and releasing on its own, as
/// GaggleLockHandle does) until it lets go or learns that a hold was lost. Its timers run on its
/// node's clock, checked at the node's ticks.
/// </summary>
internal sealed class SimulatedLockClient(Simulator sim, SimulatedNode node, string name)
{
    /// <summary>GaggleLocks.LongestWait: a wait without timeout still ends after this long in the table.</summary>
    private const long LongestWaitMs = 365L * 24 * 3600 * 1000;

    /// <summary>The share of acquires (percent) that take a set of locks at once, when the settings allow sets.</summary>
    private const int SetPercent = 20;

    private readonly Dictionary<string, LockEvent> _grants = new(StringComparer.Ordinal);
    private readonly HashSet<string> _renewed = new(StringComparer.Ordinal);
    private readonly List<long> _confirmSequences = [];
    private readonly List<SimulatedLockHold> _holds = [];
    private Phase _phase;
    private LockChoice[] _parts = [];
    private long _sequence;
    private long _sentAtUs;
    private long _deadlineUs;
    private bool _appendDone;
    private LockEvent? _outcome;
    private long _outcomeIndex;
    private long _releaseAtUs;

    /// <summary>The current acquire as the linearizability check records it: one operation per lock.</summary>
    private AcquireOperation[] _acquires = [];

    private enum Phase
    {
        Idle,
        Acquiring,
        Holding,
        Finishing,
        Dead,
    }

    public string Name { get; } = name;

    public bool IsIdle => _phase == Phase.Idle;

    /// <summary>Leaves no new work (the stabilization phase) but lets running work finish.</summary>
    public bool IsBusy => _phase is Phase.Acquiring or Phase.Holding or Phase.Finishing;

    /// <summary>The locks this client holds and trusts now.</summary>
    public IEnumerable<string> HeldLocks => _holds.Where(h => h.IsTrusted).Select(h => h.Lock);

    private long LeaseUs => node.LeaseMs * 1000;

    private bool IsSet => _parts.Length > 1;

    public override string ToString()
        => $"{Name} {_phase} {string.Join("+", _parts)} seq {_sequence}{(_holds.Count == 0 ? "" : $" holds {string.Join(", ", _holds)}")}";

    /// <summary>A scheduled user action: start an acquire when idle, sometimes let go early when holding (of one lock of a set, now and then).</summary>
    public void Act(Random random)
    {
        if (_phase == Phase.Idle)
        {
            StartAcquire(random);
        }
        else if (_phase == Phase.Holding && random.Next(3) == 0)
        {
            if (IsSet && random.Next(3) == 0 && _holds.Where(h => h.IsHolding).ToArray() is { Length: > 1 } holding)
            {
                // GaggleMultiLockHandle.Holds: one hold of the set disposed alone; the others are kept.
                holding[random.Next(holding.Length)].Dispose("let go of one early");
            }
            else
            {
                DisposeAll("let go early");
            }
        }
    }

    /// <summary>
    /// A lock to use: two mutexes and a semaphore (rarely asked for with a wrong slot count, which is
    /// rejected while it is in use); with <paramref name="readerWriter"/>, also a reader-writer lock for
    /// reading or writing, and rarely a mutex's name asked for as a reader-writer lock (refused while
    /// it is in use as a mutex, and the mutex's users refused while it is in use so). One draw either way.
    /// </summary>
    public static LockChoice PickLock(Random random, int semaphoreSlots, bool readerWriter) => (random.Next(100), readerWriter) switch
    {
        (< 35, false) => new("m0", 1, LockHoldKind.Mutex),
        (< 60, false) => new("m1", 1, LockHoldKind.Mutex),
        (< 97, false) => new("s", semaphoreSlots, LockHoldKind.SemaphoreSlot),
        (_, false) => new("s", semaphoreSlots + 2, LockHoldKind.SemaphoreSlot),
        (< 25, true) => new("m0", 1, LockHoldKind.Mutex),
        (< 40, true) => new("m1", 1, LockHoldKind.Mutex),
        (< 65, true) => new("s", semaphoreSlots, LockHoldKind.SemaphoreSlot),
        (< 83, true) => new("rw", 0, LockHoldKind.Read),
        (< 96, true) => new("rw", 0, LockHoldKind.Write),
        (< 98, true) => new("s", semaphoreSlots + 2, LockHoldKind.SemaphoreSlot),
        (var n, true) => new("m1", 0, n == 98 ? LockHoldKind.Read : LockHoldKind.Write),
    };

    /// <summary>
    /// A set of two or three locks to take at once, each drawn as <see cref="PickLock"/> draws a single
    /// one (so sets share their locks with single requests and with each other, named in either order,
    /// and now and then ask for a lock as a kind it is not in use as).
    /// </summary>
    public static LockChoice[] PickLocks(Random random, int semaphoreSlots, bool readerWriter)
    {
        int count = random.Next(3) == 0 ? 3 : 2;
        var parts = new List<LockChoice>(count);
        while (parts.Count < count)
        {
            var part = PickLock(random, semaphoreSlots, readerWriter);
            if (!parts.Exists(p => p.Name == part.Name))
            {
                parts.Add(part);
            }
        }

        return [.. parts];
    }

    private void StartAcquire(Random random)
    {
        var settings = sim.Settings;
        _parts = settings.MultiLocks && random.Next(100) < SetPercent
            ? PickLocks(random, settings.SemaphoreSlots, settings.ReaderWriterLocks)
            : [PickLock(random, settings.SemaphoreSlots, settings.ReaderWriterLocks)];
        int mode = random.Next(100);
        long? timeoutMs = mode < 25 ? 0 : mode < 85 ? random.NextInt64(node.LeaseMs / 5, node.LeaseMs * 3) : null;
        long holdUs = random.NextInt64(1, LeaseUs * 5 / 2);

        _phase = Phase.Acquiring;
        _outcome = null;
        _appendDone = false;
        _grants.Clear();
        _renewed.Clear();
        _confirmSequences.Clear();
        _holds.Clear();
        _sequence = node.Sequences.Next();
        _acquires = [.. _parts.Select(p => sim.History.Invoke(new AcquireOperation { Client = Name, Node = node.Id, Lock = p.Name, MaxCount = p.MaxCount, Kind = p.Kind, LeaseMs = node.LeaseMs }))];
        _sentAtUs = node.LocalUs;
        _releaseAtUs = _sentAtUs + holdUs;
        // Zero means "try once": the table answers at once, but the answer still needs a commit, so wait up to a lease.
        _deadlineUs = timeoutMs is { } limit ? _sentAtUs + ((limit == 0 ? node.LeaseMs : limit) * 1000) : long.MaxValue;
        var first = _parts[0];
        var command = IsSet
            ? new LockCommand(LockCommandType.AcquireAll, first.Name, 0, node.LeaseMs, timeoutMs ?? LongestWaitMs) { Parts = [.. _parts.Select(p => new LockPart(p.CommandType, p.Name, p.MaxCount))] }
            : new LockCommand(first.CommandType, first.Name, first.MaxCount, node.LeaseMs, timeoutMs ?? LongestWaitMs);
        sim.Trace($"{Name} acquire {string.Join(" + ", _parts)} seq {_sequence} timeout {timeoutMs?.ToString() ?? "none"} ms");
        node.AppendLockRequest(_sequence, command, OnRequestEvent, _deadlineUs, _ => OnAcquireCommitted(), GiveUp);
    }

    /// <summary>GaggleLocks: the outcome is a grant of every lock (one event each, all from one entry), or one denial or rejection.</summary>
    private void OnRequestEvent(LockEvent lockEvent)
    {
        if (lockEvent.Type == LockEventType.Renewed)
        {
            _renewed.Add(lockEvent.Name);
            return;
        }

        if (_outcome is not null || lockEvent.Type is not (LockEventType.Granted or LockEventType.Denied or LockEventType.Rejected))
        {
            return;
        }

        if (lockEvent.Type == LockEventType.Granted)
        {
            _grants[lockEvent.Name] = lockEvent;
            if (_grants.Count < _parts.Length)
            {
                return;
            }
        }

        _outcome = lockEvent;
        _outcomeIndex = node.Applied;
        if (_appendDone)
        {
            Resolve();
        }
    }

    private void OnAcquireCommitted()
    {
        _appendDone = true;
        if (_outcome is not null)
        {
            Resolve();
        }
    }

    private void Resolve()
    {
        if (_phase != Phase.Acquiring)
        {
            return;
        }

        if (node.LocalUs >= _deadlineUs)
        {
            GiveUp();
            return;
        }

        var outcome = _outcome!;
        bool granted = outcome.Type == LockEventType.Granted;
        sim.Trace($"{Name} {outcome.Type} {string.Join(" + ", _parts.Select(p => granted ? $"{p.Name} token {_grants[p.Name].Token}" : p.Name))} at index {_outcomeIndex}");
        foreach (var acquire in _acquires)
        {
            acquire.Outcome = outcome.Type;
            if (granted)
            {
                var grant = _grants[acquire.Lock];
                acquire.Token = grant.Token;
                acquire.Expiry = grant.Expiry;
            }

            sim.History.Respond(acquire, node.Driver!.Generation);
        }

        if (!granted)
        {
            node.UnwatchLockRequest(_sequence);
            _phase = Phase.Idle;
            return;
        }

        sim.Checker.ObserveClientGrant(Name, outcome.Request, [.. _parts.Select(p => (p.Name, _grants[p.Name].Token))], _outcomeIndex, node.Driver!.Generation);
        if (node.LocalUs - _sentAtUs < LeaseUs / 3)
        {
            BeginHolding(_ => _sentAtUs);
            return;
        }

        // GaggleLocks.TrustedSinceAsync, for each lock: the wait took a renewal interval or more; confirm each hold with a renewal first.
        long confirmAt = node.LocalUs;
        foreach (var part in _parts)
        {
            long sequence = 0;
            sequence = node.AppendLockCommand(new LockCommand(LockCommandType.Renew, part.Name, Token: _grants[part.Name].Token, LeaseMs: node.LeaseMs), _deadlineUs, _ =>
            {
                if (_phase == Phase.Acquiring && _confirmSequences.Remove(sequence) && _confirmSequences.Count == 0)
                {
                    sim.Checker.Stats.ClientGroupConfirmations += IsSet ? 1 : 0;
                    BeginHolding(lockName => _renewed.Contains(lockName) ? confirmAt : _sentAtUs);
                }
            }, GiveUp);
            _confirmSequences.Add(sequence);
        }
    }

    /// <summary>The handles are made, one per lock, each trusted from <paramref name="trustedSinceUs"/> of its lock.</summary>
    private void BeginHolding(Func<string, long> trustedSinceUs)
    {
        node.UnwatchLockRequest(_sequence);
        _phase = Phase.Holding;
        foreach (var part in _parts)
        {
            _holds.Add(new SimulatedLockHold(sim, node, this, part, _grants[part.Name].Token, _outcomeIndex));
        }

        foreach (var hold in _holds)
        {
            hold.Begin(trustedSinceUs(hold.Lock));
        }
    }

    /// <summary>GaggleLocks.GiveUpAsync: grants that raced with the give-up are released, a queued request withdrawn (all of a set's locks).</summary>
    private void GiveUp()
    {
        if (_phase != Phase.Acquiring)
        {
            return;
        }

        // GaggleLocks: the driver cancels the wait, or releases the grants that came or still come.
        sim.Trace($"{Name} gives up on {string.Join(" + ", _parts.Select(p => p.Name))} seq {_sequence}{(_outcome is { Type: LockEventType.Granted } ? $" after a grant of {string.Join(", ", _grants.Values.Select(g => g.Token))}" : "")}");
        foreach (var acquired in _acquires.Where(a => a.Granted))
        {
            // Told of the grant, then a confirming renewal ran out of time: the driver releases it, unanswered.
            sim.History.Invoke(new ReleaseOperation { Client = Name, Node = node.Id, Lock = acquired.Lock, Token = acquired.Token });
        }

        node.GiveUpLockRequest(_sequence, _parts[0].Name);
        node.Abandon(_sequence);
        foreach (long sequence in _confirmSequences)
        {
            node.Abandon(sequence);
        }

        _confirmSequences.Clear();
        _phase = Phase.Idle;
    }

    /// <summary>Timers, on the node's clock at its ticks: acquire deadline, end of the hold, renewals.</summary>
    public void OnTimer()
    {
        long now = node.LocalUs;
        if (_phase == Phase.Acquiring && now >= _deadlineUs)
        {
            GiveUp();
        }
        else if (_phase == Phase.Holding && now >= _releaseAtUs)
        {
            DisposeAll("done");
        }
        else if (_phase == Phase.Holding)
        {
            foreach (var hold in _holds.ToList())
            {
                hold.OnTimer();
            }
        }
    }

    /// <summary>Whether this client holds <paramref name="token"/> of <paramref name="lockName"/> and has not been told it lost it.</summary>
    public bool Trusts(string lockName, long token) => _holds.Exists(h => h.IsTrusted && h.Lock == lockName && h.Token == token);

    /// <summary>A hold's HandleLostToken was cancelled (for a set, GaggleMultiLockHandle's too): the application disposes what it holds.</summary>
    public void OnHoldLost() => DisposeAll("lost");

    /// <summary>A hold's release was done or given up: the client is idle once every hold is.</summary>
    public void OnHoldFinished()
    {
        if (_phase is Phase.Holding or Phase.Finishing)
        {
            _phase = _holds.Exists(h => h.IsHolding) ? Phase.Holding : _holds.TrueForAll(h => h.IsDone) ? Phase.Idle : Phase.Finishing;
        }
    }

    /// <summary>GaggleLockHandle.DisposeAsync of every hold still held (GaggleMultiLockHandle.DisposeAsync for a set).</summary>
    private void DisposeAll(string why)
    {
        if (_phase != Phase.Holding)
        {
            return;
        }

        _phase = Phase.Finishing;
        foreach (var hold in _holds.ToList())
        {
            hold.Dispose(why);
        }

        OnHoldFinished();
    }

    /// <summary>The process died: whatever this client believed, it believes no longer.</summary>
    public void OnProcessDied()
    {
        foreach (var hold in _holds)
        {
            hold.OnProcessDied();
        }

        _phase = Phase.Dead;
    }
}
