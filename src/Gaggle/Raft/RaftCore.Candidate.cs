namespace Gaggle.Raft;

internal sealed partial class RaftCore
{
    private readonly Dictionary<string, bool> _votes = new(StringComparer.Ordinal);

    /// <summary>Election timeout elapsed: start a pre-vote round, or a real election when pre-vote is off.</summary>
    private void StartElection()
    {
        // A rejoining node only ever pre-votes: the answers tell it the others' terms.
        if (_config.PreVote || Rejoining)
        {
            ResetTerm(Term);
            Role = RaftRole.PreCandidate;
            RequestVotes(MessageType.PreVote, Term + 1, force: false);
        }
        else
        {
            Campaign(force: false);
        }
    }

    /// <summary>Raft §5.2: increment the term, vote for ourselves and ask every member for its vote.</summary>
    private void Campaign(bool force)
    {
        ResetTerm(Term + 1);
        Role = RaftRole.Candidate;
        VotedFor = Id;
        RequestVotes(MessageType.Vote, Term, force);
    }

    /// <summary>
    /// Asks every voter of this node's configuration for its (pre-)vote. A rejoining node's pre-vote
    /// request is marked (Reject, unused on requests otherwise): its term may be one it lost, so other
    /// rejoining nodes do not count it.
    /// </summary>
    private void RequestVotes(MessageType type, long term, bool force)
    {
        bool unsure = Rejoining;
        _votes[Id] = true;
        if (TallyVotes())
        {
            return;
        }

        if (Discovering && !_members.Complete)
        {
            Send(new RaftMessage { Type = type, From = Id, To = null, Term = term, Index = _log.LastIndex, LogTerm = _log.LastTerm, Force = force, Reject = unsure });
            return;
        }

        foreach (var voter in Configuration.Voters)
        {
            if (voter != Id)
            {
                Send(new RaftMessage { Type = type, From = Id, To = voter, Term = term, Index = _log.LastIndex, LogTerm = _log.LastTerm, Force = force, Reject = unsure });
            }
        }
    }

    private void StepCandidate(RaftMessage message)
    {
        switch (message.Type)
        {
            case MessageType.Append:
            case MessageType.Heartbeat:
            case MessageType.CommitNotice:
            case MessageType.Snapshot:
                // A leader exists in our term: we lost (Raft §5.2).
                BecomeFollower(message.Term, message.From);
                StepFollower(message);
                break;
            case MessageType.PreVoteResponse when Role == RaftRole.PreCandidate:
            case MessageType.VoteResponse when Role == RaftRole.Candidate:
                _votes[message.From] = !message.Reject;
                TallyVotes();
                MaybeFinishRejoining();
                break;
        }
    }

    /// <summary>Acts on the votes so far, counting only the voters of this node's configuration (§4.1); true when the round is decided.</summary>
    private bool TallyVotes()
    {
        int granted = 0;
        int rejected = 0;
        foreach (var (voter, vote) in _votes)
        {
            if (Configuration.IsVoter(voter))
            {
                granted += vote ? 1 : 0;
                rejected += vote ? 0 : 1;
            }
        }

        switch (Quorum.Tally(granted, rejected, VoterCount))
        {
            case VoteResult.Won when Role == RaftRole.PreCandidate && Rejoining:
                BecomeFollower(Term, null);
                return true;
            case VoteResult.Won when Role == RaftRole.PreCandidate:
                Campaign(force: false);
                return true;
            case VoteResult.Won:
                BecomeLeader();
                return true;
            case VoteResult.Lost:
                BecomeFollower(Term, null);
                return true;
            default:
                return false;
        }
    }
}
