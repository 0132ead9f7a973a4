namespace Gaggle.Raft;

internal sealed partial class RaftCore
{
    /// <summary>The highest index an AppendEntries of the current leader showed to match its log (0 after a term or leader change).</summary>
    private long _verifiedIndex;

    /// <summary>The highest commit index this term's leader was heard to have, or with follower commits the highest index its heartbeat said it sent here (<see cref="CatchUpTargetFor"/>); 0 after a term change: how far a catching-up node has to go.</summary>
    public long LeaderCommitSeen { get; private set; }

    /// <summary>
    /// The highest configuration index this term's leader named in an AppendEntries or a heartbeat sent
    /// to this node (0 after a term change). A leader replicates only to the members of its latest configuration, so
    /// its configuration at that index lists this node.
    /// </summary>
    public long LeaderConfigurationSeen { get; private set; }

    /// <summary>Whether this node has a leader and heard from it within the shortest election timeout.</summary>
    public bool HearsFromLeader => LeaderId is not null && _electionElapsed < _config.ElectionTicksMin;

    private void StepFollower(RaftMessage message)
    {
        if (message.Type is MessageType.Append or MessageType.CommitNotice)
        {
            LeaderCommitSeen = Math.Max(LeaderCommitSeen, message.Commit);
        }
        else if (message.Type == MessageType.Heartbeat)
        {
            LeaderCommitSeen = Math.Max(LeaderCommitSeen, Math.Max(message.Commit, message.RejectHint));
        }

        if (message.Type == MessageType.Append && message.To == Id)
        {
            // Addressed to this node (a broadcast reaches non-members too).
            LeaderConfigurationSeen = Math.Max(LeaderConfigurationSeen, message.RejectHint);
        }
        else if (message.Type == MessageType.Heartbeat && message.To == Id)
        {
            // A leader heartbeats its members only, naming its configuration: a node added again and
            // still catching up (its probes rejected) may hear nothing else from it for a while (elastic seed 1620).
            LeaderConfigurationSeen = Math.Max(LeaderConfigurationSeen, message.LogTerm);
        }

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
                if (Rejoining)
                {
                    HeartbeatWhileRejoining(message);
                }
                else
                {
                    CommitFromLeader(message.Commit);
                }

                Send(new RaftMessage { Type = MessageType.HeartbeatResponse, From = Id, To = message.From, Term = Term, Index = message.Index });
                break;
            case MessageType.CommitNotice when message.To is null:
                // A broadcast notice reaches every node on the channel, members or not (a removed node,
                // one not added yet): it vouches only for what this leader's AppendEntries verified here.
                _electionElapsed = 0;
                LeaderId = message.From;
                if (!Rejoining)
                {
                    _log.CommitTo(Math.Min(Math.Min(message.Commit, Math.Max(_verifiedIndex, _log.Committed)), _log.LastIndex));
                }

                break;
            case MessageType.CommitNotice:
                _electionElapsed = 0;
                LeaderId = message.From;
                DetectLostStorage(message);
                if (!Rejoining)
                {
                    // min(match, commit): a rejoining node's match at the leader may count entries it lost.
                    CommitFromLeader(message.Commit);
                }

                break;
            case MessageType.Snapshot:
                _electionElapsed = 0;
                LeaderId = message.From;
                HandleSnapshotChunk(message);
                break;
            case MessageType.AppendResponse when !message.Reject:
                OnPeerAcknowledgement(message);
                break;
            case MessageType.TimeoutNow when !Rejoining && _selfVoter:
                // Leadership transfer (thesis §3.10): campaign at once, without pre-vote.
                Campaign(force: true);
                break;
        }
    }

    /// <summary>
    /// A heartbeat or commit notice carries min(our match, leader commit), where "our match" is the
    /// leader's memory of our acknowledgements. After this node lost data that memory can be stale (a
    /// lost unflushed tail may even bring back older, different entries at those indexes), so such a
    /// node commits from these messages only what an AppendEntries of this leader verified (Log
    /// Matching); the leader's next AppendEntries corrects it. Other nodes keep what they acknowledged.
    /// </summary>
    private void CommitFromLeader(long leaderCommit)
    {
        long limit = _lostData ? Math.Max(_verifiedIndex, _log.Committed) : _log.LastIndex;
        _log.CommitTo(Math.Min(Math.Min(leaderCommit, limit), _log.LastIndex));
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
            Acknowledge(message.From, _log.Committed);
            return;
        }

        if (_log.MatchTerm(message.Index, message.LogTerm))
        {
            _log.Merge(message.Entries);
            SyncConfigsAfterMerge(message.Entries);
            long lastNew = message.Index + message.Entries.Count;
            _verifiedIndex = Math.Max(_verifiedIndex, lastNew);
            _log.CommitTo(Math.Min(message.Commit, lastNew));
            _leaderConfiguration = (Term, message.RejectHint);
            CommitFromAcknowledgements();

            // Not the message's commit index: an AppendEntries names no run, and one the lost run was sent
            // (delivered again, or late) predates what that run acknowledged afterwards.
            MaybeCaughtUpToRunTarget();

            Acknowledge(message.From, lastNew);
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

    /// <summary>Tells the leader that our log matches its log up to <paramref name="index"/> (while rejoining forbids that, asks for what follows its commit index).</summary>
    private void Acknowledge(string leader, long index)
    {
        if (MayAcknowledge())
        {
            // Commit: how far this node knows the log committed (it may have counted itself, RaftCore.FollowerCommit.cs).
            Send(new RaftMessage { Type = MessageType.AppendResponse, From = Id, To = BroadcastsAcknowledgements ? null : leader, Term = Term, Index = index, Commit = _log.Committed });
        }
        else if (_caughtUpTerm < Term)
        {
            AskForEntriesAfterCommitted(leader);
        }
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
