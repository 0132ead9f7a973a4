namespace Gaggle.Raft;

/// <summary>
/// Rejoining after lost storage. A node that lost its hard state and log (a deleted data directory,
/// in-memory storage across a process restart) might vote twice in a term, or vote for a candidate
/// missing entries it had acknowledged, breaking Election Safety or Leader Completeness. A rejoining
/// node therefore grants no vote, never campaigns (it only pre-votes, to learn the others' terms) and
/// ignores TimeoutNow until
/// <list type="number">
/// <item>it has heard from at least N - majority + 1 other members (enough that any majority that
/// could have counted its lost vote or entries overlaps them), and</item>
/// <item>either all of them are at term 0 (then no leader can ever have existed), or it has
/// received, from a leader whose term is at least the highest term it heard, every entry that
/// leader had committed.</item>
/// </list>
/// A leader at such a term was elected without this node's vote, so its log holds every committed
/// entry, and this node's possibly lost votes are all in older terms. A node enters this mode when
/// started with <see cref="RaftConfig.StartRejoining"/> (the operator knows the storage was lost), or
/// by itself when a leader's heartbeat shows it acknowledged entries it no longer has. The flag is
/// persisted in the hard state, so a crash before it clears keeps the node rejoining. In a 3-node
/// cluster the rejoining node needs both other nodes up to vote again.
/// </summary>
internal sealed partial class RaftCore
{
    private readonly Dictionary<string, long> _observedTerms = new(StringComparer.Ordinal);
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

    /// <summary>Asks the members it has not heard from yet for their terms, every other heartbeat period.</summary>
    private void TickRejoining()
    {
        if (++_rejoinTicks % (2 * _config.HeartbeatTicks) != 1)
        {
            return;
        }

        if (_members.IsDiscovery && !_members.Complete)
        {
            Send(new RaftMessage { Type = MessageType.TermQuery, From = Id, To = null, Term = Term });
            return;
        }

        foreach (var peer in _members.Peers)
        {
            if (!_observedTerms.ContainsKey(peer))
            {
                Send(new RaftMessage { Type = MessageType.TermQuery, From = Id, To = peer, Term = Term });
            }
        }
    }

    /// <summary>Records a lower bound of the sender's current term.</summary>
    private void ObserveTerm(RaftMessage message)
    {
        long term = message.Type switch
        {
            MessageType.PreVote => message.Term - 1,
            MessageType.PreVoteResponse => message.Index,
            _ => message.Term,
        };
        _observedTerms[message.From] = Math.Max(_observedTerms.GetValueOrDefault(message.From), Math.Max(0, term));
        MaybeFinishRejoining();
    }

    private void MaybeFinishRejoining()
    {
        if (!Rejoining)
        {
            return;
        }

        int needed = Math.Min(_members.Size - 1, _members.Size - Quorum.Majority(_members.Size) + 1);
        if (_observedTerms.Count < needed)
        {
            return;
        }

        long highest = _observedTerms.Count == 0 ? 0 : _observedTerms.Values.Max();
        if (highest == 0 || _caughtUpTerm >= highest)
        {
            Rejoining = false;
        }
    }
}
