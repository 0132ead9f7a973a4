using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

internal sealed partial class Simulator
{
    private int _committedSeen;

    /// <summary>
    /// Plays the driver for one node after any input: take the Ready, persist, apply, send (the
    /// network only delivers later, so "persist before send" holds), then check the node.
    /// </summary>
    private void Process(SimulatedNode node)
    {
        var core = node.Core!;
        var ready = core.TakeReady();
        if (ready is not null)
        {
            if (ready.SoftState is { } soft)
            {
                Trace($"  {node.Id} is {soft.Role} in term {soft.Term}, leader {soft.LeaderId ?? "-"}");
            }

            node.Persist(ready, _checker);
            node.Apply(ready.CommittedEntries, _checker);
            foreach (var message in ready.Messages)
            {
                if (message.From != node.Id)
                {
                    throw new SafetyViolationException($"{node.Id} sent a message claiming to be from {message.From}: {message}");
                }

                _network.Send(node.Id, message);
            }
        }

        CheckNode(node);
    }

    /// <summary>The per-step checks of one node that has just changed (no other node did).</summary>
    private void CheckNode(SimulatedNode node)
    {
        var core = node.Core!;
        var log = core.Log;
        long storedLastTerm = node.Log.Count == 0 ? 0 : node.Log[^1].Term;
        if (core.LastIndex != node.Log.Count || log.LastTerm != storedLastTerm)
        {
            throw new SafetyViolationException(
                $"{node.Id}'s log ends at {core.LastIndex}/t{log.LastTerm} but its storage ends at {node.Log.Count}/t{storedLastTerm} after the Ready was persisted");
        }

        long commit = core.CommitIndex;
        if (commit < node.Commit)
        {
            throw new SafetyViolationException($"{node.Id}'s commit index went down from {node.Commit} to {commit}");
        }

        if (commit > node.Commit)
        {
            Trace($"  {node.Id} commits {node.Commit + 1}..{commit}");
            _checker.ObserveCommitted(node.Id, core.Term, node.Commit + 1, commit, log.Term);
            node.Commit = commit;
        }

        if (node.Applied.Count != commit)
        {
            throw new SafetyViolationException($"{node.Id} has applied {node.Applied.Count} entries but its commit index is {commit} after the Ready");
        }

        if (core.Role == RaftRole.Leader)
        {
            _checker.ObserveLeader(node.Id, core.Term);
            CheckLeaderCompleteness(node);
        }

        if (_checker.CommittedCount > _committedSeen)
        {
            // Newly committed entries must already be in the logs of every leader of a later term.
            _committedSeen = _checker.CommittedCount;
            foreach (var other in _nodes)
            {
                if (other != node && other.Core?.Role == RaftRole.Leader)
                {
                    CheckLeaderCompleteness(other);
                }
            }
        }
    }

    private void CheckLeaderCompleteness(SimulatedNode leader)
    {
        var core = leader.Core!;
        if (leader.LeaderTerm != core.Term)
        {
            leader.LeaderTerm = core.Term;
            leader.LeaderCheckedUpTo = 0;
        }

        leader.LeaderCheckedUpTo = _checker.CheckLeaderCompleteness(leader.Id, core.Term, leader.LeaderCheckedUpTo, core.Log.Term);
    }

    /// <summary>
    /// Log Matching checked directly on the stored logs (the per-step check is inductive): for
    /// every pair, the logs agree on everything up to the last index where their terms agree.
    /// </summary>
    private void CheckAllLogsMatch()
    {
        for (int a = 0; a < _nodes.Length; a++)
        {
            for (int b = a + 1; b < _nodes.Length; b++)
            {
                var left = _nodes[a].Log;
                var right = _nodes[b].Log;
                int common = Math.Min(left.Count, right.Count);
                int last = common - 1;
                while (last >= 0 && left[last].Term != right[last].Term)
                {
                    last--;
                }

                for (int i = 0; i <= last; i++)
                {
                    if (!SafetyChecker.SameContent(left[i], right[i]))
                    {
                        throw new SafetyViolationException(
                            $"log matching: {_nodes[a].Id} and {_nodes[b].Id} share entry {last + 1}/t{left[last].Term} but differ at index {i + 1}: "
                            + $"{SafetyChecker.Describe(left[i])} vs {SafetyChecker.Describe(right[i])}");
                    }
                }
            }
        }
    }
}
