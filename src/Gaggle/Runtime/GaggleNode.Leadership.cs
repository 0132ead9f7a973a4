using Gaggle.Leadership;
using Gaggle.Raft;

namespace Gaggle;

/// <summary>The leadership lease: heartbeat rounds acknowledged by a majority, timed with this node's clock.</summary>
public sealed partial class GaggleNode
{
    private readonly Dictionary<long, long> _roundSentAt = [];
    private GaggleLeadership? _leadership;

    /// <summary>This node's trusted leadership: a lease-backed <see cref="GaggleLeadership.IsLeader"/> and a token cancelled when it ends.</summary>
    public GaggleLeadership Leadership => _leadership!;

    /// <summary>Remembers when each heartbeat round left, to date the lease a majority's answers give.</summary>
    private void RecordHeartbeatRounds(IReadOnlyList<RaftMessage> messages)
    {
        foreach (var message in messages)
        {
            if (message.Type == MessageType.Heartbeat && !_roundSentAt.ContainsKey(message.Index))
            {
                _roundSentAt[message.Index] = _time.GetTimestamp();
                _roundSentAt.Remove(message.Index - 64);
            }
        }
    }

    private void UpdateLeadership(RaftCore core)
    {
        bool trusted = false;
        if (core.Role == RaftRole.Leader && !core.IsTransferringLeadership)
        {
            if (core.Members.Size == 1)
            {
                trusted = true;
            }
            else if (_roundSentAt.TryGetValue(core.QuorumAckedHeartbeatRound, out long sentAt))
            {
                var lease = _options.ElectionTimeoutMin * 0.9;
                trusted = _time.GetElapsedTime(sentAt) < lease;
            }
        }

        _leadership?.Update(trusted);
        if (!trusted && core.Role != RaftRole.Leader)
        {
            _roundSentAt.Clear();
        }
    }
}
