using Gaggle.Channels;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>
/// This node's appends until they are applied here: batched per loop pass, proposed on the leader
/// (stamped with the lease clock) or forwarded to the leader it knows, held while no leader is known,
/// resubmitted to a new leader, retried when their commit is not seen for an election timeout (a
/// duplicate is dropped when applied), and timed out by the driver's clock.
/// </summary>
internal sealed class AppendPipeline(string id, int retryTicks, int maxMessageBytes, List<Outgoing> outbox, NodeEvents events, bool admissions)
{
    private readonly Dictionary<long, DriverAppend> _appends = [];
    private readonly List<DriverAppend> _toSubmit = [];
    private ReadOnlyMemory<byte>[] _payloads = new ReadOnlyMemory<byte>[16];

    /// <summary>No append's deadline is before this (it may be earlier than the true minimum: a removed append's stays until the next scan).</summary>
    private long _nextDeadlineUs = long.MaxValue;

    /// <summary>Appends waiting for their entry to be applied here.</summary>
    public int Count => _appends.Count;

    public bool HasBatch => _toSubmit.Count > 0;

    /// <summary>A fresh append: submitted with the next batch.</summary>
    public void Add(DriverAppend append)
    {
        _appends[append.Sequence] = append;
        _nextDeadlineUs = Math.Min(_nextDeadlineUs, append.DeadlineUs);
        AddToBatch(append);
    }

    /// <summary>
    /// Appends of <paramref name="sequences"/>, whose entries are in this node's own log now (after it
    /// forced a new cluster: see <see cref="NodeDriver.ForceNewGeneration"/>), count as proposed here,
    /// under <paramref name="admission"/>: they complete when applied, and are neither sent again nor
    /// given up as sent under another admission.
    /// </summary>
    public void AdoptLogged(IEnumerable<long> sequences, RaftCore core, string id, long tick, long admission)
    {
        foreach (long sequence in sequences)
        {
            if (_appends.TryGetValue(sequence, out var pending))
            {
                MarkSent(core, pending, id, tick, admission);
                pending.Submitted = true;
            }
        }
    }

    /// <summary>The caller stopped waiting: no more retries.</summary>
    public void Abandon(long sequence) => _appends.Remove(sequence);

    /// <summary>
    /// Proposes (leader, each entry stamped with <paramref name="stamp"/>) or forwards (follower) the
    /// batch; without a leader the appends stay unsent until one is known. Returns the leader's first
    /// new index, or -1.
    /// </summary>
    public long Submit(RaftCore core, long stamp, long tick, bool publishAppended)
    {
        if (_toSubmit.Count == 0)
        {
            return -1;
        }

        long admission = admissions ? core.AdmissionOf(id) : 0;
        if (admission < 0 || (admissions && core.Role != RaftRole.Leader && core.ConfigurationUnlikeLeaders))
        {
            // Not a member (not yet added, or removed), or its configuration is not its leader's (it
            // is catching up: a node that started over replays its earlier life's configurations, which
            // list it under an admission that is not its own; or it holds a deposed leader's entry):
            // held until it is a member with its leader's configuration. Its admission then says which of what it holds may still go (see GiveUpOtherAdmissions).
            foreach (var pending in _toSubmit)
            {
                pending.Submitted = true;
            }

            return -1;
        }

        GiveUpOtherAdmissions(admission);
        foreach (var pending in _toSubmit)
        {
            pending.Submitted = true;
            pending.InBatch = false;
        }

        if (_toSubmit.Count == 0)
        {
            return -1;
        }

        long first = -1;
        if (core.Role == RaftRole.Leader)
        {
            if (_payloads.Length < _toSubmit.Count)
            {
                _payloads = new ReadOnlyMemory<byte>[Math.Max(_toSubmit.Count, _payloads.Length * 2)];
            }

            var payloads = new ArraySegment<ReadOnlyMemory<byte>>(_payloads, 0, _toSubmit.Count);
            for (int i = 0; i < _toSubmit.Count; i++)
            {
                payloads[i] = EntryEnvelope.WithStamp(_toSubmit[i].Envelope, stamp);
            }

            first = core.Propose(payloads);
            if (first > 0)
            {
                foreach (var pending in _toSubmit)
                {
                    MarkSent(core, pending, id, tick, admission);
                }

                if (publishAppended)
                {
                    PublishAppended(core, first, payloads);
                }
            }

            Array.Clear(_payloads, 0, _toSubmit.Count);
        }
        else if (core.LeaderId is { } leader)
        {
            SendTraces(leader);
            var batch = new List<ReadOnlyMemory<byte>>();
            long bytes = 0;
            foreach (var pending in _toSubmit)
            {
                // Counted as encoded (with each entry's length prefix): a batch of many small entries
                // must not outgrow MaxMessageBytes, which the channel's size limit is set against.
                int size = WireCodec.ForwardedEntrySize(pending.Envelope.Length);
                if (batch.Count > 0 && bytes + size > maxMessageBytes)
                {
                    outbox.Add(new Outgoing(leader, new ForwardAppend(batch.ToArray(), admission)));
                    batch.Clear();
                    bytes = 0;
                }

                batch.Add(pending.Envelope);
                bytes += size;
                MarkSent(core, pending, leader, tick, admission);
            }

            outbox.Add(new Outgoing(leader, new ForwardAppend(batch.ToArray(), admission)));
        }

        _toSubmit.Clear();
        return first;
    }

    /// <summary>The trace contexts of the traced callers in the batch, to the leader just before the batch (see <see cref="TraceContexts"/>).</summary>
    private void SendTraces(string leader)
    {
        List<TracedRequest>? traced = null;
        foreach (var pending in _toSubmit)
        {
            if (pending.Trace != default)
            {
                (traced ??= []).Add(new TracedRequest(pending.Sequence, pending.Trace));
            }
        }

        // Split like the batches they describe: a context takes at most 40 bytes on the wire.
        for (int at = 0, per = Math.Max(1, maxMessageBytes / 40); traced is not null && at < traced.Count; at += per)
        {
            outbox.Add(new Outgoing(leader, new TraceContexts(traced.GetRange(at, Math.Min(per, traced.Count - at)), [])));
        }
    }

    /// <summary>A new leader is known: everything not proposed or forwarded to it in this term goes (again) with the next batch.</summary>
    public void ResubmitForNewLeader(RaftCore core)
    {
        foreach (var pending in _appends.Values)
        {
            if (pending.NeedsResubmitFor(core.LeaderId, core.Term))
            {
                AddToBatch(pending);
            }
        }
    }

    /// <summary>
    /// Forwarded appends whose commit has not been seen for an election timeout are presumed lost
    /// and forwarded again (duplicates are dropped when applied). A leader never re-proposes what it
    /// proposed in its current term: that is in its log already.
    /// </summary>
    public void RetryStalled(RaftCore core, long tick)
    {
        foreach (var pending in _appends.Values)
        {
            if (pending.NeedsRetry(id, core.Term, core.Role == RaftRole.Leader, tick, retryTicks))
            {
                AddToBatch(pending);
            }
        }
    }

    /// <summary>The entry of append <paramref name="sequence"/> was applied at <paramref name="index"/>: its caller is told.</summary>
    public void Complete(long sequence, long index)
    {
        if (_appends.Remove(sequence, out var pending))
        {
            events.Committed.Add((pending, index));
        }
    }

    /// <summary>Completes the appends a snapshot covered (they never pass through apply here) with the snapshot's index.</summary>
    public void CompleteCoveredBy(RaftSnapshot snapshot, Func<long, bool> applied)
    {
        foreach (var sequence in _appends.Keys.ToArray())
        {
            if (applied(sequence))
            {
                Complete(sequence, snapshot.Index);
            }
        }
    }

    /// <summary>Fails the appends whose deadline passed (a scan only when one may have).</summary>
    public void Expire(long nowUs)
    {
        if (nowUs < _nextDeadlineUs)
        {
            return;
        }

        List<long>? expired = null;
        long next = long.MaxValue;
        foreach (var (sequence, pending) in _appends)
        {
            if (pending.DeadlineUs <= nowUs)
            {
                (expired ??= []).Add(sequence);
            }
            else
            {
                next = Math.Min(next, pending.DeadlineUs);
            }
        }

        _nextDeadlineUs = next;

        if (expired is null)
        {
            return;
        }

        foreach (var sequence in expired)
        {
            if (_appends.Remove(sequence, out var pending))
            {
                events.TimedOut.Add(pending);
            }
        }
    }

    private void AddToBatch(DriverAppend pending)
    {
        if (!pending.InBatch)
        {
            pending.InBatch = true;
            _toSubmit.Add(pending);
        }
    }

    /// <summary>
    /// Gives up, their outcome unknown, the appends of the batch sent under another admission than
    /// <paramref name="admission"/>: this node was removed and added again since (cut off or paused, it
    /// may never have learned it). Every replica forgets a removed member's duplicate sessions at its
    /// removal, so a retry under the new admission could be applied a second time; a leader refuses
    /// one under the old admission. The caller may append again.
    /// </summary>
    private void GiveUpOtherAdmissions(long admission)
    {
        int kept = 0;
        for (int i = 0; i < _toSubmit.Count; i++)
        {
            var pending = _toSubmit[i];
            if (pending.Admission < 0 || pending.Admission == admission)
            {
                _toSubmit[kept++] = pending;
                continue;
            }

            pending.InBatch = false;
            if (_appends.Remove(pending.Sequence))
            {
                pending.GivenUpBecause = $"node '{id}' sent it to the leader as the member it was since configuration index {pending.Admission}; "
                    + $"it was removed and added again since (a member since index {admission}), so whether the entry was committed is unknown";
                events.TimedOut.Add(pending);
            }
        }

        _toSubmit.RemoveRange(kept, _toSubmit.Count - kept);
    }

    private static void MarkSent(RaftCore core, DriverAppend pending, string to, long tick, long admission)
    {
        pending.Admission = admission;
        pending.SentTo = to;
        pending.SentTerm = core.Term;
        pending.SentAtTick = tick;
    }

    private void PublishAppended(RaftCore core, long first, IReadOnlyList<ReadOnlyMemory<byte>> payloads)
    {
        for (int i = 0; i < payloads.Count; i++)
        {
            if (EntryEnvelope.TryDecode(payloads[i], out var envelope) && envelope.Kind == EntryPayloadKind.User)
            {
                events.Appended.Add(new GaggleLogEntry(first + i, core.Term, EntryKind.Normal, envelope.Payload, envelope.Origin));
            }
        }
    }
}
