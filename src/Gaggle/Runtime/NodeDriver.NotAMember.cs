using Gaggle.Channels;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>A leader telling a node that talks to it that it is not a member (elastic mode and voter management).</summary>
internal sealed partial class NodeDriver
{
    /// <summary>
    /// A leader managing the voters tells a node outside its committed configuration that talks to it
    /// (a member removed while paused or cut off still campaigns or answers) that it is not a member,
    /// at most once per retry period per node, so that it asks to join again.
    /// </summary>
    private void MaybeTellNotAMember(string from, RaftMessage message)
    {
        // Only once the configuration without it has committed: a node told so may drop its log, and
        // its acknowledgements must no longer count anywhere by then. And never in answer to a message
        // of a newer term (a pre-vote names the term its sender would campaign in): this leader was
        // deposed while it was paused or cut off, and its configuration lacks every member added since;
        // told so, the sender (a voter, the live leader even) would start over.
        long senderTerm = message.Type == MessageType.PreVote ? message.Term - 1 : message.Term;
        if (_autopilot is null || _core.Role != RaftRole.Leader || senderTerm > _core.Term || _core.Configuration.Contains(from) || _core.ConfigurationIndex > _core.CommitIndex
            || (_toldNotAMemberAtTick.TryGetValue(from, out long at) && _tickCount - at < _settings.RetryTicks))
        {
            return;
        }

        if (_toldNotAMemberAtTick.Count > 4 * ClusterConfig.MaxMembers)
        {
            _toldNotAMemberAtTick.Clear();
        }

        _toldNotAMemberAtTick[from] = _tickCount;
        _outbox.Add(new Outgoing(from, new NotAMember(Math.Max(1, _core.ConfigurationIndex))));
    }
}
