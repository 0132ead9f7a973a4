namespace Gaggle.Raft;

/// <summary>
/// The Raft consensus state machine of one node: pure and deterministic. It reads no clock, starts
/// no thread and does no I/O; time arrives as <see cref="Tick"/> and randomness from the seeded
/// source in its <see cref="RaftConfig"/>.
/// </summary>
/// <remarks>
/// Inputs: <see cref="Step"/> (a message from a peer), <see cref="Tick"/> (one unit of time) and
/// <see cref="Propose"/> (new entries, leader only). Output: <see cref="TakeReady"/> hands out a
/// <see cref="Ready"/> batch; see its ordering contract (persist, then send, then apply).
/// Role-specific behaviour lives in the partial files RaftCore.Follower/Candidate/Leader.cs.
/// </remarks>
internal sealed partial class RaftCore
{
    private readonly RaftConfig _config;
    private readonly Membership _members;
    private readonly RaftLog _log;
    private readonly List<RaftMessage> _outbox = [];
    private HardState _lastHardState;
    private SoftState? _lastSoftState;
    private int _electionElapsed;
    private int _heartbeatElapsed;
    private int _randomizedElectionTimeout;
    private readonly bool _restartedWithTerm;
    private int _ticksAlive;

    /// <summary>Builds a node from its persisted state (empty for a new node).</summary>
    public RaftCore(RaftConfig config, HardState hardState, IReadOnlyList<LogEntry> entries, long applied = 0, RaftSnapshot? snapshot = null)
    {
        config.Validate();
        _config = config;
        _members = new Membership(config);
        _log = new RaftLog(entries, hardState.Commit, applied, snapshot);
        _snapshot = snapshot;
        InitConfiguration(entries, snapshot);
        Term = hardState.Term;
        VotedFor = hardState.VotedFor;
        _lastHardState = hardState;
        Rejoining = hardState.Rejoining || config.StartRejoining;
        _restartedWithTerm = hardState.Term > 0;
        MaybeFinishRejoining();
        BecomeFollower(Term, null);
    }

    public string Id => _config.Id;

    public long Term { get; private set; }

    public string? VotedFor { get; private set; }

    public string? LeaderId { get; private set; }

    public RaftRole Role { get; private set; }

    public long CommitIndex => _log.Committed;

    public long LastIndex => _log.LastIndex;

    /// <summary>The last index handed out for applying.</summary>
    public long AppliedIndex => _log.Applied;

    /// <summary>The term of the entry at <paramref name="index"/> (0 for index 0, -1 when compacted or missing).</summary>
    public long TermAt(long index) => _log.Term(index);

    /// <summary>Messages dropped because their sender is not a member (or the discovered cluster is full), or they were malformed.</summary>
    public long DroppedMessages { get; private set; }

    internal RaftLog Log => _log;

    /// <summary>Ends the restart lease at once (scenario tests that set up a history by restarting nodes).</summary>
    internal void EndStartupLease() => _ticksAlive = int.MaxValue;

    internal Membership Members => _members;

    /// <summary>True when the log holds entries of earlier terms that are not yet known to be committed.</summary>
    public bool HasUncommittedEntriesInPreviousTerms()
        => _log.Committed < _log.LastIndex && _log.Term(_log.Committed + 1) < Term;

    /// <summary>Advances time by one tick: election timeouts for followers and candidates, heartbeats and check-quorum for leaders.</summary>
    public void Tick()
    {
        if (_ticksAlive < int.MaxValue)
        {
            _ticksAlive++;
        }

        if (Rejoining)
        {
            TickRejoining();
        }

        if (Role == RaftRole.Leader)
        {
            TickLeader();
        }
        else
        {
            TickElection();
        }
    }

    /// <summary>Handles one message from a peer. Messages that do not apply are ignored, never thrown.</summary>
    public void Step(RaftMessage message)
    {
        if (message.From == Id || (message.To is not null && message.To != Id))
        {
            return;
        }

        if (Discovering)
        {
            // Discovery mode counts the first ClusterSize ids it hears as the voters; anyone else is
            // refused. Otherwise every node answers by the Raft rules, whatever its configuration says
            // (a leader may be outside it, a candidate may count it before it knows, thesis §4.1).
            if (!_members.Admit(message.From, out bool learned))
            {
                DroppedMessages++;
                return;
            }

            if (learned)
            {
                UpdateConfiguration();
            }
        }

        if (Rejoining)
        {
            ObserveTerm(message);
        }

        switch (message.Type)
        {
            case MessageType.TermQuery:
                // Reject marks a report from a node that is rejoining itself: its term may be one it lost.
                Send(new RaftMessage { Type = MessageType.TermReport, From = Id, To = message.From, Term = Term, Reject = Rejoining });
                return;
            case MessageType.TermReport:
                return;
        }

        if (message.Term > Term)
        {
            if (message.Type is MessageType.Vote or MessageType.PreVote && !message.Force && InLease())
            {
                // Raft thesis §4.2.3: a node that hears from a current leader ignores disruptive candidates.
                return;
            }

            if (message.Type == MessageType.PreVote || (message.Type == MessageType.PreVoteResponse && !message.Reject))
            {
                // Pre-votes are asked and granted for a future term without moving to it (thesis §9.6).
            }
            else if (message.Type is MessageType.Append or MessageType.Heartbeat or MessageType.CommitNotice or MessageType.Snapshot)
            {
                BecomeFollower(message.Term, message.From);
            }
            else
            {
                BecomeFollower(message.Term, null);
            }
        }
        else if (message.Term < Term)
        {
            if (message.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot)
            {
                // Tell a stale leader about the newer term so that it steps down (Raft §5.1). Figure 2:
                // "reply false if term < currentTerm" — and acknowledge nothing: nothing was checked, and
                // a leader elected later in our term must not read this answer as a match of our log.
                Send(new RaftMessage { Type = MessageType.AppendResponse, From = Id, To = message.From, Term = Term, Reject = true });
            }
            else if (message.Type == MessageType.PreVote)
            {
                Send(new RaftMessage { Type = MessageType.PreVoteResponse, From = Id, To = message.From, Term = Term, Index = Term, Reject = true });
            }

            return;
        }

        if (message.Type is MessageType.Vote or MessageType.PreVote)
        {
            HandleVoteRequest(message);
            return;
        }

        switch (Role)
        {
            case RaftRole.Leader:
                StepLeader(message);
                break;
            case RaftRole.Follower when Rejoining:
                StepFollower(message);
                MaybeFinishRejoining();
                break;
            case RaftRole.Candidate:
            case RaftRole.PreCandidate:
                StepCandidate(message);
                break;
            default:
                StepFollower(message);
                break;
        }
    }

    /// <summary>
    /// Whether the driver holds this node's proposals for now (<see cref="Propose"/> refuses them): an
    /// elastic leader whose generation the store has not confirmed lately (Runtime.GenerationFence).
    /// </summary>
    public bool ProposalsHeld { get; set; }

    /// <summary>
    /// Appends entries with the given payloads when this node is the leader (and not handing over
    /// leadership, nor holding proposals). Returns the index of the first new entry, or -1 when the
    /// node cannot accept them.
    /// </summary>
    public long Propose(IReadOnlyList<ReadOnlyMemory<byte>> payloads)
    {
        if (Role != RaftRole.Leader || _leadTransferee is not null || ProposalsHeld || payloads.Count == 0)
        {
            return -1;
        }

        long first = _log.LastIndex + 1;
        foreach (var payload in payloads)
        {
            _log.AppendNew(new LogEntry(_log.LastIndex + 1, Term, EntryKind.Normal, payload));
        }

        _broadcastPending = true;
        MaybeCommit();
        return first;
    }

    /// <summary>Returns the work accumulated since the last call, or null when there is none.</summary>
    public Ready? TakeReady()
    {
        if (Role == RaftRole.Leader)
        {
            FlushLeader();
            MaybeStepDownAfterRemoval();
        }

        var hardState = new HardState(Term, VotedFor, _log.Committed, Rejoining);
        var softState = new SoftState(Role, Term, LeaderId);
        bool hardChanged = hardState != _lastHardState;
        bool softChanged = softState != _lastSoftState;
        if (!hardChanged && !softChanged && _outbox.Count == 0 && !_log.HasUnpersisted && _log.Applied >= _log.Committed && _snapshotToInstall is null)
        {
            return null;
        }

        _lastHardState = hardState;
        _lastSoftState = softState;
        var snapshot = _snapshotToInstall;
        _snapshotToInstall = null;
        var ready = new Ready
        {
            Snapshot = snapshot,
            HardState = hardChanged ? hardState : null,
            SoftState = softChanged ? softState : null,
            EntriesToPersist = _log.TakeUnpersisted(),
            Messages = CoalesceOutbox(),
            CommittedEntries = _log.TakeCommittedToApply(),
        };
        _outbox.Clear();
        return ready;
    }

    private void Send(RaftMessage message)
    {
        if (message.Type is MessageType.AppendResponse or MessageType.HeartbeatResponse)
        {
            message.Incarnation = _config.Incarnation;
        }

        _outbox.Add(message);
    }

    /// <summary>
    /// Acknowledgements are cumulative: of several successful AppendResponses (or heartbeat
    /// responses) to one leader in one batch only the highest matters.
    /// </summary>
    private List<RaftMessage> CoalesceOutbox()
    {
        var result = new List<RaftMessage>(_outbox.Count);
        Dictionary<(string?, MessageType), int>? positions = null;
        foreach (var message in _outbox)
        {
            bool cumulative = (message.Type == MessageType.AppendResponse && !message.Reject) || message.Type == MessageType.HeartbeatResponse;
            if (!cumulative)
            {
                result.Add(message);
                continue;
            }

            positions ??= [];
            var key = (message.To, message.Type);
            if (positions.TryGetValue(key, out int at) && result[at].Term == message.Term)
            {
                if (message.Index >= result[at].Index)
                {
                    result[at] = message;
                }
            }
            else
            {
                positions[key] = result.Count;
                result.Add(message);
            }
        }

        return result;
    }

    /// <summary>
    /// Thesis §4.2.3 / §6.4: while it hears from a leader, a node refuses other candidates for an
    /// election timeout; a restarted node that had a term may have been in such a lease, so it keeps
    /// it for its first election timeout too. Leaders rely on this for their leadership lease.
    /// </summary>
    private bool InLease()
        => _config.CheckQuorum
            && ((LeaderId is not null && _electionElapsed < _config.ElectionTicksMin) || (_restartedWithTerm && _ticksAlive < _config.ElectionTicksMin));

    private void ResetTerm(long term)
    {
        if (Term != term)
        {
            Term = term;
            VotedFor = null;
        }

        LeaderId = null;
        LeaderCommitSeen = 0;
        LeaderConfigurationSeen = 0;
        _verifiedIndex = 0;
        _electionElapsed = 0;
        _heartbeatElapsed = 0;
        _randomizedElectionTimeout = _config.Random.Next(_config.ElectionTicksMin, _config.ElectionTicksMax + 1);
        _votes.Clear();
        _leadTransferee = null;
        _timeoutNowSent = false;
        _broadcastPending = false;
    }

    private void BecomeFollower(long term, string? leaderId)
    {
        ResetTerm(term);
        Role = RaftRole.Follower;
        LeaderId = leaderId;
    }

    private void TickElection()
    {
        _electionElapsed++;
        if (_electionElapsed >= _randomizedElectionTimeout)
        {
            _electionElapsed = 0;
            if (_selfVoter || VoterUntilRemovalCommits)
            {
                StartElection();
            }
            else
            {
                // Learners, joining and removed nodes never campaign, but they stop believing in a
                // leader they no longer hear from: its lease (§4.2.3) must not keep them from voting
                // for a candidate whose configuration already counts them.
                LeaderId = null;
            }
        }
    }

    /// <summary>
    /// Raft §5.2 vote rules: one vote per term, first come first served, and only for a candidate
    /// whose log is at least as up to date as ours (§5.4.1). Pre-votes apply the same log check for
    /// a future term without recording anything.
    /// </summary>
    private void HandleVoteRequest(RaftMessage message)
    {
        bool preVote = message.Type == MessageType.PreVote;
        var responseType = preVote ? MessageType.PreVoteResponse : MessageType.VoteResponse;
        bool canVote = VotedFor == message.From
            || (VotedFor is null && LeaderId is null)
            || (preVote && message.Term > Term);
        if (canVote && !Rejoining && _log.IsUpToDate(message.Index, message.LogTerm))
        {
            // Index carries our own term: a granted pre-vote's Term is the candidate's future term.
            Send(new RaftMessage { Type = responseType, From = Id, To = message.From, Term = message.Term, Index = Term });
            if (!preVote)
            {
                _electionElapsed = 0;
                VotedFor = message.From;
            }
        }
        else
        {
            Send(new RaftMessage { Type = responseType, From = Id, To = message.From, Term = Term, Index = Term, Reject = true });
        }
    }
}
