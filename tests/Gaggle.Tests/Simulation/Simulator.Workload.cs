using System.Text;
using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>What the applications and operators do in a chaos phase: appends, lock use, leadership transfers.</summary>
internal sealed partial class Simulator
{
    /// <summary>An application appends fresh payloads on <paramref name="node"/> (any role: a follower forwards), some with a timeout.</summary>
    private void AppendOn(SimulatedNode node, int count)
    {
        for (int i = 0; i < count; i++)
        {
            string payload = $"s{_seed}-p{++_proposals}";
            long deadline = _random.Next(3) == 0 ? node.LocalUs + (_random.Next(1, 4) * Settings.ElectionTicksMax * SimulationSettings.TickMs * 1000L) : long.MaxValue;
            node.AppendData(Encoding.UTF8.GetBytes(payload), deadline, index =>
            {
                Trace($"  {node.Id} acknowledged '{payload}' at {index}");
                Appends.ObserveAcknowledged(node.Id, node.Generation, payload, index);
            }, null);
        }

        Trace($"append {count} on {node.Id} ({node.Core!.Role}, term {node.Core.Term})");
        Process(node);
    }

    private void LockClientActs()
    {
        if (_clientsPaused || _clientsQuiet)
        {
            return;
        }

        var node = PickUpNode();
        if (node is null || node.Clients.Count == 0)
        {
            return;
        }

        node.Clients[_random.Next(node.Clients.Count)].Act(_random);
        Process(node);
    }

    private void TransferLeadership()
    {
        var leader = _nodes.FirstOrDefault(n => n.Core is { Role: RaftRole.Leader } && !n.IsPausedAt(NowUs));
        if (leader is null)
        {
            return;
        }

        var others = (_shape.Membership ? leader.Core!.Configuration.Voters : _ids).Where(id => id != leader.Id).ToArray();
        if (others.Length == 0)
        {
            return;
        }

        string target = others[_random.Next(others.Length)];
        bool accepted = leader.Driver!.TransferLeadership(target);
        Trace($"transfer leadership {leader.Id} -> {target}: {accepted}");
        Process(leader);
    }
}
