using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>The node's loop: channel and timer in, Raft core stepped, Ready persisted, sent and applied.</summary>
public sealed partial class GaggleNode
{
    /// <summary>Inputs handled before the pending Ready is processed, so work batches under load.</summary>
    private const int MaxInputsPerBatch = 4096;

    private readonly ProposalDeduplicator _deduplicator = new();
    private readonly List<PendingAppend> _toSubmit = [];
    private long _tickCount;
    private int _tickQueued;

    private void OnInbound(InboundMessage message) => _inbox.Writer.TryWrite(new InboundInput(message));

    private void OnTimer()
    {
        // On the timer, not the loop: an append's timeout must hold while the loop is stuck (a stalled
        // disk); a lock renewal's timeout is what marks a hold lost at its safe deadline.
        ExpireAppends();
        if (Interlocked.Exchange(ref _tickQueued, 1) == 0 && !_inbox.Writer.TryWrite(TickInput.Instance))
        {
            _tickQueued = 0;
        }
    }

    private async Task RunLoopAsync()
    {
        var core = _core!;
        var reader = _inbox.Reader;
        try
        {
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                int handled = 0;
                while (handled++ < MaxInputsPerBatch && reader.TryRead(out var input))
                {
                    Handle(core, input);
                }

                SubmitAppends(core);
                await ProcessReadyAsync(core).ConfigureAwait(false);
                UpdateLeadership(core);
                foreach (var done in _afterReady)
                {
                    done.TrySetResult();
                }

                _afterReady.Clear();
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Storage failed, or an invariant broke: continuing could break safety, so the node stops.
            Log.LoopFailed(_logger, e, Id);
            var fatal = new InvalidOperationException($"Gaggle node '{Id}' stopped after a fatal error: {e.Message}", e);
            Volatile.Write(ref _fatalError, fatal);
            Interlocked.Exchange(ref _state, Stopped);
            _inbox.Writer.TryComplete();
            FailPending(fatal);
        }
    }

    private void Handle(RaftCore core, LoopInput input)
    {
        switch (input)
        {
            case InboundInput inbound:
                HandleInbound(core, inbound.Message);
                break;
            case TickInput:
                Volatile.Write(ref _tickQueued, 0);
                _tickCount++;
                core.Tick();
                MaybeAppendTimeEntry(core);
                if (_tickCount % RetryTicks(core) == 0)
                {
                    RetryStalledAppends(core);
                    RouteUnsentDispatches(core);
                }

                break;
            case PendingAppend append:
                if (_appends.ContainsKey(append.Sequence))
                {
                    AddToBatch(append);
                }

                break;
            case PendingDispatch dispatch:
                RouteDispatch(core, dispatch);
                break;
            case ActionInput action:
                action.Action();
                break;
        }
    }

    private void HandleInbound(RaftCore core, InboundMessage inbound)
    {
        if (!GaggleOptionsValidator.IsValidId(inbound.From))
        {
            CountDropped(inbound.From, "the sender id is not a valid node id", "invalid-sender");
            return;
        }

        WireMessage message;
        try
        {
            message = WireCodec.Decode(inbound.Payload, inbound.From, Id);
        }
        catch (FormatException e)
        {
            CountDropped(inbound.From, e.Message, "malformed");
            return;
        }

        switch (message)
        {
            case RaftWireMessage raft:
                long refusedBefore = core.DroppedMessages;
                core.Step(raft.Message);
                if (core.DroppedMessages != refusedBefore)
                {
                    // The core counts what it refuses (DroppedMessages includes it); the metric must too.
                    GaggleMetrics.DroppedMessages.Add(core.DroppedMessages - refusedBefore, _nodeTag, new KeyValuePair<string, object?>("reason", "refused"));
                }

                break;
            case ForwardAppend forward:
                ProposeForwarded(core, inbound.From, forward);
                break;
            case DispatchRequest request:
                ServeDispatch(core, inbound.From, request);
                break;
            case DispatchReply reply:
                CompleteDispatch(core, reply);
                break;
        }
    }

    private async ValueTask ProcessReadyAsync(RaftCore core)
    {
        while (core.TakeReady() is { } ready)
        {
            if (ready.Snapshot is { } installed)
            {
                // From the leader (Raft §7): persist it, then rebuild the state machines from it.
                await _storage.SaveSnapshotAsync(installed, CancellationToken.None).ConfigureAwait(false);
                NodeSnapshot.Read(installed.Data, _deduplicator, _lockTable, _options.StateMachines);
                CompleteAppendsCoveredBy(installed);
            }

            if (ready.HardState is not null || ready.EntriesToPersist.Count > 0)
            {
                await _storage.SaveAsync(ready.HardState, ready.EntriesToPersist, CancellationToken.None).ConfigureAwait(false);
            }

            RecordHeartbeatRounds(ready.Messages);
            foreach (var message in ready.Messages)
            {
                await SendAsync(message.To, new RaftWireMessage(message)).ConfigureAwait(false);
            }

            Apply(ready.CommittedEntries);
            await MaybeSnapshotAsync(core).ConfigureAwait(false);
            PublishStatus(core);
            if (ready.SoftState is { } soft)
            {
                OnSoftStateChanged(core, soft);
            }
        }
    }

    private async ValueTask SendAsync(string? to, WireMessage message)
    {
        try
        {
            var payload = WireCodec.Encode(message);
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

    private void Apply(IReadOnlyList<LogEntry> entries)
    {
        foreach (var entry in entries)
        {
            if (entry.Kind != EntryKind.Normal)
            {
                continue;
            }

            if (!EntryEnvelope.TryDecode(entry.Data, out var envelope))
            {
                CountDropped("(log)", $"entry {entry.Index} has no valid envelope", "malformed-entry");
                continue;
            }

            if (!_deduplicator.FirstTime(envelope.Origin, envelope.Incarnation, envelope.Sequence, entry.Index))
            {
                continue;
            }

            if (envelope.Kind == EntryPayloadKind.Lock)
            {
                ApplyLockCommand(entry.Index, envelope);
                CompleteAppend(envelope, entry.Index);
                continue;
            }

            GaggleMetrics.Commits.Add(1, _nodeTag);
            if (_options.StateMachines.Count > 0 || Committed is not null || Volatile.Read(ref _subscriberCount) > 0)
            {
                Publish(new GaggleLogEntry(entry.Index, entry.Term, entry.Kind, envelope.Payload, envelope.Origin));
            }

            CompleteAppend(envelope, entry.Index);
        }
    }

    /// <summary>Hands a committed application entry to the state machines, the <see cref="Committed"/> event and the readers.</summary>
    private void Publish(GaggleLogEntry published)
    {
        foreach (var machine in _options.StateMachines.Values)
        {
            // A state machine that throws would leave replicas diverged: the node stops.
            machine.Apply(published);
        }

        Raise(Committed, published, nameof(Committed));
        lock (_subscribersLock)
        {
            foreach (var subscriber in _subscribers)
            {
                subscriber.Writer.TryWrite(published);
            }
        }
    }

    /// <summary>
    /// Our appends that committed inside a snapshot we installed never pass through Apply here (and
    /// their retries are dropped as duplicates): complete them now, with the snapshot's index as the
    /// best index known; a lock request among them gets the outcome the lock table shows.
    /// </summary>
    private void CompleteAppendsCoveredBy(RaftSnapshot snapshot)
    {
        foreach (var (sequence, pending) in _appends)
        {
            if (_deduplicator.Contains(Id, _incarnation, sequence) && _appends.TryRemove(sequence, out _))
            {
                Completed(pending, snapshot.Index);
            }
        }

        ReconcileLockRequestsAfterSnapshot();
    }

    private void CompleteAppend(EntryEnvelope envelope, long index)
    {
        if (envelope.Origin == Id && envelope.Incarnation == _incarnation && _appends.TryRemove(envelope.Sequence, out var pending))
        {
            Completed(pending, index);
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
            GaggleMetrics.LeaderChanges.Add(1, _nodeTag);
            Raise(LeaderChanged, new LeaderChange(soft.Term, soft.LeaderId, soft.Role == RaftRole.Leader), nameof(LeaderChanged));
        }

        if (soft.LeaderId is not null)
        {
            ResubmitForNewLeader(core);
            RouteUnsentDispatches(core);
        }
    }

    private SoftState? _lastSoftState;
    private bool _lostStorageLogged;

    /// <summary>Once enough entries were applied since the last snapshot, snapshots the state machines and compacts the log (Raft §7).</summary>
    private async ValueTask MaybeSnapshotAsync(RaftCore core)
    {
        long applied = core.AppliedIndex;
        long last = core.Snapshot?.Index ?? 0;
        if (_options.SnapshotThresholdEntries == 0 || applied - last < _options.SnapshotThresholdEntries)
        {
            return;
        }

        var snapshot = new RaftSnapshot(applied, core.TermAt(applied), NodeSnapshot.Write(_deduplicator, _lockTable, _options.StateMachines));
        await _storage.SaveSnapshotAsync(snapshot, CancellationToken.None).ConfigureAwait(false);
        core.CompactTo(snapshot, _options.SnapshotRetainEntries);
    }

    private void PublishStatus(RaftCore core)
    {
        if (core.Members.IsDiscovery && core.Members.Peers.Count + 1 != _knownMembers.Length)
        {
            _knownMembers = [Id, .. core.Members.Peers.Order(StringComparer.Ordinal)];
        }

        if (core.LostStorageDetected && !_lostStorageLogged)
        {
            _lostStorageLogged = true;
            Log.LostStorage(_logger, Id, core.LeaderId);
        }

        _status = new NodeStatus(core.Role, core.Term, core.LeaderId, core.CommitIndex, core.LastIndex, core.HasUncommittedEntriesInPreviousTerms(), core.Rejoining);
    }

    /// <summary>A leader leaving hands over to its most up-to-date follower so the cluster need not wait for an election timeout.</summary>
    private void HandOverLeadership(TaskCompletionSource done)
    {
        var core = _core!;
        if (core.Role == RaftRole.Leader && core.MostUpToDateFollower() is { } successor)
        {
            core.TransferLeadership(successor);
        }

        // Completed by the loop once the Ready holding the transfer has been sent.
        _afterReady.Add(done);
    }

    private readonly List<TaskCompletionSource> _afterReady = [];

    private int RetryTicks(RaftCore core) => Math.Max(1, (int)Math.Round(_options.ElectionTimeoutMin / _tickInterval));

    /// <summary>Counts and logs a dropped message; <paramref name="kind"/> is the metric's low-cardinality reason tag.</summary>
    private void CountDropped(string from, string reason, string kind = "invalid")
    {
        Interlocked.Increment(ref _droppedMessages);
        GaggleMetrics.DroppedMessages.Add(1, _nodeTag, new KeyValuePair<string, object?>("reason", kind));
        Log.DroppedMessage(_logger, Id, from, reason);
    }

    private long _droppedMessages;

    /// <summary>Messages this node dropped because they were malformed or did not apply (plus those the Raft core refused).</summary>
    public long DroppedMessages => Interlocked.Read(ref _droppedMessages) + (_core?.DroppedMessages ?? 0);

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
        LoseAllHolds();
        foreach (var key in _appends.Keys)
        {
            if (_appends.TryRemove(key, out var pending))
            {
                pending.Completion.TrySetException(error);
            }
        }

        foreach (var key in _dispatches.Keys)
        {
            if (_dispatches.TryRemove(key, out var pending))
            {
                pending.Completion.TrySetException(error);
            }
        }
    }
}
