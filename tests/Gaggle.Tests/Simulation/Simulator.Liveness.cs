using System.Text;
using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

internal sealed partial class Simulator
{
    /// <summary>Steps a stabilization may take before the run counts as a message storm.</summary>
    private const int MaxStabilizationSteps = 3_000_000;

    /// <summary>
    /// Liveness: heal the network, restart crashed nodes, stop losing and duplicating messages and stop
    /// new lock work; then deliver everything in flight (in random order) and let time run, until a
    /// leader has committed a fresh append that every node has applied, no node is still rejoining
    /// after lost storage, every lock operation has ended (granted, denied, given up, released), every
    /// lease has expired and the tables are empty, no driver still watches a request or a hold (no
    /// leak), no append is pending, and every node has applied the leader's whole log,
    /// within a bound of simulated time. In a membership run the leader must be a voter, the nodes
    /// are the members of its configuration (the others are stopped: see <see cref="RetireNonMembers"/>)
    /// and every one of them holds that configuration. Then no acknowledged append may be missing from any node.
    /// </summary>
    private void Stabilize()
    {
        Trace($"stabilize: heal, restart every node, no more loss, no new lock work");
        _network.Heal();
        _hubHealsAtUs = long.MaxValue;
        ResumePausedNodes();
        foreach (var node in _nodes.Where(n => !n.IsUp))
        {
            Step++;
            StartNode(node);
        }

        if (_shape.Elastic)
        {
            HealInstances();
        }

        _clientsPaused = true;
        _pendingChange = null;
        // The autopilot first waits out a new leader's member timeout, then removes the stopped members one by one.
        long boundMs = (100 * Settings.LeaseMs) + (200L * Settings.ElectionTicksMax * SimulationSettings.TickMs) + (20 * (Settings.Autopilot?.MemberTimeoutUs ?? 0) / 1000);
        long limit = NowUs + (boundMs * 1000);
        long steps = 0;
        (string Leader, long Term, long Generation, string Payload)? proposal = null;
        long operatorChecksAtUs = NowUs + (_shape.Elastic ? Settings.Elastic!.MemberTimeoutUs : 0);
        while (!Settled(proposal?.Payload))
        {
            if (NowUs > limit || ++steps > MaxStabilizationSteps)
            {
                var busy = _nodes.SelectMany(n => n.Clients).Where(c => c.IsBusy).Select(c => c.ToString()).ToList();
                string rejoining = string.Join(", ", _nodes.Where(n => n.Core?.Rejoining == true).Select(n => n.Id));
                var current = CurrentLeader();
                throw new SafetyViolationException(
                    $"liveness: no quiet state within {boundMs} ms ({steps} steps) after healing: fresh append {proposal?.Payload ?? "(no leader found)"}; "
                    + $"rejoining: {(rejoining.Length == 0 ? "none" : rejoining)}; locks live in the history: {Checker.LiveLocks(current?.Generation ?? 0)}; "
                    + $"busy clients: {(busy.Count == 0 ? "none" : string.Join(", ", busy))}"
                    + (_shape.Elastic ? $"; generations {string.Join(", ", _nodes.Select(n => $"{n.Id} g{n.Generation}"))}, store {_store.Value}" : "")
                    + (_shape.Membership ? $"; leader {current?.Id ?? "-"} configuration {current?.Core!.Configuration.ToString() ?? "-"} at {current?.Core!.ConfigurationIndex}, "
                        + $"nodes in play {string.Join(", ", _nodes.Select(n => $"{n.Id}{(n.IsUp ? "" : " down")}"))}" : ""));
            }

            CalmStep();
            if (_shape.Elastic && NowUs >= operatorChecksAtUs)
            {
                operatorChecksAtUs = NowUs + Settings.Elastic!.MemberTimeoutUs;
                OperatorStepsIn();
            }

            RetireNonMembers(CurrentLeader());
            var leader = CurrentLeader();
            if (leader is not null && (proposal is null || proposal.Value.Leader != leader.Id || proposal.Value.Term != leader.Core!.Term || proposal.Value.Generation != leader.Generation))
            {
                string payload = $"s{_seed}-p{++_proposals}";
                leader.AppendData(Encoding.UTF8.GetBytes(payload), long.MaxValue, index => Appends.ObserveAcknowledged(leader.Id, leader.Generation, payload, index), null);
                Trace($"append '{payload}' on the leader {leader.Id} (term {leader.Core!.Term})");
                Process(leader);
                proposal = (leader.Id, leader.Core!.Term, leader.Generation, payload);
            }
        }

        foreach (var node in _nodes)
        {
            // Every node holds a fresh entry the leader replicated to all: whatever a node lost, the
            // leader has stopped counting it (and AutomaticDetection may never have noticed).
            node.Unhealed = false;
            Appends.CheckHoldsAll(node.Id, node.Generation, node.History!);
        }

        _clientsPaused = false;
        _storeHealed = false;
    }

    private bool Settled(string? payload)
    {
        var leader = CurrentLeader();
        if (leader is null || payload is null || Checker.LiveLocks(leader.Generation) > 0 || !GenerationsSettled(leader))
        {
            return false;
        }

        long last = leader.Core!.LastIndex;
        var config = leader.Core.Configuration;
        if (_shape.Membership && (!leader.Core.IsVoter || !_nodes.TrueForAll(n => config.Contains(n.Id) && n.Core?.Configuration.Equals(config) == true
            && n.Core.ConfigurationIndex == leader.Core.ConfigurationIndex) || config.Members.Any(m => !_byId.TryGetValue(m, out var member) || !_nodes.Contains(member))
            || !VotersBalanced(config)))
        {
            // Only the members must converge (on the configuration too); every other node is stopped by then.
            // With the autopilot every live node must be a member (joining nodes added), no stopped node
            // a member (removed), and the voters balanced.
            return false;
        }

        return leader.Core.CommitIndex == last
            && _nodes.All(n => n.IsUp && !n.Core!.Rejoining && n.Core.LeaderId == leader.Id && n.Applied == last && n.History!.Contains(payload)
                && n.Driver!.Machines.Locks.Table.Count == 0 && n.Driver.PendingAppends == 0 && n.Clients.TrueForAll(c => !c.IsBusy)
                && n.Driver.Machines.Locks.WatchedRequests == 0 && n.Driver.Machines.Locks.WatchedHolds == 0);
    }

    /// <summary>The live leader of the highest term (of the highest generation, in an elastic run), if any.</summary>
    private SimulatedNode? CurrentLeader()
        => _nodes.Where(n => n.Core?.Role == RaftRole.Leader).MaxBy(n => (n.Generation, n.Core!.Term));

    /// <summary>One step of a calm network: a delivery while anything is in flight (a healed network delivers within a tick, in any order, so latency no longer grows with the backlog), else a tick; then the lease and departure checks.</summary>
    private void CalmStep()
    {
        Step++;
        if (_network.Count > 0)
        {
            DeliverRandom();
        }
        else
        {
            TickNext();
        }

        CheckLeases();
        ProgressDepartures();
    }
}
