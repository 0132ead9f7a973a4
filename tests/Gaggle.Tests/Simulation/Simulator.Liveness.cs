using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

internal sealed partial class Simulator
{
    /// <summary>Election timeouts the healed cluster gets to elect a leader and commit a fresh entry everywhere.</summary>
    public const int LivenessElectionTimeouts = 20;

    /// <summary>
    /// Deliveries allowed in one round before the run counts as a message storm. A follower hundreds of
    /// entries behind, fed one entry per message over a network that reorders everything, takes tens
    /// of thousands: each out-of-order arrival drops the leader's pipeline back to probing, and the
    /// windows it resends add to those still in flight (it does quiesce).
    /// </summary>
    private const int MaxDeliveriesPerRound = 200_000;

    /// <summary>
    /// Liveness: heal the network, restart crashed nodes, stop losing and duplicating messages, then
    /// run rounds (deliver everything in flight in random order, tick every node once; now and then a
    /// node snapshots) until a leader has committed a fresh proposal that every node has applied, and
    /// no node is still rejoining after lost storage: with the network healed and a leader in place,
    /// even an idle cluster must let a rejoining node prove it may vote again.
    /// </summary>
    private void Stabilize()
    {
        Trace($"stabilize: heal, restart every node, no more loss");
        _network.Heal();
        foreach (var node in _nodes)
        {
            if (!node.IsUp)
            {
                _step++;
                StartNode(node);
            }
        }

        int rounds = LivenessElectionTimeouts * _settings.ElectionTicksMax;
        (string Leader, long Term, LogEntry Entry)? proposal = null;
        for (int round = 0; round < rounds; round++)
        {
            DeliverAll();
            foreach (var node in _nodes.OrderBy(_ => _random.Next()).ToArray())
            {
                _step++;
                TickNode(node);
            }

            if (_settings.Weights.Snapshot > 0 && _random.Next(8) == 0)
            {
                _step++;
                SnapshotNode(_nodes[_random.Next(_nodes.Length)]);
            }

            if (proposal is { } pending && AppliedEverywhere(pending.Entry) && !_nodes.Any(n => n.Core!.Rejoining))
            {
                foreach (var node in _nodes)
                {
                    // Every node holds a fresh entry the leader replicated to all: whatever a node lost, the
                    // leader has stopped counting it (and AutomaticDetection may never have noticed).
                    node.Unhealed = false;
                }

                return;
            }

            var leader = CurrentLeader();
            if (leader is not null && (proposal is null || proposal.Value.Leader != leader.Id || proposal.Value.Term != leader.Core!.Term))
            {
                _step++;
                long index = ProposeOn(leader, 1);
                if (index > 0 && leader.Storage.TryGet(index, out var entry))
                {
                    proposal = (leader.Id, leader.Core!.Term, entry);
                }
            }
        }

        if (proposal is { } done && AppliedEverywhere(done.Entry))
        {
            string rejoining = string.Join(", ", _nodes.Where(n => n.Core!.Rejoining).Select(n => n.Id));
            throw new SafetyViolationException(
                $"liveness: {rejoining} still rejoining {rounds} ticks ({LivenessElectionTimeouts} election timeouts) after healing, "
                + $"though {SafetyChecker.Describe(done.Entry)}, proposed on {done.Leader} in term {done.Term}, was applied everywhere");
        }

        string wanted = proposal is { } last ? $"{SafetyChecker.Describe(last.Entry)}, proposed on {last.Leader} in term {last.Term}" : "a proposal (no leader was found)";
        throw new SafetyViolationException(
            $"liveness: {wanted} was not applied on every node within {rounds} ticks ({LivenessElectionTimeouts} election timeouts) after healing");
    }

    private void DeliverAll()
    {
        for (int delivered = 0; _network.Count > 0; delivered++)
        {
            if (delivered == MaxDeliveriesPerRound)
            {
                throw new SafetyViolationException($"liveness: message storm, {delivered} deliveries in one round without quiescing");
            }

            _step++;
            Deliver(_network.TakeAt(_random.Next(_network.Count)));
        }
    }

    /// <summary>The live leader of the highest term, if any.</summary>
    private SimulatedNode? CurrentLeader()
        => _nodes.Where(n => n.Core?.Role == RaftRole.Leader).MaxBy(n => n.Core!.Term);

    private bool AppliedEverywhere(LogEntry entry)
    {
        long index = entry.Index;
        foreach (var node in _nodes)
        {
            if (node.Applied.Count < index || !SafetyChecker.SameContent(node.Applied[(int)index - 1], entry))
            {
                return false;
            }
        }

        return true;
    }
}
