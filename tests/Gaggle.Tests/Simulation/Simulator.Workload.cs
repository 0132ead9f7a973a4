using System.Text;
using Gaggle.Locks;
using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>What the applications and operators do in a chaos phase: appends, lock use and reads, leadership transfers.</summary>
internal sealed partial class Simulator
{
    /// <summary>An application appends fresh payloads on <paramref name="node"/> (any role: a follower forwards), some with a timeout.</summary>
    private void AppendOn(SimulatedNode node, int count)
    {
        for (int i = 0; i < count; i++)
        {
            long deadline = _random.Next(3) == 0 ? node.LocalUs + (_random.Next(1, 4) * Settings.ElectionTicksMax * SimulationSettings.TickMs * 1000L) : long.MaxValue;
            AppendOne(node, deadline, null);
        }

        Trace($"append {count} on {node.Id} ({node.Core!.Role}, term {node.Core.Term})");
        Process(node);
    }

    /// <summary>One fresh payload appended on <paramref name="node"/>, recorded in the history; <paramref name="onAcknowledged"/> runs when its caller is told it committed.</summary>
    private void AppendOne(SimulatedNode node, long deadline, Action? onAcknowledged)
    {
        string payload = $"s{_seed}-p{++_proposals}";
        var operation = History.Invoke(new AppendOperation { Client = $"{node.Id}.{node.Incarnation}.app", Node = node.Id, Payload = payload });
        node.AppendData(Encoding.UTF8.GetBytes(payload), deadline, index =>
        {
            Trace($"  {node.Id} acknowledged '{payload}' at {index}");
            Appends.ObserveAcknowledged(node.Id, node.Generation, payload, index);
            operation.Index = index;
            operation.Covered = node.CoveredBySnapshot(index);
            History.Respond(operation, node.Generation);
            onAcknowledged?.Invoke();
        }, null);
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

        if (_lockReads && _random.Next(4) == 0)
        {
            InspectOn(node);
        }
        else
        {
            node.Clients[_random.Next(node.Clients.Count)].Act(_random);
        }

        Process(node);
    }

    /// <summary>
    /// GaggleLocks.InspectAsync on <paramref name="node"/>, with a timeout: the read is an entry of the
    /// log, answered with the Inspected event of its own request once its commit completes; any other
    /// answer (a snapshot covered it) or a timeout is an error the caller sees, and no result.
    /// </summary>
    private void InspectOn(SimulatedNode node)
    {
        string name = SimulatedLockClient.PickLock(_random, Settings.SemaphoreSlots, Settings.ReaderWriterLocks).Name;
        long sequence = node.Sequences.Next();
        long deadline = node.LocalUs + node.SettleUs;
        var operation = History.Invoke(new ReadOperation { Client = $"{node.Id}.{node.Incarnation}.reader", Node = node.Id, Lock = name });
        Trace($"{node.Id} inspects {name} seq {sequence}");
        node.AppendLockRequest(sequence, new LockCommand(LockCommandType.Inspect, name), lockEvent =>
        {
            if (lockEvent.Type == LockEventType.Inspected)
            {
                operation.Info = lockEvent.Info;
            }
        }, deadline, _ =>
        {
            node.UnwatchLockRequest(sequence);
            if (operation.Info is not null)
            {
                History.Respond(operation, node.Generation);
            }
        }, () => node.UnwatchLockRequest(sequence));
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
