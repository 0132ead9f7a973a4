namespace Gaggle.Raft;

internal sealed partial class RaftCore
{
    private void StepFollower(RaftMessage message)
    {
        switch (message.Type)
        {
            case MessageType.Append:
                _electionElapsed = 0;
                LeaderId = message.From;
                HandleAppend(message);
                break;
            case MessageType.Heartbeat:
                _electionElapsed = 0;
                LeaderId = message.From;
                DetectLostStorage(message);
                _log.CommitTo(Math.Min(message.Commit, _log.LastIndex));
                Send(new RaftMessage { Type = MessageType.HeartbeatResponse, From = Id, To = message.From, Term = Term, Index = message.Index });
                break;
            case MessageType.CommitNotice:
                _electionElapsed = 0;
                LeaderId = message.From;
                DetectLostStorage(message);
                _log.CommitTo(Math.Min(message.Commit, _log.LastIndex));
                break;
            case MessageType.Snapshot:
                _electionElapsed = 0;
                LeaderId = message.From;
                HandleSnapshotChunk(message);
                break;
            case MessageType.TimeoutNow when !Rejoining:
                // Leadership transfer (thesis §3.10): campaign at once, without pre-vote.
                Campaign(force: true);
                break;
        }
    }

    /// <summary>The AppendEntries receiver (Raft Figure 2, with the §5.3 conflict hint on rejection).</summary>
    private void HandleAppend(RaftMessage message)
    {
        if (!EntriesFollow(message))
        {
            DroppedMessages++;
            return;
        }

        if (message.Index < _log.Committed)
        {
            // Everything up to our commit index is settled; tell the leader where we are.
            Send(new RaftMessage { Type = MessageType.AppendResponse, From = Id, To = message.From, Term = Term, Index = _log.Committed });
            return;
        }

        if (_log.MatchTerm(message.Index, message.LogTerm))
        {
            _log.Merge(message.Entries);
            long lastNew = message.Index + message.Entries.Count;
            _log.CommitTo(Math.Min(message.Commit, lastNew));
            if (_log.Committed >= message.Commit)
            {
                // Holds everything this leader had committed when it sent the message.
                _caughtUpTerm = Math.Max(_caughtUpTerm, Term);
            }

            Send(new RaftMessage { Type = MessageType.AppendResponse, From = Id, To = message.From, Term = Term, Index = lastNew });
            return;
        }

        long hintIndex;
        long hintTerm;
        if (message.Index > _log.LastIndex)
        {
            hintIndex = _log.LastIndex + 1;
            hintTerm = 0;
        }
        else
        {
            hintTerm = _log.Term(message.Index);
            hintIndex = Math.Max(_log.FirstIndexOfTerm(message.Index), _log.Committed + 1);
        }

        Send(new RaftMessage
        {
            Type = MessageType.AppendResponse, From = Id, To = message.From, Term = Term,
            Index = message.Index, Reject = true, RejectHint = hintIndex, LogTerm = hintTerm,
        });
    }

    /// <summary>Entries must be contiguous after prevLogIndex, with terms that never go down nor pass the message's term.</summary>
    private static bool EntriesFollow(RaftMessage message)
    {
        if (message.Index < 0 || message.LogTerm < 0)
        {
            return false;
        }

        long previousTerm = message.LogTerm;
        for (int i = 0; i < message.Entries.Count; i++)
        {
            var entry = message.Entries[i];
            if (entry.Index != message.Index + 1 + i || entry.Term < previousTerm || entry.Term > message.Term)
            {
                return false;
            }

            previousTerm = entry.Term;
        }

        return true;
    }
}
