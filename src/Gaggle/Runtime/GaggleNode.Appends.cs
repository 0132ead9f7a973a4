using System.Text.Json;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>Appends: proposed on the leader, forwarded from followers, retried until committed, applied once.</summary>
public sealed partial class GaggleNode
{
    /// <summary>
    /// Appends <paramref name="data"/> to the replicated log and completes with its index once it is
    /// committed. Works on any node: a follower forwards to the leader, and while no leader is known
    /// the append waits. Lost messages and leader changes are retried; an entry appended twice by a
    /// retry is delivered once.
    /// </summary>
    /// <param name="data">The entry's payload (opaque bytes; at most <see cref="GaggleOptions.MaxMessageBytes"/>).</param>
    /// <param name="timeout">How long to wait for the commit; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting (the entry may still be committed later).</param>
    /// <returns>The committed entry's log index.</returns>
    /// <exception cref="TimeoutException">The entry was not known to be committed within <paramref name="timeout"/>; it may still commit later.</exception>
    /// <exception cref="ObjectDisposedException">The node stopped first.</exception>
    public Task<long> AppendAsync(ReadOnlyMemory<byte> data, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (data.Length > _options.MaxMessageBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(data), data.Length, $"The entry is {data.Length} bytes; MaxMessageBytes allows at most {_options.MaxMessageBytes}.");
        }

        long sequence = NextSequence();
        return AppendEnvelopeAsync(sequence, new EntryEnvelope(EntryPayloadKind.User, 0, Id, _incarnation, sequence, data).Encode(), timeout, cancellationToken, recordDuration: true);
    }

    internal long NextSequence() => Interlocked.Increment(ref _nextSequence);

    internal ulong Incarnation => _incarnation;

    /// <summary>
    /// Appends an encoded entry envelope and waits until it is committed and applied here. The node's
    /// timer times the append out (at its first tick after the deadline, whether or not the loop is
    /// free): no timer per append.
    /// </summary>
    internal async Task<long> AppendEnvelopeAsync(long sequence, byte[] envelope, TimeSpan? timeout, CancellationToken cancellationToken, bool recordDuration = false)
    {
        ValidateTimeout(timeout);
        long now = _time.GetTimestamp();
        var pending = new PendingAppend(sequence, envelope)
        {
            StartedAt = recordDuration ? now : 0,
            Timeout = timeout is { } t && t != Timeout.InfiniteTimeSpan ? t : null,
            Deadline = timeout is { } limit && limit != Timeout.InfiniteTimeSpan ? DeadlineAfter(now, limit) : long.MaxValue,
        };
        _appends[sequence] = pending;
        try
        {
            Post(pending);
            return cancellationToken.CanBeCanceled
                ? await pending.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false)
                : await pending.Completion.Task.ConfigureAwait(false);
        }
        finally
        {
            // Whoever completed it removed it first; a cancelled wait leaves here.
            if (!pending.Completion.Task.IsCompleted)
            {
                _appends.TryRemove(sequence, out _);
            }
        }
    }

    /// <summary>The timestamp <paramref name="limit"/> after <paramref name="now"/>; long.MaxValue (never) when that is beyond the clock's range.</summary>
    private long DeadlineAfter(long now, TimeSpan limit)
    {
        double span = limit.TotalSeconds * _time.TimestampFrequency;
        return span >= long.MaxValue - (double)Math.Max(now, 0) ? long.MaxValue : now + (long)span;
    }

    /// <summary>Fails the appends whose deadline passed with a <see cref="TimeoutException"/> (on the node's timer, at each tick; thread-safe).</summary>
    private void ExpireAppends()
    {
        if (_appends.IsEmpty)
        {
            return;
        }

        long now = _time.GetTimestamp();
        foreach (var (sequence, pending) in _appends)
        {
            if (pending.Deadline <= now && _appends.TryRemove(sequence, out _))
            {
                pending.Completion.TrySetException(new TimeoutException(
                    $"The entry appended on node '{Id}' was not committed within {pending.Timeout!.Value.TotalMilliseconds:0} ms (leader: {LeaderId ?? "none"}); it may still be committed later."));
            }
        }
    }

    /// <summary>Completes an append whose entry was applied here (it has left <see cref="_appends"/> already).</summary>
    private void Completed(PendingAppend pending, long index)
    {
        if (pending.StartedAt != 0)
        {
            GaggleMetrics.AppendDuration.Record(_time.GetElapsedTime(pending.StartedAt).TotalMilliseconds, _nodeTag);
        }

        pending.Completion.TrySetResult(index);
    }

    /// <summary>
    /// Registers <paramref name="pending"/> under <paramref name="key"/>, hands it to the loop and
    /// waits for <paramref name="completion"/>; a timeout becomes a <see cref="TimeoutException"/>
    /// with the text of <paramref name="timeoutMessage"/>, and the registration always ends.
    /// </summary>
    private async Task<T> PostAndWaitAsync<TPending, T>(
        System.Collections.Concurrent.ConcurrentDictionary<long, TPending> registry, long key, TPending pending,
        Task<T> completion, TimeSpan? timeout, CancellationToken cancellationToken, Func<GaggleNode, TPending, TimeSpan, string> timeoutMessage)
        where TPending : LoopInput
    {
        ValidateTimeout(timeout);
        registry[key] = pending;
        try
        {
            Post(pending);
            return timeout is { } t
                ? await completion.WaitAsync(t, _time, cancellationToken).ConfigureAwait(false)
                : await completion.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(timeoutMessage(this, pending, timeout!.Value));
        }
        finally
        {
            registry.TryRemove(key, out _);
        }
    }

    /// <summary>Serializes <paramref name="value"/> with System.Text.Json and appends it; see <see cref="AppendAsync(ReadOnlyMemory{byte}, TimeSpan?, CancellationToken)"/>.</summary>
    /// <typeparam name="T">The value's type.</typeparam>
    /// <param name="value">The value to append.</param>
    /// <param name="timeout">How long to wait for the commit; forever when null.</param>
    /// <param name="jsonOptions">Serializer options; the defaults when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The committed entry's log index.</returns>
    public Task<long> AppendJsonAsync<T>(T value, TimeSpan? timeout = null, JsonSerializerOptions? jsonOptions = null, CancellationToken cancellationToken = default)
        => AppendAsync(JsonSerializer.SerializeToUtf8Bytes(value, jsonOptions), timeout, cancellationToken);

    private static void ValidateTimeout(TimeSpan? timeout)
    {
        if (timeout is { } t && t < TimeSpan.Zero && t != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), t, "The timeout must be positive, zero, or null to wait forever.");
        }
    }

    /// <summary>Proposes (leader) or forwards (follower) the appends that arrived in this batch of loop input.</summary>
    private void SubmitAppends(RaftCore core)
    {
        if (_toSubmit.Count == 0)
        {
            return;
        }

        foreach (var pending in _toSubmit)
        {
            pending.Submitted = true;
            pending.InBatch = false;
        }

        if (core.Role == RaftRole.Leader)
        {
            var payloads = new ReadOnlyMemory<byte>[_toSubmit.Count];
            long stamp = LeaseClockNow(core);
            for (int i = 0; i < payloads.Length; i++)
            {
                payloads[i] = EntryEnvelope.WithStamp(_toSubmit[i].Envelope, stamp);
            }

            long first = core.Propose(payloads);
            if (first > 0)
            {
                foreach (var pending in _toSubmit)
                {
                    MarkSent(core, pending, Id);
                }

                RaiseAppended(core, first, payloads);
            }
        }
        else if (core.LeaderId is { } leader)
        {
            var batch = new List<ReadOnlyMemory<byte>>();
            long bytes = 0;
            foreach (var pending in _toSubmit)
            {
                // Counted as encoded (with each entry's length prefix): a batch of many small entries
                // must not outgrow MaxMessageBytes, which the channel's size limit is set against.
                int size = WireCodec.ForwardedEntrySize(pending.Envelope.Length);
                if (batch.Count > 0 && bytes + size > _options.MaxMessageBytes)
                {
                    _ = SendAsync(leader, new ForwardAppend(batch.ToArray()));
                    batch.Clear();
                    bytes = 0;
                }

                batch.Add(pending.Envelope);
                bytes += size;
                MarkSent(core, pending, leader);
            }

            _ = SendAsync(leader, new ForwardAppend(batch.ToArray()));
        }

        // Without a leader the appends stay unsent (SentTo null) until one is known.
        _toSubmit.Clear();
    }

    private void MarkSent(RaftCore core, PendingAppend pending, string to)
    {
        pending.SentTo = to;
        pending.SentTerm = core.Term;
        pending.SentAtTick = _tickCount;
    }

    private void RaiseAppended(RaftCore core, long first, IReadOnlyList<ReadOnlyMemory<byte>> payloads)
    {
        if (Appended is null)
        {
            return;
        }

        for (int i = 0; i < payloads.Count; i++)
        {
            if (!EntryEnvelope.TryDecode(payloads[i], out var envelope) || envelope.Kind != EntryPayloadKind.User)
            {
                continue;
            }

            Raise(Appended, new GaggleLogEntry(first + i, core.Term, EntryKind.Normal, envelope.Payload, envelope.Origin), nameof(Appended));
        }
    }

    /// <summary>The leader proposes entries a follower forwarded, after checking that each names its sender as origin.</summary>
    private void ProposeForwarded(RaftCore core, string from, ForwardAppend forward)
    {
        if (core.Role != RaftRole.Leader)
        {
            // The sender retries when it learns the real leader.
            CountDropped(from, "forwarded appends reached a node that is not the leader", "not-leader");
            return;
        }

        var payloads = new List<ReadOnlyMemory<byte>>(forward.Entries.Count);
        long stamp = LeaseClockNow(core);
        foreach (var entry in forward.Entries)
        {
            if (!EntryEnvelope.TryDecode(entry, out var envelope) || envelope.Origin != from || entry.Length > _options.MaxMessageBytes + 128)
            {
                CountDropped(from, "a forwarded entry has a malformed envelope, another origin, or is too large", "bad-forward");
                continue;
            }

            payloads.Add(EntryEnvelope.WithStamp(entry, stamp));
        }

        long first = core.Propose(payloads);
        if (first > 0)
        {
            RaiseAppended(core, first, payloads);
        }
    }

    /// <summary>Adds an append to the batch being submitted, once.</summary>
    private void AddToBatch(PendingAppend pending)
    {
        if (!pending.InBatch)
        {
            pending.InBatch = true;
            _toSubmit.Add(pending);
        }
    }

    /// <summary>A new leader is known: everything not proposed or forwarded to it in this term goes (again).</summary>
    private void ResubmitForNewLeader(RaftCore core)
    {
        foreach (var pending in _appends.Values)
        {
            if (pending.NeedsResubmitFor(core.LeaderId, core.Term))
            {
                AddToBatch(pending);
            }
        }

        SubmitAppends(core);
    }

    /// <summary>
    /// Forwarded appends whose commit has not been seen for an election timeout are presumed lost
    /// and forwarded again (duplicates are dropped when applied). A leader never re-proposes what it
    /// proposed in its current term: that is in its log already.
    /// </summary>
    private void RetryStalledAppends(RaftCore core)
    {
        int retryTicks = RetryTicks(core);
        foreach (var pending in _appends.Values)
        {
            if (pending.NeedsRetry(Id, core.Term, core.Role == RaftRole.Leader, _tickCount, retryTicks))
            {
                AddToBatch(pending);
            }
        }

        SubmitAppends(core);
    }
}
