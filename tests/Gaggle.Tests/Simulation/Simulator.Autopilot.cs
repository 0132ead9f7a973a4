using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Autopilot runs (<see cref="ClusterShape.Autopilot"/>): every node runs the leader's voter management
/// (<see cref="Runtime.Autopilot"/>) and nobody asks for a change. Amid the loss, partitions and
/// crash-restarts of the chaos phases, new nodes start (fresh ids, empty storage, joining) and announce
/// themselves, nodes stop for good and nodes pause for longer than the member timeout, at most
/// <see cref="ClusterShape.MaxMembers"/> nodes in play at once. A stabilization resumes the paused
/// nodes and must end with every live node a member, no stopped node a member (the autopilot removed
/// them once the member timeout passed) and the voters the largest odd number not above the target
/// and the members.
/// </summary>
internal sealed partial class Simulator
{
    /// <summary>A new node, with empty storage, starts and announces itself until the cluster adds it.</summary>
    private void StartJoiningNode()
    {
        if (_shape.Elastic)
        {
            StartInstances();
            return;
        }

        if (_nodes.Count >= ClusterShape.MaxMembers || _spareIdsUsed == SpareIds)
        {
            return;
        }

        var node = new SimulatedNode(this, $"n{_ids.Length + ++_spareIdsUsed}", NodeClock.Draw(_random));
        _byId[node.Id] = node;
        _nodes.Add(node);
        _onNetwork.Add(node.Id);
        _membershipStats.Joined++;
        StartNode(node);
    }

    /// <summary>A node stops for good (its machine is gone): the autopilot must remove it once the member timeout passes.</summary>
    private void StopForGood()
    {
        var candidates = _nodes.Where(MayStop).ToArray();
        if (candidates.Length == 0)
        {
            return;
        }

        var node = candidates[_random.Next(candidates.Length)];
        _membershipStats.Stopped++;
        if (_shape.Elastic && _random.Next(2) == 0)
        {
            BeginLeave(node);
            return;
        }

        Trace($"stop {node.Id} for good");
        Retire(node);
    }

    /// <summary>
    /// Whether <paramref name="node"/> may stop for good: the voters left in play must still be a
    /// majority of every configuration a leader may use (the committed one and each node's latest, in
    /// its log even while it is down). The autopilot removes a dead voter only while the live voters are
    /// a majority, and no cluster can change its configuration without a quorum: stopping more would
    /// halt it for good, as it would any Raft cluster that lost a majority of its voters.
    /// </summary>
    /// <remarks>
    /// A voter stopped just after it was heard from still counts as alive to the leader for a while,
    /// and a single-server change that leaves fewer voters (a demotion towards the target, or the
    /// removal of a voter that is only cut off or paused) needs a majority of the voters left. Stopping
    /// a voter in that window would leave a configuration that can never commit: three voters shrunk to
    /// two of which the one stopped is needed, or a removed voter that comes back too late. That is two
    /// failures against a configuration that tolerates one, not a fault of the autopilot, so a voter
    /// stops for good then only if one more voter could go and the rest still make a majority: where
    /// the voters exceed the target (a demotion is due), or while the network is split or another voter
    /// is down or paused.
    /// </remarks>
    private bool MayStop(SimulatedNode node)
        => _nodes.Where(n => n.Generation == node.Generation).Select(n => n.Core?.Configuration ?? n.LatestConfig).OfType<ClusterConfig>()
            .Append(AppliedConfigOf(node.Generation)).All(config =>
        {
            if (!config.IsVoter(node.Id))
            {
                return true;
            }

            // A voter reset into a newer generation (elastic runs) is no voter of this one any more.
            var others = config.Voters.Where(v => v != node.Id && _byId.TryGetValue(v, out var voter) && _nodes.Contains(voter) && voter.Generation == node.Generation)
                .Select(v => _byId[v]).ToArray();
            bool shrinking = config.Voters.Count > Settings.Autopilot!.TargetVoters
                || _network.IsPartitioned || others.Any(v => !v.IsUp || v.IsPausedAt(NowUs));
            return others.Length >= Quorum.Majority(config.Voters.Count) && (!shrinking || others.Length - 1 >= Quorum.Majority(config.Voters.Count - 1));
        });

    /// <summary>
    /// A live node pauses (a long garbage collection, a stopped container) for longer than the member
    /// timeout on any clock: it neither ticks nor receives until then, and what is sent to it is lost.
    /// </summary>
    private void PauseNode()
    {
        var candidates = _nodes.Where(n => n.IsUp && !n.IsPausedAt(NowUs)).ToArray();
        if (candidates.Length == 0 || Settings.Autopilot is not { } autopilot)
        {
            return;
        }

        var node = candidates[_random.Next(candidates.Length)];
        long pauseUs = autopilot.MemberTimeoutUs * _random.Next(11, 21) / 10;
        if (_shape.Elastic && !_shape.UnheardGenerations && !MayPausePastFoundingWait(node))
        {
            if (!MayFallSilent(node))
            {
                return;
            }

            pauseUs = ShortSilenceUs();
            node.SilenceEndsAtUs = NowUs + pauseUs;
        }

        node.PausedUntilUs = NowUs + pauseUs;
        node.NextTickAtUs = Math.Max(node.NextTickAtUs, node.PausedUntilUs);
        _membershipStats.Paused++;
        Trace($"pause {node.Id} ({node.Core!.Role}) for {pauseUs} us");
    }

    /// <summary>Stabilization: every paused node resumes now.</summary>
    private void ResumePausedNodes()
    {
        foreach (var node in _nodes.Where(n => n.IsPausedAt(NowUs)))
        {
            node.PausedUntilUs = 0;
            node.NextTickAtUs = NowUs + node.Clock.RealSpan(SimulationSettings.TickMs * 1000L);
            Trace($"resume {node.Id}");
        }
    }

    /// <summary>
    /// In an autopilot run the configuration has settled when its voters are the largest odd number
    /// not above the target and the members. Every member is live then (the caller requires every
    /// member in play and up, every node in play a member, the paused ones resumed), so the members are
    /// the live members.
    /// </summary>
    private bool VotersBalanced(ClusterConfig config)
        => Settings.Autopilot is not { } autopilot || config.Voters.Count == WantedVoters(autopilot.TargetVoters, config.Members.Count());

    private static int WantedVoters(int target, int members)
    {
        int n = Math.Min(target, members);
        return n < 1 ? 1 : n % 2 == 1 ? n : n - 1;
    }

    /// <summary>The changes from one applied configuration to the next: members added and removed, learners promoted, voters demoted.</summary>
    private void CountChanges(ClusterConfig before, ClusterConfig after)
    {
        _membershipStats.MembersAdded += after.Members.Count(m => !before.Contains(m));
        _membershipStats.MembersRemoved += before.Members.Count(m => !after.Contains(m));
        _membershipStats.Promoted += after.Voters.Count(v => before.IsLearner(v));
        _membershipStats.Demoted += after.Learners.Count(l => before.IsVoter(l));
    }
}
