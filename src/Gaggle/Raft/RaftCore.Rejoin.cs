namespace Gaggle.Raft;

/// <summary>
/// Rejoining after lost storage. A node that lost its hard state and log (a deleted data directory,
/// in-memory storage across a process restart) might vote twice in a term, or vote for a candidate
/// missing entries it had acknowledged, breaking Election Safety or Leader Completeness. A rejoining
/// node therefore grants no vote, never campaigns (it only pre-votes, to learn the others' terms) and
/// ignores TimeoutNow until
/// <list type="number">
/// <item>it has heard from at least N - majority + 1 other members that are not rejoining themselves
/// (enough that any majority that could have counted its lost vote or entries overlaps them; a
/// rejoining member's term may be one it lost, so its word does not count here), and</item>
/// <item>it has received, from a leader whose term is at least the highest term it heard, an entry
/// of that leader's term and every entry that leader had committed (with
/// <see cref="RaftConfig.FollowerCommit"/>, every entry that leader sent it, as its heartbeat names: a
/// follower may have committed entries the leader's commit index does not cover yet);</item>
/// </list>
/// or until every other member (rejoining or not) has told it that it is at term 0: then no candidate
/// that still remembers its candidacy ever asked for a vote, and no leader ever existed. Term 0 from
/// only some of the members is not enough: a candidate it did not hear from may be campaigning in the
/// term in which it voted before the loss, and a second vote in that term could elect two leaders.
/// A leader at such a term was elected without this node's vote, so its log holds every committed
/// entry, and this node's possibly lost votes are all in older terms. Until the first condition holds
/// and no member it heard from is at a later term than its leader, it acknowledges no entries either
/// (a stale leader would count them); and it takes no commit index from heartbeats, whose
/// min(match, commit) may count acknowledgements it lost. A node enters this mode when started with
/// <see cref="RaftConfig.StartRejoining"/> (the operator knows the storage was lost), or
/// by itself when a leader's heartbeat shows it acknowledged entries it no longer has. The flag is
/// persisted in the hard state, so a crash before it clears keeps the node rejoining. In a 3-node
/// cluster the rejoining node needs both other nodes up to vote again.
/// <para>
/// What an earlier run of the node sent may still arrive after it restarted (a message held in a
/// sender's reconnect backlog or publish retries, or reordered by another channel), and what the
/// leader sent it may arrive at the new run: a heartbeat whose catch-up target was set before the
/// lost run acknowledged more, or an acknowledgement of an entry the lost run stored, counted after
/// the new run caught up. Each run of a node has a higher <see cref="RaftConfig.Incarnation"/>; its
/// acknowledgements and heartbeat answers carry it, and the leader, once it heard from a run, counts
/// nothing from an earlier one and forgets what that one acknowledged (<see cref="FromCurrentRun"/>).
/// Its heartbeats name the run they were set for, and a rejoining node takes a catch-up target only
/// from a heartbeat that names its own run: set after the leader heard from this run, so after every
/// acknowledgement of the lost runs that the leader will ever count, and after everything it ever
/// sent them (the target covers it: <see cref="CatchUpTargetFor"/>).
/// </para>
/// </summary>
internal sealed partial class RaftCore
{
    private readonly Dictionary<string, long> _observedTerms = new(StringComparer.Ordinal);

    /// <summary>Every member heard from, rejoining or not, and the highest term it showed (only for the term-0 rule).</summary>
    private readonly Dictionary<string, long> _anyTerms = new(StringComparer.Ordinal);
    private long _caughtUpTerm = -1;
    private int _rejoinTicks;

    /// <summary>True while the node may not vote or campaign (see the type's remarks).</summary>
    public bool Rejoining
    {
        get => _rejoining;
        private set
        {
            _rejoining = value;
            _lostData |= value;
        }
    }

    private bool _rejoining;

    /// <summary>This node lost data since it started (it was or is rejoining): it trusts only verified commits.</summary>
    private bool _lostData;

    /// <summary>Set when a leader showed that this node lost entries it had acknowledged.</summary>
    public bool LostStorageDetected { get; private set; }

    /// <summary>
    /// A heartbeat's commit is min(our match, leader commit): above our last index, it proves that we
    /// acknowledged entries we no longer hold, i.e. our storage was lost.
    /// </summary>
    private void DetectLostStorage(RaftMessage message)
    {
        if (message.Commit > _log.LastIndex && !Rejoining)
        {
            Rejoining = true;
            LostStorageDetected = true;
        }
    }

    /// <summary>
    /// Records that our log holds every entry the leader of this term had committed (as of
    /// <paramref name="leaderCommit"/>). Our last entry being of the leader's term proves that our
    /// whole log is a prefix of the leader's (Log Matching), which holds every entry committed in
    /// earlier terms (Leader Completeness; the leader's commit index may still lag behind them); our
    /// commit index then covers those it committed in its own term.
    /// </summary>
    private void MaybeCaughtUp(long leaderCommit)
    {
        if (Rejoining && !_config.FollowerCommit && _log.LastTerm == Term && _log.Committed >= leaderCommit)
        {
            _caughtUpTerm = Math.Max(_caughtUpTerm, Term);
        }
    }

    /// <summary>
    /// What a heartbeat to <paramref name="progress"/>'s follower tells it to catch up to, should it be
    /// rejoining: the leader's commit index, or with <see cref="RaftConfig.FollowerCommit"/> the highest
    /// index this leader ever sent it, at least the start of this term. A follower commits the leader's
    /// entries on storing them, before the leader knows (its acknowledgement may be lost), so an entry
    /// beyond the leader's commit index may have been committed, applied and answered by that very node
    /// before it lost its storage: an entry of this term that this leader sent it, so at most the highest
    /// sent; or of an earlier term, and then committed on a majority before this term began, so below its
    /// start (Leader Completeness: the rejoining node voted for nobody since). Everything up to the target
    /// was sent before the heartbeat, so it is reachable: the leader's last index would not be, under a
    /// steady load whose newest entries go out after the heartbeat.
    /// </summary>
    private long CatchUpTargetFor(Progress progress) => _config.FollowerCommit ? Math.Max(_termStartIndex, progress.HighestSent) : _log.Committed;

    /// <summary>
    /// The highest catch-up target a heartbeat of this term's leader named for this run of the node
    /// (<see cref="HeartbeatWhileRejoining"/>), with that term: the only commit index a rejoining node
    /// trusts to cover what its lost runs acknowledged. An AppendEntries names no run (a broadcast cannot),
    /// and one sent to a lost run may arrive after the restart carrying a commit index from before that
    /// run acknowledged more.
    /// </summary>
    private (long Term, long Target) _runCatchUpTarget = (-1, 0);

    /// <summary>After an AppendEntries while rejoining: caught up to the target a heartbeat named for this run, if one did in this term.</summary>
    private void MaybeCaughtUpToRunTarget()
    {
        if (_runCatchUpTarget.Term == Term)
        {
            MaybeCaughtUp(_runCatchUpTarget.Target);
        }
    }

    /// <summary>
    /// With <see cref="RaftConfig.FollowerCommit"/>: caught up once this log ends in an entry of the
    /// leader's term (so it is a prefix of the leader's log) at or beyond the index its heartbeat names
    /// (<see cref="CatchUpTargetFor"/>). An AppendEntries cannot show that (it need not carry all the leader sent).
    /// </summary>
    private void MaybeCaughtUpToLeadersLog(long target)
    {
        if (Rejoining && _config.FollowerCommit && _log.LastTerm == Term && _log.LastIndex >= target)
        {
            _caughtUpTerm = Math.Max(_caughtUpTerm, Term);
        }
    }

    /// <summary>
    /// A rejoining node takes no commit index from heartbeats: theirs is min(match, commit), and the
    /// leader's match for us may count acknowledgements we lost (even entries our log now holds in an
    /// older, conflicting version). The heartbeat's RejectHint carries what to catch up to (the leader's
    /// commit index, or with follower commits more: <see cref="CatchUpTargetFor"/>): when it shows we
    /// are not caught up, we say our log is only vouched for up to our commit index, which makes the leader resend from there (and in an idle cluster gives us the entries that prove it).
    /// </summary>
    private void HeartbeatWhileRejoining(RaftMessage message)
    {
        if (message.RejectHint > 0 && message.Incarnation == _config.Incarnation)
        {
            // A heartbeat's RejectHint carries the leader's full commit index, or with follower commits what it sent (CatchUpTargetFor).
            _runCatchUpTarget = (Term, Math.Max(_runCatchUpTarget.Term == Term ? _runCatchUpTarget.Target : 0, message.RejectHint));
            MaybeCaughtUp(message.RejectHint);
            MaybeCaughtUpToLeadersLog(message.RejectHint);
        }

        if (_caughtUpTerm < Term)
        {
            AskForEntriesAfterCommitted(message.From);
        }
    }

    /// <summary>
    /// A rejoining node's answer where others acknowledge: "my log is vouched for up to my commit
    /// index, send what follows". It is the one rejection whose hint is its Index + 1 with no term,
    /// and the leader moves its next index there (see HandleAppendRejection); it never moves the
    /// leader's match. Without it a rejoining node whose log ends in an old configuration (a learner
    /// that started over while still a member) never receives the entries naming the members it must
    /// hear from to acknowledge again, and the leader, waiting for an acknowledgement, resends the
    /// same first entries for ever.
    /// </summary>
    private void AskForEntriesAfterCommitted(string leader)
        => Send(new RaftMessage
        {
            Type = MessageType.AppendResponse, From = Id, To = leader, Term = Term,
            Index = _log.Committed, Reject = true, RejectHint = _log.Committed + 1, LogTerm = 0,
        });

    /// <summary>
    /// Whether an acknowledgement or heartbeat answer comes from the follower's latest run the leader
    /// heard from. One from a later run replaces it: what the earlier runs acknowledged no longer counts
    /// (Match goes back to 0, and replication probes again), since that storage may be gone. One from an
    /// earlier run is dropped. (A run whose storage survived loses nothing by this but a round of
    /// probing.) What this leader sent any run stays in <see cref="Progress.HighestSent"/>, so the
    /// catch-up target still covers it; and heartbeats still show the new run what the earlier ones
    /// acknowledged (<see cref="Progress.EarlierRunsMatch"/>), so a run that lost it and was not told
    /// detects the loss (<see cref="DetectLostStorage"/>) even when the leader heard from it first.
    /// </summary>
    private static bool FromCurrentRun(RaftMessage message, Progress progress)
    {
        if (message.Incarnation == progress.Incarnation)
        {
            return true;
        }

        if (message.Incarnation < progress.Incarnation)
        {
            return false;
        }

        progress.Incarnation = message.Incarnation;
        progress.EarlierRunsMatch = Math.Max(progress.EarlierRunsMatch, progress.Match);
        progress.Match = 0;
        progress.MatchAtLastHeartbeat = 0;
        progress.BecomeProbe();
        return true;
    }

    /// <summary>Asks the members it has not heard from yet for their terms, every other heartbeat period.</summary>
    private void TickRejoining()
    {
        if (++_rejoinTicks % (2 * _config.HeartbeatTicks) != 1)
        {
            return;
        }

        if (Discovering && !_members.Complete)
        {
            Send(new RaftMessage { Type = MessageType.TermQuery, From = Id, To = null, Term = Term });
            return;
        }

        foreach (var peer in Configuration.Voters)
        {
            if (peer != Id && !_observedTerms.ContainsKey(peer))
            {
                Send(new RaftMessage { Type = MessageType.TermQuery, From = Id, To = peer, Term = Term });
            }
        }
    }

    /// <summary>
    /// Records a lower bound of the sender's current term, and moves to it when it is later than ours:
    /// we may only finish rejoining under a leader of at least that term, and a leader of an earlier
    /// term must learn that it is stale. (Otherwise a term heard from a member that has since lost it
    /// with its storage kept us rejoining for good under a stable leader of an earlier term.) Only a
    /// message that proves its sender is not rejoining counts as hearing from it (see <see cref="FromWholeMember"/>).
    /// </summary>
    private void ObserveTerm(RaftMessage message)
    {
        long term = message.Type switch
        {
            MessageType.PreVote => message.Term - 1,
            MessageType.PreVoteResponse => message.Index,
            _ => message.Term,
        };
        term = Math.Max(0, term);
        _anyTerms[message.From] = Math.Max(_anyTerms.GetValueOrDefault(message.From), term);
        if (FromWholeMember(message))
        {
            _observedTerms[message.From] = Math.Max(_observedTerms.GetValueOrDefault(message.From), term);
        }

        if (term > Term)
        {
            BecomeFollower(term, null);
        }

        MaybeFinishRejoining();
    }

    private void MaybeFinishRejoining()
    {
        if (!Rejoining)
        {
            return;
        }

        if (AllMembersAtTermZero() || (HeardFromEnoughMembers() && HighestObservedTerm() > 0 && _caughtUpTerm >= HighestObservedTerm()))
        {
            Rejoining = false;
        }
    }

    /// <summary>
    /// Every other member is at term 0, rejoining or not: no member that still remembers its term ever
    /// saw a candidate, so no vote this node lost can help anyone win (a candidate that lost its own
    /// storage forgot its candidacy), and no leader ever existed. A fresh cluster whose members all
    /// start rejoining (in-memory storage with Rejoin set everywhere) starts this way.
    /// </summary>
    private bool AllMembersAtTermZero()
        => CountVoters(_anyTerms.Keys) >= VoterCount - (_selfVoter ? 1 : 0) && _anyTerms.Values.All(t => t == 0) && _observedTerms.Values.All(t => t == 0);

    /// <summary>
    /// Whether the message shows that its sender is not rejoining (a rejoining node never leads or
    /// campaigns, refuses every vote, and marks its pre-vote requests and term reports): a leader's
    /// traffic, a candidate's vote request, a granted vote or pre-vote, an unmarked pre-vote request or
    /// term report.
    /// </summary>
    private static bool FromWholeMember(RaftMessage message) => message.Type switch
    {
        MessageType.Append or MessageType.Heartbeat or MessageType.CommitNotice or MessageType.Snapshot or MessageType.Vote => true,
        MessageType.PreVote or MessageType.VoteResponse or MessageType.PreVoteResponse or MessageType.TermReport => !message.Reject,
        _ => false,
    };


    /// <summary>
    /// Whether this node may acknowledge entries to the leader of its current term. Acknowledging is as
    /// dangerous as voting while rejoining: the acknowledgements and votes it lost may have helped
    /// commit entries in a later term than this leader's, and a stale leader that counted its new
    /// acknowledgement could commit a conflicting entry over them. So it acknowledges only once it
    /// has heard from enough members (as for voting) and none of them is at a later term.
    /// </summary>
    private bool MayAcknowledge() => !Rejoining || (HeardFromEnoughMembers() && Term >= HighestObservedTerm());

    /// <summary>At least N - majority + 1 other voters (N voters in this node's configuration), none rejoining: any majority that counted what this node lost overlaps them.</summary>
    private bool HeardFromEnoughMembers()
        => CountVoters(_observedTerms.Keys) >= Math.Min(VoterCount - (_selfVoter ? 1 : 0), VoterCount - Quorum.Majority(VoterCount) + 1);

    /// <summary>How many of <paramref name="ids"/> are voters of this node's configuration (in discovery mode, every id heard counts).</summary>
    private int CountVoters(IEnumerable<string> ids)
    {
        int count = 0;
        foreach (var id in ids)
        {
            count += Discovering || Configuration.IsVoter(id) ? 1 : 0;
        }

        return count;
    }

    private long HighestObservedTerm() => _observedTerms.Count == 0 ? 0 : _observedTerms.Values.Max();
}
