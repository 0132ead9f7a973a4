using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Elastic runs: an instance whose host stops leaves gracefully, as <see cref="GaggleNode.LeaveAsync"/>
/// does (its driver marked departing, a leave request to whoever leads, asked again of each new
/// leader), and its process ends once the leader's committed configuration no longer lists it, or when
/// the host's shutdown timeout runs out first (two member timeouts here), whichever comes first.
/// Several may leave at once; the autopilot replaces a leaving voter before removing it.
/// </summary>
internal sealed partial class Simulator
{
    private readonly List<Departure> _departures = [];

    /// <summary>Starts the graceful leave of <paramref name="node"/> (the last member just stops).</summary>
    private void BeginLeave(SimulatedNode node)
    {
        var config = node.Core!.Configuration;
        if (!config.Contains(node.Id) || config.Members.Count() == 1 || _departures.Exists(d => d.Node == node))
        {
            Trace($"stop {node.Id} for good");
            Retire(node);
            return;
        }

        _elasticStats.Leaves++;
        node.Driver!.Departing = true;
        _departures.Add(new Departure(node, NowUs + (2 * Settings.Elastic!.MemberTimeoutUs)));
        Trace($"{node.Id} leaves (its host stops)");
    }

    /// <summary>Each step: asks the current leader for every leave under way, and ends the processes that are done or out of time.</summary>
    private void ProgressDepartures()
    {
        for (int i = _departures.Count - 1; i >= 0; i--)
        {
            var departure = _departures[i];
            var node = departure.Node;
            if (!_nodes.Contains(node) || !node.IsUp)
            {
                _departures.RemoveAt(i);
                continue;
            }

            var leader = _nodes.Where(n => n.Generation == node.Generation && n.Core?.Role == Gaggle.Raft.RaftRole.Leader).MaxBy(n => n.Core!.Term);
            bool removed = leader is not null && leader.Core!.ConfigurationIndex <= leader.Core.CommitIndex && !leader.Core.Configuration.Contains(node.Id);
            if (removed || NowUs >= departure.DeadlineUs)
            {
                _elasticStats.LeavesDone += removed ? 1 : 0;
                Trace($"{node.Id} {(removed ? "left" : "ran out of shutdown time")}: its process ends");
                _departures.RemoveAt(i);
                Retire(node);
                continue;
            }

            if (leader is not null && (departure.AskedLeader != leader.Id || departure.AskedTerm != leader.Core!.Term))
            {
                _departures[i] = departure with { AskedLeader = leader.Id, AskedTerm = leader.Core!.Term };
                leader.Driver!.ChangeMembership(new MembershipRequest
                {
                    Kind = MembershipRequestKind.Leave, NodeId = node.Id, ExpectedIndex = -1, TimeoutUs = Math.Max(1, departure.DeadlineUs - NowUs),
                });
                Process(leader);
            }
        }
    }

    /// <summary>A graceful leave under way: its node, when its host gives up waiting, and the leader last asked.</summary>
    private sealed record Departure(SimulatedNode Node, long DeadlineUs, string? AskedLeader = null, long AskedTerm = 0);
}
