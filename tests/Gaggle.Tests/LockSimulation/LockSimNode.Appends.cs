using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle.Tests.LockSimulation;

/// <summary>GaggleNode.Appends.cs, simulated: appends proposed on the leader or forwarded to it, retried until committed or given up.</summary>
internal sealed partial class LockSimNode
{
    private void TakePosted()
    {
        foreach (var pending in _posted)
        {
            if (_appends.ContainsKey(pending.Sequence))
            {
                AddToBatch(pending);
            }
        }

        _posted.Clear();
    }

    private void TimeOutAppends()
    {
        long now = LocalUs;
        foreach (var pending in _appends.Values.Where(p => p.DeadlineUs <= now).ToList())
        {
            _appends.Remove(pending.Sequence);
            pending.OnTimedOut?.Invoke();
        }
    }

    private void SubmitAppends(RaftCore core)
    {
        if (_toSubmit.Count == 0)
        {
            return;
        }

        foreach (var pending in _toSubmit)
        {
            pending.Pending.Submitted = true;
            pending.Pending.InBatch = false;
        }

        if (core.Role == RaftRole.Leader)
        {
            long stamp = LeaseClockNow(core);
            var payloads = _toSubmit.Select(p => (ReadOnlyMemory<byte>)EntryEnvelope.WithStamp(p.Envelope, stamp)).ToArray();
            if (core.Propose(payloads) > 0)
            {
                foreach (var pending in _toSubmit)
                {
                    MarkSent(core, pending, Id);
                }
            }
        }
        else if (core.LeaderId is { } leader)
        {
            foreach (var pending in _toSubmit)
            {
                MarkSent(core, pending, leader);
            }

            sim.Network.Forward(Id, leader, _toSubmit.Select(p => p.Envelope).ToArray());
        }

        _toSubmit.Clear();
    }

    private void MarkSent(RaftCore core, SimAppend pending, string to)
    {
        pending.Pending.SentTo = to;
        pending.Pending.SentTerm = core.Term;
        pending.Pending.SentAtTick = _tickCount;
    }

    private void AddToBatch(SimAppend pending)
    {
        if (!pending.Pending.InBatch)
        {
            pending.Pending.InBatch = true;
            _toSubmit.Add(pending);
        }
    }

    private void ProposeForwarded(RaftCore core, string from, IReadOnlyList<byte[]> entries)
    {
        if (core.Role != RaftRole.Leader)
        {
            return;
        }

        long stamp = LeaseClockNow(core);
        var payloads = new List<ReadOnlyMemory<byte>>();
        foreach (var entry in entries)
        {
            if (EntryEnvelope.TryDecode(entry, out var envelope) && envelope.Origin == from)
            {
                payloads.Add(EntryEnvelope.WithStamp(entry, stamp));
            }
        }

        core.Propose(payloads);
    }

    private void ResubmitForNewLeader(RaftCore core)
    {
        foreach (var pending in _appends.Values)
        {
            if (pending.Pending.NeedsResubmitFor(core.LeaderId, core.Term))
            {
                AddToBatch(pending);
            }
        }

        SubmitAppends(core);
    }

    private void RetryStalledAppends(RaftCore core)
    {
        int retryTicks = sim.Settings.RetryTicks;
        foreach (var pending in _appends.Values)
        {
            if (pending.Pending.NeedsRetry(Id, core.Term, core.Role == RaftRole.Leader, _tickCount, retryTicks))
            {
                AddToBatch(pending);
            }
        }

        SubmitAppends(core);
    }
}
