using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// A simulated application thread on one node using the lock API: it acquires (try once, with a
/// timeout, or without one), holds, renews and releases, following GaggleLocks.AcquireCoreAsync and
/// GaggleLockHandle step by step, and tells the checker when it starts and stops believing it holds a
/// lock. Its timers run on its node's clock, checked at the node's ticks.
/// </summary>
internal sealed class SimulatedLockClient(Simulator sim, SimulatedNode node, string name)
{
    /// <summary>GaggleLocks.LongestWait: a wait without timeout still ends after this long in the table.</summary>
    private const long LongestWaitMs = 365L * 24 * 3600 * 1000;

    private Phase _phase;
    private string _lock = "";
    private int _maxCount;
    private LockHoldKind _kind;
    private long _sequence;
    private long _sentAtUs;
    private long _deadlineUs;
    private bool _appendDone;
    private LockEvent? _outcome;
    private long _outcomeIndex;
    private long _confirmSequence;
    private bool _renewedSeen;
    private long _token;
    private long _safeUntilUs;
    private long _releaseAtUs;
    private long _renewWakeUs;
    private long _renewSequence;
    private bool _lost;
    private ClientBelief? _belief;

    /// <summary>The current acquire as the linearizability check records it.</summary>
    private AcquireOperation? _acquire;

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

    private long LeaseUs => node.LeaseMs * 1000;

    public override string ToString() => $"{Name} {_phase} {_lock} seq {_sequence} token {_token}";

    /// <summary>A scheduled user action: start an acquire when idle, sometimes let go early when holding.</summary>
    public void Act(Random random)
    {
        if (_phase == Phase.Idle)
        {
            StartAcquire(random);
        }
        else if (_phase == Phase.Holding && random.Next(3) == 0)
        {
            Dispose("let go early");
        }
    }

    /// <summary>
    /// A lock to use: two mutexes and a semaphore (rarely asked for with a wrong slot count, which is
    /// rejected while it is in use); with <paramref name="readerWriter"/>, also a reader-writer lock for
    /// reading or writing, and rarely a mutex's name asked for as a reader-writer lock (refused while
    /// it is in use as a mutex, and the mutex's users refused while it is in use so). One draw either way.
    /// </summary>
    public static (string Name, int MaxCount, LockHoldKind Kind) PickLock(Random random, int semaphoreSlots, bool readerWriter) => (random.Next(100), readerWriter) switch
    {
        (< 35, false) => ("m0", 1, LockHoldKind.Mutex),
        (< 60, false) => ("m1", 1, LockHoldKind.Mutex),
        (< 97, false) => ("s", semaphoreSlots, LockHoldKind.SemaphoreSlot),
        (_, false) => ("s", semaphoreSlots + 2, LockHoldKind.SemaphoreSlot),
        (< 25, true) => ("m0", 1, LockHoldKind.Mutex),
        (< 40, true) => ("m1", 1, LockHoldKind.Mutex),
        (< 65, true) => ("s", semaphoreSlots, LockHoldKind.SemaphoreSlot),
        (< 83, true) => ("rw", 0, LockHoldKind.Read),
        (< 96, true) => ("rw", 0, LockHoldKind.Write),
        (< 98, true) => ("s", semaphoreSlots + 2, LockHoldKind.SemaphoreSlot),
        (var n, true) => ("m1", 0, n == 98 ? LockHoldKind.Read : LockHoldKind.Write),
    };

    private void StartAcquire(Random random)
    {
        (_lock, _maxCount, _kind) = PickLock(random, sim.Settings.SemaphoreSlots, sim.Settings.ReaderWriterLocks);
        int mode = random.Next(100);
        long? timeoutMs = mode < 25 ? 0 : mode < 85 ? random.NextInt64(node.LeaseMs / 5, node.LeaseMs * 3) : null;
        long holdUs = random.NextInt64(1, LeaseUs * 5 / 2);

        _phase = Phase.Acquiring;
        _outcome = null;
        _appendDone = false;
        _confirmSequence = 0;
        _renewedSeen = false;
        _lost = false;
        _belief = null;
        _sequence = node.Sequences.Next();
        _acquire = sim.History.Invoke(new AcquireOperation { Client = Name, Node = node.Id, Lock = _lock, MaxCount = _maxCount, Kind = _kind, LeaseMs = node.LeaseMs });
        _sentAtUs = node.LocalUs;
        _releaseAtUs = _sentAtUs + holdUs;
        // Zero means "try once": the table answers at once, but the answer still needs a commit, so wait up to a lease.
        _deadlineUs = timeoutMs is { } limit ? _sentAtUs + ((limit == 0 ? node.LeaseMs : limit) * 1000) : long.MaxValue;
        var type = _kind switch
        {
            LockHoldKind.Read => LockCommandType.AcquireRead,
            LockHoldKind.Write => LockCommandType.AcquireWrite,
            _ => LockCommandType.Acquire,
        };
        var command = new LockCommand(type, _lock, _maxCount, node.LeaseMs, timeoutMs ?? LongestWaitMs);
        sim.Trace($"{Name} acquire {_lock}/{(_kind is LockHoldKind.Read or LockHoldKind.Write ? _kind.ToString() : _maxCount.ToString(System.Globalization.CultureInfo.InvariantCulture))} seq {_sequence} timeout {timeoutMs?.ToString() ?? "none"} ms");
        node.AppendLockRequest(_sequence, command, OnRequestEvent, _deadlineUs, _ => OnAcquireCommitted(), GiveUp);
    }

    private void OnRequestEvent(LockEvent lockEvent)
    {
        if (lockEvent.Type == LockEventType.Renewed)
        {
            _renewedSeen = true;
        }
        else if (lockEvent.Type is LockEventType.Granted or LockEventType.Denied or LockEventType.Rejected && _outcome is null)
        {
            _outcome = lockEvent;
            _outcomeIndex = node.Applied;
            if (_appendDone)
            {
                Resolve();
            }
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
        sim.Trace($"{Name} {outcome.Type} {_lock} token {outcome.Token} at index {_outcomeIndex}");
        _acquire!.Outcome = outcome.Type;
        _acquire.Token = outcome.Token;
        _acquire.Expiry = outcome.Expiry;
        sim.History.Respond(_acquire, node.Driver!.Generation);
        if (outcome.Type != LockEventType.Granted)
        {
            node.UnwatchLockRequest(_sequence);
            _phase = Phase.Idle;
            return;
        }

        _token = outcome.Token;
        sim.Checker.ObserveClientGrant(Name, outcome.Request, _token, _outcomeIndex, node.Driver!.Generation);
        if (node.LocalUs - _sentAtUs < LeaseUs / 3)
        {
            BeginHolding(_sentAtUs);
            return;
        }

        // GaggleLocks.TrustedSinceAsync: the wait took a renewal interval or more; confirm the hold with a renewal first.
        long confirmAt = node.LocalUs;
        long sequence = 0;
        sequence = node.AppendLockCommand(new LockCommand(LockCommandType.Renew, _lock, Token: _token, LeaseMs: node.LeaseMs), _deadlineUs, _ =>
        {
            if (_phase == Phase.Acquiring && _confirmSequence == sequence)
            {
                BeginHolding(_renewedSeen ? confirmAt : _sentAtUs);
            }
        }, GiveUp);
        _confirmSequence = sequence;
    }

    private void BeginHolding(long trustedSinceUs)
    {
        node.UnwatchLockRequest(_sequence);
        _phase = Phase.Holding;
        _safeUntilUs = SafeUntil(trustedSinceUs);
        node.WatchHold(_lock, _token, OnHoldEnded);
        _belief = new ClientBelief(Name, _lock, _maxCount, _token, sim.NowUs, sim.Step)
        {
            Kind = _kind,
            SafeUntilRealUs = node.Clock.RealAt(_safeUntilUs),
            Generation = node.Driver!.Generation,
            GrantIndex = _outcomeIndex,
        };
        sim.Checker.BeginBelief(_belief);
        ScheduleRenewal();
    }

    /// <summary>GaggleLocks.GiveUpAsync: a grant that raced with the give-up is released, a queued request withdrawn.</summary>
    private void GiveUp()
    {
        if (_phase != Phase.Acquiring)
        {
            return;
        }

        // GaggleLocks: the driver cancels the wait, or releases a grant that came or still comes.
        sim.Trace($"{Name} gives up on {_lock} seq {_sequence}{(_outcome is { Type: LockEventType.Granted } granted ? $" after a grant of {granted.Token}" : "")}");
        if (_acquire is { Granted: true } acquired)
        {
            // Told of the grant, then the confirming renewal ran out of time: the driver releases it, unanswered.
            sim.History.Invoke(new ReleaseOperation { Client = Name, Node = node.Id, Lock = _lock, Token = acquired.Token });
        }

        node.GiveUpLockRequest(_sequence, _lock);
        node.Abandon(_sequence);
        if (_confirmSequence != 0)
        {
            node.Abandon(_confirmSequence);
        }

        _phase = Phase.Idle;
    }

    private void Finished()
    {
        if (_phase == Phase.Finishing)
        {
            _phase = Phase.Idle;
        }
    }

    /// <summary>GaggleLockHandle.SafeUntil.</summary>
    private long SafeUntil(long sentAtUs) => sentAtUs + (long)(LeaseUs * 0.9);

    /// <summary>GaggleLockHandle.RenewLoopAsync's delay: the renewal interval, or less when the safe deadline is nearer.</summary>
    private void ScheduleRenewal()
    {
        long now = node.LocalUs;
        long untilUnsafe = _safeUntilUs - now;
        long interval = LeaseUs / 3;
        _renewWakeUs = now + (untilUnsafe < interval ? Math.Max(untilUnsafe, 0) : interval);
        _renewSequence = 0;
    }

    /// <summary>Timers, on the node's clock at its ticks: acquire deadline, end of the hold, renewal.</summary>
    public void OnTimer()
    {
        long now = node.LocalUs;
        if (_phase == Phase.Acquiring && now >= _deadlineUs)
        {
            GiveUp();
        }
        else if (_phase == Phase.Holding && now >= _releaseAtUs)
        {
            Dispose("done");
        }
        else if (_phase == Phase.Holding && _renewSequence == 0 && now >= _renewWakeUs)
        {
            Renew();
        }
    }

    private void Renew()
    {
        long sentAt = node.LocalUs;
        if (sentAt >= _safeUntilUs)
        {
            MarkLost("safe deadline passed");
            return;
        }

        long sequence = 0;
        sequence = node.AppendLockCommand(
            new LockCommand(LockCommandType.Renew, _lock, Token: _token, LeaseMs: node.LeaseMs),
            _safeUntilUs,
            _ => OnRenewed(sequence, sentAt),
            () => OnRenewTimedOut(sequence));
        _renewSequence = sequence;
    }

    private void OnRenewed(long sequence, long sentAt)
    {
        if (_phase != Phase.Holding || _renewSequence != sequence)
        {
            return;
        }

        if (!_lost)
        {
            // Committed and applied here without an Expired event: the lease now runs from the leader's stamp, after sentAt.
            _safeUntilUs = Math.Max(_safeUntilUs, SafeUntil(sentAt));
            _belief!.SafeUntilRealUs = node.Clock.RealAt(_safeUntilUs);
        }

        ScheduleRenewal();
    }

    private void OnRenewTimedOut(long sequence)
    {
        if (_phase == Phase.Holding && _renewSequence == sequence)
        {
            // Try again at once; the safe deadline decides (it has passed: the renewal's timeout was the time left).
            _renewSequence = 0;
            Renew();
        }
    }

    private void OnHoldEnded()
    {
        sim.Checker.ObserveHoldEnded(Name, _lock, _token, node.Driver!.Generation);
        MarkLost("the table ended the hold");
    }

    /// <summary>Whether this client holds <paramref name="token"/> of <paramref name="name"/> and has not been told it lost it.</summary>
    /// <summary>The lock this client holds and trusts now, or null.</summary>
    public string? HeldLock => _phase == Phase.Holding && !_lost ? _lock : null;

    public bool Trusts(string name, long token) => _phase == Phase.Holding && !_lost && _lock == name && _token == token;

    /// <summary>HandleLostToken is cancelled; the application reacts by disposing the handle.</summary>
    private void MarkLost(string why)
    {
        if (_lost)
        {
            return;
        }

        _lost = true;
        EndBelief();
        sim.Trace($"{Name} lost {_lock} token {_token}: {why}");
        if (_phase == Phase.Holding)
        {
            Dispose("lost");
        }
    }

    /// <summary>GaggleLockHandle.DisposeAsync: stop renewing, stop trusting, release (best effort, a lease at most).</summary>
    private void Dispose(string why)
    {
        if (_phase != Phase.Holding)
        {
            return;
        }

        _phase = Phase.Finishing;
        if (_renewSequence != 0)
        {
            node.Abandon(_renewSequence);
            _renewSequence = 0;
        }

        _lost = true;
        EndBelief();
        node.UnwatchHold(_lock, _token);
        long token = _token;
        sim.Trace($"{Name} releases {_lock} token {token} ({why})");
        var release = sim.History.Invoke(new ReleaseOperation { Client = Name, Node = node.Id, Lock = _lock, Token = token });
        node.AppendLockCommand(new LockCommand(LockCommandType.Release, _lock, Token: token), node.LocalUs + node.SettleUs, index =>
        {
            sim.Checker.ObserveReleaseAcknowledged(Name, _lock, token, index, node.Driver!.Generation);
            release.Index = index;
            release.Covered = node.CoveredBySnapshot(index);
            sim.History.Respond(release, node.Driver.Generation);
            Finished();
        }, Finished);
    }

    private void EndBelief()
    {
        if (_belief is { } belief)
        {
            _belief = null;
            sim.Checker.EndBelief(belief, sim.NowUs);
        }
    }

    /// <summary>The process died: whatever this client believed, it believes no longer.</summary>
    public void OnProcessDied()
    {
        EndBelief();
        _phase = Phase.Dead;
    }
}
