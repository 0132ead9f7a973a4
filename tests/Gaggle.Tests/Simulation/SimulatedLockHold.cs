using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>A lock to ask for: its name, its slots (1 for a mutex, 0 for a reader-writer lock) and the hold wanted.</summary>
internal readonly record struct LockChoice(string Name, int MaxCount, LockHoldKind Kind)
{
    public bool ReaderWriter => Kind is LockHoldKind.Read or LockHoldKind.Write;

    /// <summary>The command type of a request for this lock alone, or of this part of a multi-lock request.</summary>
    public LockCommandType CommandType => Kind switch
    {
        LockHoldKind.Read => LockCommandType.AcquireRead,
        LockHoldKind.Write => LockCommandType.AcquireWrite,
        _ => LockCommandType.Acquire,
    };

    public override string ToString() => ReaderWriter ? $"{Name}/{Kind}" : $"{Name}/{MaxCount.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
}

/// <summary>
/// One hold of a simulated client, following GaggleLockHandle step by step: it renews its lease on
/// its own, stops trusting the hold when its safe deadline passes or the table ends it, and releases
/// when disposed. A client holds one (a single acquire) or one per lock of a multi-lock acquire, each
/// with its own token, renewals and release. It tells the checker when its holder starts and stops
/// believing it holds the lock; its timers run on its node's clock, checked at the node's ticks.
/// </summary>
internal sealed class SimulatedLockHold(Simulator sim, SimulatedNode node, SimulatedLockClient owner, LockChoice choice, long token, long grantIndex)
{
    private long _safeUntilUs;
    private long _renewWakeUs;
    private long _renewSequence;
    private bool _lost;
    private ClientBelief? _belief;

    private enum HoldState
    {
        Holding,
        Releasing,
        Done,
    }

    private HoldState State { get; set; }

    public string Lock => choice.Name;

    public long Token { get; } = token;

    /// <summary>Not disposed yet (it may be lost: its holder then disposes it).</summary>
    public bool IsHolding => State == HoldState.Holding;

    /// <summary>Its release was committed or given up, or its process died.</summary>
    public bool IsDone => State == HoldState.Done;

    /// <summary>Held, and its holder has not been told it lost it.</summary>
    public bool IsTrusted => State == HoldState.Holding && !_lost;

    private long LeaseUs => node.LeaseMs * 1000;

    public override string ToString() => $"{choice} token {Token} {State}{(_lost ? " lost" : "")}";

    /// <summary>The handle is made: the hold counts as alive from <paramref name="trustedSinceUs"/> (the request's or the confirming renewal's send time).</summary>
    public void Begin(long trustedSinceUs)
    {
        _safeUntilUs = SafeUntil(trustedSinceUs);
        node.WatchHold(Lock, Token, OnHoldEnded);
        _belief = new ClientBelief(owner.Name, Lock, choice.MaxCount, Token, sim.NowUs, sim.Step)
        {
            Kind = choice.Kind,
            SafeUntilRealUs = node.Clock.RealAt(_safeUntilUs),
            Generation = node.Driver!.Generation,
            GrantIndex = grantIndex,
        };
        sim.Checker.BeginBelief(_belief);
        ScheduleRenewal();
    }

    /// <summary>The renewal timer, on the node's clock at its ticks.</summary>
    public void OnTimer()
    {
        if (State == HoldState.Holding && _renewSequence == 0 && node.LocalUs >= _renewWakeUs)
        {
            Renew();
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
            new LockCommand(LockCommandType.Renew, Lock, Token: Token, LeaseMs: node.LeaseMs),
            _safeUntilUs,
            _ => OnRenewed(sequence, sentAt),
            () => OnRenewTimedOut(sequence));
        _renewSequence = sequence;
    }

    private void OnRenewed(long sequence, long sentAt)
    {
        if (State != HoldState.Holding || _renewSequence != sequence)
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
        if (State == HoldState.Holding && _renewSequence == sequence)
        {
            // Try again at once; the safe deadline decides (it has passed: the renewal's timeout was the time left).
            _renewSequence = 0;
            Renew();
        }
    }

    private void OnHoldEnded()
    {
        sim.Checker.ObserveHoldEnded(owner.Name, Lock, Token, node.Driver!.Generation);
        MarkLost("the table ended the hold");
    }

    /// <summary>HandleLostToken is cancelled; the application reacts by disposing (see <see cref="SimulatedLockClient.OnHoldLost"/>).</summary>
    private void MarkLost(string why)
    {
        if (_lost)
        {
            return;
        }

        _lost = true;
        EndBelief();
        sim.Trace($"{owner.Name} lost {Lock} token {Token}: {why}");
        if (State == HoldState.Holding)
        {
            owner.OnHoldLost();
        }
    }

    /// <summary>GaggleLockHandle.DisposeAsync: stop renewing, stop trusting, release (best effort, a lease at most).</summary>
    public void Dispose(string why)
    {
        if (State != HoldState.Holding)
        {
            return;
        }

        State = HoldState.Releasing;
        if (_renewSequence != 0)
        {
            node.Abandon(_renewSequence);
            _renewSequence = 0;
        }

        _lost = true;
        EndBelief();
        node.UnwatchHold(Lock, Token);
        sim.Trace($"{owner.Name} releases {Lock} token {Token} ({why})");
        var release = sim.History.Invoke(new ReleaseOperation { Client = owner.Name, Node = node.Id, Lock = Lock, Token = Token });
        node.AppendLockCommand(new LockCommand(LockCommandType.Release, Lock, Token: Token), node.LocalUs + node.SettleUs, index =>
        {
            sim.Checker.ObserveReleaseAcknowledged(owner.Name, Lock, Token, index, node.Driver!.Generation);
            release.Index = index;
            release.Covered = node.CoveredBySnapshot(index);
            sim.History.Respond(release, node.Driver.Generation);
            Finished();
        }, Finished);
    }

    private void Finished()
    {
        if (State == HoldState.Releasing)
        {
            State = HoldState.Done;
            owner.OnHoldFinished();
        }
    }

    private void EndBelief()
    {
        if (_belief is { } belief)
        {
            _belief = null;
            sim.Checker.EndBelief(belief, sim.NowUs);
        }
    }

    /// <summary>The process died: whatever its holder believed, it believes no longer.</summary>
    public void OnProcessDied()
    {
        EndBelief();
        State = HoldState.Done;
    }
}
