using Gaggle.Raft;

namespace Gaggle.Leadership;

/// <summary>
/// The leader's side of the leadership lease (see <see cref="GaggleLeadership"/>): when each heartbeat
/// round left, and whether the round a majority acknowledged last left recently enough to trust.
/// </summary>
internal sealed class LeadershipLease(long leaseUs)
{
    private const int RoundsKept = 64;

    private readonly Dictionary<long, long> _roundSentAtUs = [];

    /// <summary>Remembers when each heartbeat round left (called before the messages are sent, so it errs early).</summary>
    public void RecordRounds(IReadOnlyList<RaftMessage> messages, long nowUs)
    {
        foreach (var message in messages)
        {
            if (message.Type == MessageType.Heartbeat && _roundSentAtUs.TryAdd(message.Index, nowUs))
            {
                _roundSentAtUs.Remove(message.Index - RoundsKept);
            }
        }
    }

    /// <summary>Whether <paramref name="core"/>'s leadership can be trusted at <paramref name="nowUs"/>.</summary>
    public bool IsTrusted(RaftCore core, long nowUs)
    {
        bool trusted = false;
        if (core.Role == RaftRole.Leader && !core.IsTransferringLeadership)
        {
            if (core.IsSoleVoter)
            {
                trusted = true;
            }
            else if (_roundSentAtUs.TryGetValue(core.QuorumAckedHeartbeatRound, out long sentAt))
            {
                trusted = nowUs - sentAt < leaseUs;
            }
        }

        if (!trusted && core.Role != RaftRole.Leader)
        {
            _roundSentAtUs.Clear();
        }

        return trusted;
    }
}
