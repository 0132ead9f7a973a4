namespace Gaggle.Raft;

internal sealed partial class RaftCore
{
    private readonly Dictionary<string, Progress> _progress = new(StringComparer.Ordinal);
    private bool _broadcastPending;
    private bool _commitNoticePending;
    private string? _leadTransferee;

    /// <summary>TimeoutNow went out in this term: the target may be elected without the lease's stickiness, so this leader's lease is over for the term.</summary>
    private bool _timeoutNowSent;

    internal Progress? ProgressOf(string id) => _progress.GetValueOrDefault(id);

    /// <summary>Times a follower's log turned out to end before entries it had acknowledged.</summary>
    public long FollowerLogRegressions { get; private set; }

    /// <summary>
    /// Hands leadership to <paramref name="target"/> (thesis §3.10): once its log is complete it is
    /// told to campaign at once. Proposals are refused meanwhile; the attempt ends after one
    /// election timeout. Returns false when this node is not the leader or the target is not a voter
    /// of its configuration. Once TimeoutNow went out, the leadership lease is over for this term (the
    /// target's election skips the stickiness the lease relies on), and an attempt that ends without a
    /// new leader makes this node step down rather than lead on without a lease.
    /// </summary>
    public bool TransferLeadership(string target)
    {
        if (Role != RaftRole.Leader || target == Id || !Configuration.IsVoter(target) || !_progress.TryGetValue(target, out var progress))
        {
            return false;
        }

        _leadTransferee = target;
        _electionElapsed = 0;
        if (progress.Match == _log.LastIndex)
        {
            SendTimeoutNow(target);
        }
        else
        {
            SendAppends(target);
        }

        return true;
    }

    private void SendTimeoutNow(string target)
    {
        _timeoutNowSent = true;
        Send(new RaftMessage { Type = MessageType.TimeoutNow, From = Id, To = target, Term = Term });
    }

    /// <summary>The voter whose log is the most complete (best successor for a transfer), or null.</summary>
    public string? MostUpToDateFollower()
    {
        string? best = null;
        long bestMatch = -1;
        foreach (var (id, progress) in _progress)
        {
            if (Configuration.IsVoter(id) && IsRecentlyActive(progress) && progress.Match > bestMatch)
            {
                best = id;
                bestMatch = progress.Match;
            }
        }

        return best;
    }

    private void BecomeLeader()
    {
        _catchUpRoundElapsed = 0;
        _committedOneRoundAgo = _log.Committed;
        _committedTwoRoundsAgo = _log.Committed;
        ResetTerm(Term);
        Role = RaftRole.Leader;
        LeaderId = Id;
        _progress.Clear();
        SyncProgress();

        // Raft §8: a no-op entry of the new term lets the leader commit what earlier terms left behind
        // (and, committed, lets it propose membership changes: see RaftCore.Membership.cs).
        _termStartIndex = _log.LastIndex + 1;
        _log.AppendNew(new LogEntry(_termStartIndex, Term, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty));
        _broadcastPending = true;
        MaybeCommit();
    }

    private void AddProgress(string peer)
    {
        _progress[peer] = new Progress(_log.LastIndex + 1, _config.MaxInflightMessages, _config.MaxInflightBytes) { HighestSent = _log.LastIndex };
        RebuildVoterProgress();
    }

    private int _catchUpRoundElapsed;
    private long _committedOneRoundAgo;
    private long _committedTwoRoundsAgo;

    private void TickLeader()
    {
        _heartbeatElapsed++;
        _electionElapsed++;
        if (++_catchUpRoundElapsed >= _config.ElectionTicksMin)
        {
            // Catch-up rounds (thesis §4.2.1): see IsCaughtUp.
            _catchUpRoundElapsed = 0;
            _committedTwoRoundsAgo = _committedOneRoundAgo;
            _committedOneRoundAgo = _log.Committed;
        }

        foreach (var progress in _progress.Values)
        {
            progress.TicksSinceHeard = Math.Min(progress.TicksSinceHeard + 1, _config.ElectionTicksMin);
        }

        if (_config.CheckQuorum && !QuorumActive())
        {
            // Check-quorum (thesis §6.2): a leader that has not heard from a majority for the minimum
            // election timeout steps down. Checked every tick over a sliding window (not once per
            // period, which let a cut-off leader linger for up to two timeouts, next to its successor):
            // it steps down no later than a follower that stopped hearing from it can time out.
            BecomeFollower(Term, null);
            return;
        }

        if (_electionElapsed >= _config.ElectionTicksMin)
        {
            _electionElapsed = 0;
            _leadTransferee = null;
            if (_timeoutNowSent)
            {
                // The transfer did not produce a leader of a later term in time; without its lease this
                // node steps down, and a normal election (which it may win again) follows.
                BecomeFollower(Term, null);
                return;
            }
        }

        if (_heartbeatElapsed >= _config.HeartbeatTicks)
        {
            _heartbeatElapsed = 0;
            BroadcastHeartbeat();
        }
    }

    /// <summary>Whether a majority of the voters (this node counted only when it is one) was heard from within the minimum election timeout.</summary>
    private bool QuorumActive()
    {
        int active = _selfVoter ? 1 : 0;
        foreach (var progress in _voterProgress)
        {
            active += progress is not null && IsRecentlyActive(progress) ? 1 : 0;
        }

        return active >= Quorum.Majority(VoterCount);
    }

    private bool IsRecentlyActive(Progress progress) => progress.TicksSinceHeard < _config.ElectionTicksMin;

    /// <summary>
    /// On a leader: whether <paramref name="id"/> answered within the last two heartbeat periods, as a
    /// live follower does (an idle one answers every heartbeat). Stricter than the election timeout
    /// of <see cref="IsCaughtUp"/>: a member that died a moment ago still looks recently active.
    /// </summary>
    public bool AnsweredLastHeartbeats(string id)
        => Role == RaftRole.Leader && _progress.TryGetValue(id, out var progress) && progress.TicksSinceHeard <= (2 * _config.HeartbeatTicks) + 1;

    /// <summary>
    /// Whether learner <paramref name="id"/> has caught up (thesis §4.2.1): it answered within the minimum
    /// election timeout and holds every entry this leader had committed one to two election timeouts
    /// ago (and everything, when nothing committed since). Under a steady stream of commits a learner
    /// is always a round trip behind the commit index, so exact equality may never hold; a learner
    /// still working through a backlog is further behind than that.
    /// </summary>
    public bool IsCaughtUp(string id)
        => Role == RaftRole.Leader && _progress.TryGetValue(id, out var progress) && IsRecentlyActive(progress)
            && progress.Match >= Math.Min(_log.Committed, Math.Max(_committedTwoRoundsAgo, 1));

    /// <summary>The number of heartbeat rounds this node has sent as leader (heartbeats carry it; responses echo it).</summary>
    public long HeartbeatRound { get; private set; }

    /// <summary>
    /// The latest heartbeat round that a majority (this leader included) has answered, or 0. Every
    /// member that answered round r received it after r was sent and, with check-quorum, refuses to
    /// vote for another candidate for an election timeout after receiving it; so no other leader can
    /// be elected until ElectionTicksMin after round r was sent. The driver turns this into a
    /// leadership lease with its clock.
    /// </summary>
    public long QuorumAckedHeartbeatRound
    {
        get
        {
            if (Role != RaftRole.Leader || _timeoutNowSent)
            {
                return 0;
            }

            Span<long> rounds = stackalloc long[_voterProgress.Length];
            int n = VoterValues(rounds, HeartbeatRound, static p => p.AckedRound);
            return Quorum.CommittedIndex(rounds[..n], VoterCount);
        }
    }

    /// <summary>True while this leader is handing leadership over (its lease must not be trusted).</summary>
    public bool IsTransferringLeadership => _leadTransferee is not null;

    private void BroadcastHeartbeat()
    {
        HeartbeatRound++;
        foreach (var (peer, progress) in _progress)
        {
            if (progress.State == ProgressState.Snapshot)
            {
                progress.Stalled = progress.ProbeSent && progress.SnapshotOffset == progress.SnapshotOffsetAtLastHeartbeat;
                progress.SnapshotOffsetAtLastHeartbeat = progress.SnapshotOffset;
                Send(new RaftMessage { Type = MessageType.Heartbeat, From = Id, To = peer, Term = Term, LogTerm = ConfigurationIndex, Commit = Math.Min(progress.HeartbeatMatch, _log.Committed), Index = HeartbeatRound, RejectHint = CatchUpTargetFor(progress), Incarnation = progress.Incarnation });
                continue;
            }

            progress.Stalled = progress.Match < _log.LastIndex && progress.Match == progress.MatchAtLastHeartbeat
                && (progress.State == ProgressState.Replicate ? progress.Inflights.Count > 0 : progress.ProbeSent);
            progress.MatchAtLastHeartbeat = progress.Match;
            long commit = Math.Min(progress.HeartbeatMatch, _log.Committed);
            progress.CommitSent = Math.Max(progress.CommitSent, commit);
            Send(new RaftMessage { Type = MessageType.Heartbeat, From = Id, To = peer, Term = Term, LogTerm = ConfigurationIndex, Commit = commit, Index = HeartbeatRound, RejectHint = CatchUpTargetFor(progress), Incarnation = progress.Incarnation });
        }

        if (Discovering && !_members.Complete)
        {
            // Discovery mode: members we have not heard from yet learn about us from a broadcast.
            Send(new RaftMessage { Type = MessageType.Heartbeat, From = Id, To = null, Term = Term, Commit = 0, Index = HeartbeatRound });
        }
    }

    private void StepLeader(RaftMessage message)
    {
        if (!_progress.TryGetValue(message.From, out var progress))
        {
            return;
        }

        if (message.Index > _log.LastIndex && message.Type == MessageType.AppendResponse)
        {
            // Acknowledges entries we never sent: malformed or forged; never let it move the commit index.
            DroppedMessages++;
            return;
        }

        if (message.Type is MessageType.AppendResponse or MessageType.HeartbeatResponse && !FromCurrentRun(message, progress))
        {
            DroppedMessages++;
            return;
        }

        switch (message.Type)
        {
            case MessageType.AppendResponse:
                progress.TicksSinceHeard = 0;
                if (message.Reject)
                {
                    HandleAppendRejection(message, progress);
                }
                else
                {
                    HandleAppendSuccess(message, progress);
                }

                break;
            case MessageType.SnapshotResponse:
                progress.TicksSinceHeard = 0;
                HandleSnapshotResponse(message, progress);
                break;
            case MessageType.HeartbeatResponse when message.Index > HeartbeatRound:
                // Answers a heartbeat round we never sent: forged or malformed.
                DroppedMessages++;
                break;
            case MessageType.HeartbeatResponse when progress.State == ProgressState.Snapshot:
                progress.AckedRound = Math.Max(progress.AckedRound, message.Index);
                progress.TicksSinceHeard = 0;
                if (progress.Stalled)
                {
                    // The chunk in flight (or its answer) is presumed lost: send it again.
                    progress.Stalled = false;
                    progress.ProbeSent = false;
                    SendAppends(message.From);
                }

                break;
            case MessageType.HeartbeatResponse:
                progress.AckedRound = Math.Max(progress.AckedRound, message.Index);
                progress.TicksSinceHeard = 0;
                progress.ProbeSent = false;
                if (progress.Stalled)
                {
                    progress.Stalled = false;
                    if (progress.State == ProgressState.Replicate)
                    {
                        // The streamed window is presumed lost: resend from the last acknowledged index.
                        progress.BecomeProbe();
                        progress.Next = progress.Match + 1;
                    }

                    // A lost probe is resent where it was: Next is still the best guess, and Match + 1
                    // (0 + 1 for a new leader) would resend a follower that is in sync the whole log.
                    SendAppends(message.From, sendIfEmpty: true);
                }
                else if (progress.Match < _log.LastIndex)
                {
                    // In probe state Next may be past the last index (a member learned after the
                    // election, in discovery mode, starts there): an empty probe then finds where it is.
                    SendAppends(message.From, sendIfEmpty: progress.State == ProgressState.Probe);
                }

                break;
        }
    }

    private void HandleAppendSuccess(RaftMessage message, Progress progress)
    {
        bool probeConfirmed = progress.State == ProgressState.Probe && progress.Match == message.Index;
        if (!progress.MaybeUpdate(message.Index) && !probeConfirmed)
        {
            return;
        }

        if (progress.State == ProgressState.Replicate)
        {
            progress.Inflights.FreeUpTo(message.Index);
        }
        else if (progress.State == ProgressState.Probe || progress.Match >= progress.PendingSnapshotIndex)
        {
            // A probe succeeded, or the follower installed the snapshot: stream from here on.
            progress.BecomeReplicate();
        }

        // Either the commit moved, or this follower now holds entries committed before its ack came:
        // in both cases it may be owed a commit notice (FlushLeader decides per follower).
        MaybeCommit();
        if (CommittedOnStoring(message.From, progress.Match, message.Commit))
        {
            progress.CommitSent = Math.Max(progress.CommitSent, progress.Match);
        }

        _commitNoticePending = true;

        if (_leadTransferee == message.From && progress.Match == _log.LastIndex && !_timeoutNowSent)
        {
            SendTimeoutNow(message.From);
        }

        SendAppends(message.From);
    }

    /// <summary>
    /// Fast backtracking (Raft §5.3, last paragraphs): jump nextIndex past the follower's conflicting
    /// term in one step instead of one entry per round trip. Stale rejections are ignored.
    /// </summary>
    private void HandleAppendRejection(RaftMessage message, Progress progress)
    {
        if (progress.State == ProgressState.Snapshot)
        {
            return;
        }

        if (message.LogTerm == 0 && message.RejectHint <= progress.Match)
        {
            // The follower's log ends before entries it acknowledged: it lost its storage (or this is
            // a reordered old rejection). Start over from where its log ends; at worst we resend.
            FollowerLogRegressions++;
            progress.Match = Math.Max(0, message.RejectHint - 1);
            progress.BecomeProbe();
            progress.Next = progress.Match + 1;
            SendAppends(message.From, sendIfEmpty: true);
            return;
        }

        if (message.LogTerm == 0 && message.RejectHint == message.Index + 1)
        {
            // A rejoining follower asks for what follows its commit index (see AskForEntriesAfterCommitted):
            // it acknowledges nothing until it may vote again, so only its commit index shows its
            // progress. Its match stays where it is; probing from there sends it the next entries.
            if (progress.State == ProgressState.Probe && message.RejectHint > progress.Next)
            {
                progress.Next = Math.Min(Math.Max(message.RejectHint, progress.Match + 1), _log.LastIndex + 1);
                SendAppends(message.From, sendIfEmpty: true);
            }

            return;
        }

        if (progress.State == ProgressState.Replicate ? message.Index <= progress.Match : message.Index != progress.Next - 1)
        {
            return;
        }

        long next = message.RejectHint;
        if (message.LogTerm > 0)
        {
            long last = _log.LastIndexOfTerm(message.LogTerm);
            if (last > 0)
            {
                next = last + 1;
            }
        }

        progress.BecomeProbe();
        progress.Next = Math.Clamp(next, progress.Match + 1, Math.Max(message.Index, progress.Match + 1));
        SendAppends(message.From, sendIfEmpty: true);
    }
}
