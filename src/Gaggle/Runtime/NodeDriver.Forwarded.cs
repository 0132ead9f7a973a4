using System.Diagnostics;
using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>The leader's side of forwarded appends: what a follower forwarded, checked and proposed.</summary>
internal sealed partial class NodeDriver
{
    /// <summary>The leader proposes entries a follower forwarded, after checking that each names its sender as origin.</summary>
    private void ProposeForwarded(string from, ForwardAppend forward)
    {
        if (_core.Role != RaftRole.Leader)
        {
            // The sender retries when it learns the real leader.
            Drop(from, "forwarded appends reached a node that is not the leader", "not-leader");
            return;
        }

        if (!FenceOpen)
        {
            Drop(from, "forwarded appends reached a leader whose generation the store has not confirmed lately (its fence is shut); the sender retries", "fenced");
            return;
        }

        if (_generations is not null && !_core.Configuration.Contains(from))
        {
            // Elastic mode: a removed member starts over as a new incarnation, failing what it had
            // pending (its outcome is unknown to it); what its old incarnation still sends is refused
            // here rather than proposed. It appends again once it is a member again.
            Drop(from, "forwarded appends came from a node that is not a member", "not-member");
            return;
        }

        if (_settings.Admissions && _core.AdmissionOf(from) is var admission && admission != forward.Admission)
        {
            // Sent before the sender was removed (and maybe added again): whatever the duplicate table
            // remembered of it was forgotten at its removal, so a retry must not land after it. The
            // sender gives such appends up once it learns its new admission.
            Drop(from, $"forwarded appends were sent as the member admitted at configuration index {forward.Admission}, but the configuration at index {_core.ConfigurationIndex} "
                + (admission < 0 ? "does not list the sender" : $"has it a member since index {admission}"), "stale-admission");
            return;
        }

        var payloads = new List<ReadOnlyMemory<byte>>(forward.Entries.Count);
        List<(ActivityContext Context, long Sequence, int At)>? traced = null;
        long stamp = LeaseClockNow();
        foreach (var entry in forward.Entries)
        {
            if (!EntryEnvelope.TryDecode(entry, out var envelope) || envelope.Origin != from || entry.Length > _settings.MaxMessageBytes + 128
                || (envelope.Kind == EntryPayloadKind.Lock && LockCommand.IsGenerationCommand(envelope.Payload.Span)))
            {
                Drop(from, "a forwarded entry has a malformed envelope, another origin, is too large, or is a generation start (only a founder logs one)", "bad-forward");
                continue;
            }

            if (_forwardedTraces.TakeAppend(from, envelope.Sequence) is var context && context != default)
            {
                (traced ??= []).Add((context, envelope.Sequence, payloads.Count));
            }

            payloads.Add(EntryEnvelope.WithStamp(entry, stamp));
        }

        long first = _core.Propose(payloads);
        if (first > 0 && traced is not null)
        {
            foreach (var (context, sequence, at) in traced)
            {
                Events.TracedProposals.Add(new TracedProposal(context, from, sequence, first + at));
            }
        }
        if (first > 0 && PublishAppended)
        {
            for (int i = 0; i < payloads.Count; i++)
            {
                if (EntryEnvelope.TryDecode(payloads[i], out var envelope) && envelope.Kind == EntryPayloadKind.User)
                {
                    Events.Appended.Add(new GaggleLogEntry(first + i, _core.Term, EntryKind.Normal, envelope.Payload, envelope.Origin));
                }
            }
        }
    }
}
