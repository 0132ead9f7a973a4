namespace Gaggle.Raft;

/// <summary>
/// Followers and learners that know an entry is committed before the leader's notice arrives. The
/// leader's commit rule (Raft §5.4.2) needs a majority of its configuration's voters to have stored an
/// entry of its current term; a follower can see that too. The leader has stored every entry it sends
/// (the Ready contract: persist, then send), so every entry an AppendEntries of this term verified
/// here is on the leader; this node has stored what it holds (it applies only after persisting); and a
/// voter's acknowledgement of the current term says its log matches the leader's up to the index it
/// names (it too persisted first). With three voters the leader and this node are a majority: the
/// entry is committed the moment it is stored, one commit notice sooner. With learners or more than
/// three voters, voters may broadcast their acknowledgements so that the others can count them too
/// (<see cref="RaftConfig.BroadcastAcknowledgements"/>, off for now).
/// </summary>
/// <remarks>
/// Counted only against the leader's own configuration: each AppendEntries names the index of the
/// leader's latest configuration, and this node counts only while its own latest configuration sits at
/// that index (the entry there is the leader's: everything up to the verified index was just matched,
/// and anything after an entry of the leader's term is of that term, hence the leader's too). Nothing
/// counts that this node has not verified against this leader (a log that may diverge, a lost tail),
/// nor an acknowledgement of another term; a node that may not acknowledge (rejoining, lost data, not a
/// voter by its own rules) never counts itself, as the leader would not count it.
/// </remarks>
internal sealed partial class RaftCore
{
    /// <summary>Voters' acknowledgements heard in <see cref="_peerAcknowledgementsTerm"/>: the highest index each matched with the leader.</summary>
    private readonly Dictionary<string, long> _peerAcknowledgements = new(StringComparer.Ordinal);

    private long _peerAcknowledgementsTerm;

    /// <summary>The term of the latest AppendEntries accepted and the index of the leader's configuration it named.</summary>
    private (long Term, long Index) _leaderConfiguration = (-1, -1);

    /// <summary>
    /// Whether the configuration in force here is not the one the leader of this term named in its
    /// latest AppendEntries accepted here: this node's log does not reach it yet, or still holds a
    /// deposed leader's later configuration entry that this leader will overwrite.
    /// </summary>
    public bool ConfigurationUnlikeLeaders => _leaderConfiguration.Term == Term && _leaderConfiguration.Index != ConfigurationIndex;

    /// <summary>
    /// Whether this node's acknowledgements go to every node rather than to the leader alone: it is a
    /// voter, and someone else can use them (learners, or more than three voters, where the leader and
    /// one follower are no majority).
    /// </summary>
    private bool BroadcastsAcknowledgements
        => _config.FollowerCommit && _config.BroadcastAcknowledgements && _selfVoter && !Discovering && (Configuration.Learners.Count > 0 || Configuration.Voters.Count > 3);

    /// <summary>Another voter's acknowledgement of the current term (broadcast): count it.</summary>
    private void OnPeerAcknowledgement(RaftMessage message)
    {
        if (!_config.FollowerCommit || message.From == LeaderId || !Configuration.IsVoter(message.From))
        {
            return;
        }

        if (_peerAcknowledgementsTerm != Term)
        {
            // Only memory: acknowledgements of another term never count (see peersCount below).
            _peerAcknowledgements.Clear();
            _peerAcknowledgementsTerm = Term;
        }

        _peerAcknowledgements[message.From] = Math.Max(_peerAcknowledgements.GetValueOrDefault(message.From), message.Index);
        CommitFromAcknowledgements();
    }

    /// <summary>Commits the highest entry of the current term that a majority of the leader's voters has stored, as far as this node knows.</summary>
    private void CommitFromAcknowledgements()
    {
        if (!_config.FollowerCommit || LeaderId is null || _verifiedIndex <= _log.Committed || Discovering || _lostData
            || _leaderConfiguration != (Term, ConfigurationIndex) || !Configuration.IsVoter(LeaderId))
        {
            return;
        }

        bool selfCounts = _selfVoter && Configuration.IsVoter(Id) && MayAcknowledge();
        bool peersCount = _peerAcknowledgementsTerm == Term;
        var voters = Configuration.Voters;
        Span<long> matches = voters.Count <= 16 ? stackalloc long[voters.Count] : new long[voters.Count];
        for (int i = 0; i < voters.Count; i++)
        {
            string voter = voters[i];
            matches[i] = voter == LeaderId || (voter == Id && selfCounts) ? _verifiedIndex
                // Capped at what this node verified; the current-term check below would refuse more anyway
                // (an entry of this term past the verified index is not in this node's log).
                : peersCount && voter != Id && _peerAcknowledgements.TryGetValue(voter, out long matched) ? Math.Min(matched, _verifiedIndex)
                : 0;
        }

        long index = Quorum.CommittedIndex(matches, voters.Count);
        if (index > _log.Committed && _log.Term(index) == Term)
        {
            _log.CommitTo(index);
        }
    }

    /// <summary>
    /// The leader's side: whether the voter that acknowledged <paramref name="match"/> knew on storing it
    /// that it committed (three voters or fewer, both voters, this configuration within what it stored,
    /// an entry of this term, committed here now), so it is owed no commit notice for it: two PUBLISHes
    /// fewer per entry. Only when its acknowledgement says so (its commit index, <paramref name="followerCommit"/>,
    /// reaches what it acknowledged): a node that lost data since it started does not count itself
    /// (it trusts only commits it verified) and is owed its notices as before.
    /// </summary>
    private bool CommittedOnStoring(string follower, long match, long followerCommit)
        => _config.FollowerCommit && !Discovering && followerCommit >= match && Quorum.Majority(Configuration.Voters.Count) <= 2 && Configuration.IsVoter(follower)
            && Configuration.IsVoter(Id) && ConfigurationIndex <= match && match <= _log.Committed && _log.Term(match) == Term;
}
