using System.Globalization;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>
/// The node's loop, the only place where threads, the clock, storage and the channel meet the node
/// driver: inputs from the inbox go to the driver; its readies are persisted, then sent; what it
/// decided is carried out (callers completed, events raised, handlers run, snapshots saved). It runs
/// in passes, one at a time (<see cref="LoopInbox"/>): on the thread pool, or on the thread of an
/// application's call to an idle node (see <see cref="RunsHere"/>).
/// </summary>
public sealed partial class GaggleNode
{
    /// <summary>Inputs handled before the pending ready is processed, so work batches under load.</summary>
    private const int MaxInputsPerBatch = 4096;

    private readonly List<TaskCompletionSource> _afterReady = [];
    private readonly LeaderSpans _leaderSpans = new();
    private int _tickQueued;

    /// <summary>The channel's echo count the driver was last told of (see <see cref="IEchoingChannel"/>).</summary>
    private long _echoesSeen;

    /// <summary>This node's monotonic clock in microseconds, the driver's time.</summary>
    private long NowUs() => (long)(_time.GetTimestamp() * _microsecondsPerTimestamp);

    private void OnInbound(InboundMessage message) => _inbox.TryWrite(new InboundInput(message));

    private void OnTimer()
    {
        // On the timer, not the loop: an append's timeout must hold while the loop is stuck (a stalled
        // disk); a lock renewal's timeout is what marks a hold lost at its safe deadline.
        _appendCallers.ExpireStuck(NowUs());
        if (Interlocked.Exchange(ref _tickQueued, 1) == 0 && !_inbox.TryWrite(TickInput.Instance))
        {
            _tickQueued = 0;
        }
    }

    /// <summary>
    /// One pass of the loop (one at a time, see <see cref="LoopInbox"/>): the inputs waiting (up to a
    /// batch), then what the driver made of them persisted, sent and carried out. Passes belong to no
    /// caller's trace (the inbox runs them in the starter's context with no current activity).
    /// </summary>
    private async ValueTask RunPassAsync()
    {
        var driver = _driver!;
        int handled = 0;
        while (handled++ < MaxInputsPerBatch && _inbox.TryRead(out var input))
        {
            // Each input at its own time: a forwarded append is stamped with the lease clock now.
            long now = NowUs();
            driver.Observe(now);
            Handle(driver, input, now);
        }

        driver.PublishAppended = Appended is not null;
        driver.PublishCommitted = _options.StateMachines.Count > 0 || Committed is not null || Volatile.Read(ref _subscriberCount) > 0;
        await ProcessReadyAsync(driver).ConfigureAwait(false);
        CarryOut(driver);
        _leaderSpans.EndCommitted(driver.Core.CommitIndex, driver.Core.Role == Raft.RaftRole.Leader);
        _leadership.Update(driver.IsLeadershipTrusted(NowUs()));
        foreach (var done in _afterReady)
        {
            done.TrySetResult();
        }

        _afterReady.Clear();
        if (_supersededBy is { } generation)
        {
            _supersededBy = null;
            _removed = false;
            _orphaned = false;
            ResetForGeneration(driver, generation);
        }
        else if (_removed)
        {
            _removed = false;
            ResetForRemoval(driver);
        }
        else if (_orphaned)
        {
            _orphaned = false;
            ResetOrphaned(driver);
        }
    }

    /// <summary>
    /// Storage failed, or an invariant broke: continuing could break safety, so the node stops. Its
    /// leadership is no longer trusted (no pass renews it; the others elect another leader) nor claimed, and every
    /// caller waiting gets the returned fatal error: appends, RPCs, lock requests, leader waits, and the
    /// inputs the loop had not taken (see <see cref="LoopInbox"/>). Logged last, and a logger that throws changes nothing.
    /// </summary>
    private Exception OnLoopFailed(Exception e)
    {
        var fatal = new InvalidOperationException($"Gaggle node '{Id}' stopped after a fatal error: {e.Message}", e);
        Volatile.Write(ref _fatalError, fatal);
        Interlocked.Exchange(ref _state, Stopped);
        EndService(fatal);
        try
        {
            Log.LoopFailed(_logger, e, Id);
        }
        catch (Exception logging) when (logging is not OutOfMemoryException)
        {
            // A logger that throws must not replace the fatal error that the waiting inputs get.
        }

        return fatal;
    }

    /// <summary>
    /// The node stopped (its loop failed, or it was disposed) and no pass will run again: its leadership
    /// ends, it is nobody's leader and follows none (its status, the leader gauge and the health check
    /// say so), every caller still waiting gets <paramref name="error"/>, and leader waits look again
    /// and find it stopped.
    /// </summary>
    private void EndService(Exception error)
    {
        _leadership.Update(trusted: false);
        _status = _status with { Role = Raft.RaftRole.Follower, LeaderId = null };
        _leaderSpans.EndAll();
        FailPending(error);
        Volatile.Read(ref _leaderKnown).TrySetResult();
    }

    private void Handle(NodeDriver driver, ILoopInput input, long now)
    {
        switch (input)
        {
            case InboundInput inbound:
                driver.Receive(inbound.Message.From, inbound.Message.Payload);
                break;
            case TickInput:
                Volatile.Write(ref _tickQueued, 0);
                if (_channel is IEchoingChannel echoing && echoing.EchoesHeard is var echoes && echoes != _echoesSeen)
                {
                    _echoesSeen = echoes;
                    driver.HeardOwnEcho(now);
                }

                driver.Tick(now);
                break;
            case PendingAppend append:
                if (_appendCallers.IsWaiting(append.Sequence))
                {
                    if (append.WatchedLockParts > 0)
                    {
                        driver.AppendLockRequest(append, append.WatchedLockParts, append.WatchedLockName);
                    }
                    else
                    {
                        driver.Append(append);
                    }
                }

                break;
            case PendingDispatch dispatch:
                if (_dispatchCallers.IsWaiting(dispatch.CallId))
                {
                    driver.Dispatch(dispatch);
                }

                break;
            case ActionInput action:
                action.Action(driver);
                break;
        }
    }

    /// <summary>Persists, sends and advances every ready the driver has, carrying out its events after each.</summary>
    private async ValueTask ProcessReadyAsync(NodeDriver driver)
    {
        while (driver.TakeReady(NowUs()) is { } ready)
        {
            if (ready.Raft is { } raft)
            {
                if (raft.Snapshot is { } installed)
                {
                    await _storage.SaveSnapshotAsync(installed, CancellationToken.None).ConfigureAwait(false);
                }

                if (raft.HardState is not null || raft.EntriesToPersist.Count > 0)
                {
                    await _storage.SaveAsync(raft.HardState, raft.EntriesToPersist, CancellationToken.None).ConfigureAwait(false);
                }
            }

            if (driver.Core.IsTransferringLeadership)
            {
                // Handing leadership over: the leadership token is cancelled before TimeoutNow can leave.
                _leadership.Update(trusted: false);
            }

            foreach (var message in ready.Messages)
            {
                await SendAsync(message.To, message.Message, ready.Generation).ConfigureAwait(false);
            }

            driver.Advance();
            if (driver.Events.SnapshotToSave is { } snapshot)
            {
                driver.Events.SnapshotToSave = null;
                await _storage.SaveSnapshotAsync(snapshot, CancellationToken.None).ConfigureAwait(false);
                driver.CompactTo(snapshot);
            }

            PublishStatus(driver);
            CarryOut(driver);
        }
    }

    /// <summary>Sends a message of this node (an RPC reply, from a handler) in its current generation.</summary>
    private ValueTask SendAsync(string? to, WireMessage message) => SendAsync(to, message, GenerationId);

    private async ValueTask SendAsync(string? to, WireMessage message, long generation)
    {
        try
        {
            var payload = WireCodec.Encode(message, generation);
            if (to is null)
            {
                await _channel.BroadcastAsync(payload).ConfigureAwait(false);
            }
            else
            {
                await _channel.SendAsync(to, payload).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Raft tolerates lost messages; a failed send is one.
            Log.SendFailed(_logger, e, Id, to ?? "*");
        }
    }

    private void PublishStatus(NodeDriver driver)
    {
        var core = driver.Core;
        PublishMembership(core);
        Interlocked.Exchange(ref _generation, driver.Generation);

        _status = new NodeStatus(core.Role, core.Term, core.LeaderId, core.CommitIndex, core.LastIndex, core.HasUncommittedEntriesInPreviousTerms(), core.Rejoining);
    }

    /// <summary>Carries out what the driver decided: callers completed, events raised, handlers started, drops counted.</summary>
    private void CarryOut(NodeDriver driver)
    {
        var events = driver.Events;
        if (events.IsEmpty)
        {
            return;
        }

        Interlocked.Exchange(ref _droppedMessages, driver.DroppedMessages);
        foreach (var dropped in events.Dropped)
        {
            GaggleMetrics.DroppedMessages.Add(dropped.Count, _nodeTag, new KeyValuePair<string, object?>("reason", dropped.Kind));
            Log.DroppedMessage(_logger, Id, dropped.From, dropped.Reason);
        }

        if (events.LeaderChange is { } change)
        {
            OnLeaderChanged(change.Previous, change.Current);
        }

        foreach (var entry in events.Appended)
        {
            Raise(Appended, entry, nameof(Appended));
        }

        if (events.AppliedCount > 0)
        {
            GaggleMetrics.Commits.Add(events.AppliedCount, _nodeTag);
        }

        foreach (var entry in events.Published)
        {
            Publish(entry);
        }

        _leaderSpans.Start(events.TracedProposals, Id);

        _lockCallers.CarryOut(events);
        _appendCallers.CarryOut(events);
        _dispatchCallers.CarryOut(events);
        CompleteMembership(events);
        if (events.RemovedBy is { } removedBy)
        {
            Log.RemovedFromCluster(_logger, Id, removedBy);
        }

        if (events.JoinRefused is { } refused && !_joinRefusedLogged)
        {
            _joinRefusedLogged = true;
            Log.JoinRefused(_logger, Id, refused.Leader, refused.Cluster.ToString("x16", CultureInfo.InvariantCulture), refused.Own.ToString("x16", CultureInfo.InvariantCulture));
        }

        CarryOutGenerations(events);
        _supersededBy ??= events.Superseded;
        _removed |= events.Removed;
        _orphaned |= events.Orphaned;
        if (events.LostStorageDetected)
        {
            Log.LostStorage(_logger, Id, driver.Core.LeaderId);
        }

        events.Clear();
    }

    /// <summary>Hands a committed application entry to the <see cref="Committed"/> event and the readers.</summary>
    private void Publish(GaggleLogEntry published)
    {
        Raise(Committed, published, nameof(Committed));
        lock (_subscribersLock)
        {
            foreach (var subscriber in _subscribers)
            {
                subscriber.Writer.TryWrite(published);
            }
        }
    }

    private void OnLeaderChanged(SoftState? previous, SoftState soft)
    {
        Log.LeaderChanged(_logger, Id, soft.LeaderId, soft.Term, soft.Role);
        if (soft.LeaderId is not null)
        {
            Volatile.Read(ref _leaderKnown).TrySetResult();
        }
        else if (_leaderKnown.Task.IsCompleted)
        {
            Volatile.Write(ref _leaderKnown, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        }

        if (previous?.LeaderId != soft.LeaderId)
        {
            LeaderSpans.RecordLeaderChange(Id, soft.Term, soft.LeaderId, soft.Role.ToString());
            GaggleMetrics.LeaderChanges.Add(1, _nodeTag);
            Raise(LeaderChanged, new LeaderChange(soft.Term, soft.LeaderId, soft.Role == RaftRole.Leader), nameof(LeaderChanged));
        }
    }

    /// <summary>A leader leaving hands over to its most up-to-date follower; <paramref name="done"/> completes once that has been sent.</summary>
    private void HandOverLeadership(NodeDriver driver, TaskCompletionSource done)
    {
        driver.HandOverLeadership();
        _afterReady.Add(done);
    }

    private long _droppedMessages;
    private bool _joinRefusedLogged;
    private long? _supersededBy;
    private bool _removed;
    private bool _orphaned;

    /// <summary>Messages this node dropped because they were malformed or did not apply (plus those the Raft core refused).</summary>
    public long DroppedMessages => Interlocked.Read(ref _droppedMessages);

    private void Raise<T>(EventHandler<T>? handler, T args, string eventName)
    {
        if (handler is null)
        {
            return;
        }

        try
        {
            handler(this, args);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.HandlerFailed(_logger, e, Id, eventName);
        }
    }

    private void FailPending(Exception error)
    {
        _lockCallers.LoseAll();
        _lockCallers.FailAll(error);
        _appendCallers.FailAll(error);
        _dispatchCallers.FailAll(error);
    }
}
