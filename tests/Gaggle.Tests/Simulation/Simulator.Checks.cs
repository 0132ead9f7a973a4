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

            if (ready.Snapshot is { } snapshot)
            {
                Trace($"  {node.Id} installs snapshot {snapshot.Index}/t{snapshot.Term} ({snapshot.Data.Length} bytes)");
                _storageStats = _storageStats with { Installs = _storageStats.Installs + 1 };
            }

            node.Persist(ready, _checker);
            if (node.Storage.Buffered && _random.Next(100) < _settings.FlushPercent)
            {
                node.Storage.Flush();
            }

            node.Apply(ready.CommittedEntries, _checker);
            foreach (var message in ready.Messages)
            {
                if (message.From != node.Id)
                {
                    throw new SafetyViolationException($"{node.Id} sent a message claiming to be from {message.From}: {message}");
                }

                if (message.Type == MessageType.VoteResponse && !message.Reject)
                {
                    _checker.ObserveVote(node.Id, message.Term, message.To!);
                }

                _network.Send(node.Id, message);
            }
        }

        if (node.ReportedRejoining != core.Rejoining)
        {
            node.ReportedRejoining = core.Rejoining;
            Trace($"  {node.Id} is {(core.Rejoining ? "now" : "no longer")} rejoining");
            _storageStats = core.Rejoining ? _storageStats : _storageStats with { Rejoined = _storageStats.Rejoined + 1 };
        }

        CheckNode(node);
    }

    /// <summary>The per-step checks of one node that has just changed (no other node did).</summary>
    private void CheckNode(SimulatedNode node)
    {
        var core = node.Core!;
        var log = core.Log;
        var storage = node.Storage;
        if (core.LastIndex != storage.LastIndex || log.LastTerm != storage.LastTerm)
        {
            throw new SafetyViolationException(
                $"{node.Id}'s log ends at {core.LastIndex}/t{log.LastTerm} but its storage ends at {storage.LastIndex}/t{storage.LastTerm} after the Ready was persisted");
        }

        if (node.Unhealed && core.Rejoining && _loss.Races)
        {
            // The node knows now; from here on its rejoin mode alone says whether it is whole.
            node.Unhealed = false;
        }

        long commit = core.CommitIndex;
        if (commit < node.Commit)
        {
            throw new SafetyViolationException($"{node.Id}'s commit index went down from {node.Commit} to {commit}");
        }

        if (commit > node.Commit)
        {
            Trace($"  {node.Id} commits {node.Commit + 1}..{commit}");
            _checker.ObserveCommitted(node.Id, core.Term, node.Commit + 1, commit, node.TermAt);
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

        leader.LeaderCheckedUpTo = _checker.CheckLeaderCompleteness(leader.Id, core.Term, leader.LeaderCheckedUpTo, leader.TermAt);
    }

    /// <summary>
    /// At the end of a run, Log Matching checked directly on the stored logs (the per-step check is
    /// inductive): for every pair, the logs agree on everything they both hold up to the last index
    /// where their terms agree. Every stored snapshot must carry the applied sequence everyone applied.
    /// </summary>
    private void CheckAllLogsMatch()
    {
        foreach (var node in _nodes)
        {
            if (node.Storage.Snapshot is { } snapshot)
            {
                _checker.ObserveRestored(node.Id, node.SnapshotContent(snapshot));
            }
        }

        for (int a = 0; a < _nodes.Length; a++)
        {
            for (int b = a + 1; b < _nodes.Length; b++)
            {
                var left = _nodes[a].Storage;
                var right = _nodes[b].Storage;
                long first = Math.Max(left.SnapshotIndex, right.SnapshotIndex) + 1;
                long last = Math.Min(left.LastIndex, right.LastIndex);
                while (last >= first && Stored(left, last).Term != Stored(right, last).Term)
                {
                    last--;
                }

                for (long i = first; i <= last; i++)
                {
                    if (!SafetyChecker.SameContent(Stored(left, i), Stored(right, i)))
                    {
                        throw new SafetyViolationException(
                            $"log matching: {_nodes[a].Id} and {_nodes[b].Id} share entry {last}/t{Stored(left, last).Term} but differ at index {i}: "
                            + $"{SafetyChecker.Describe(Stored(left, i))} vs {SafetyChecker.Describe(Stored(right, i))}");
                    }
                }
            }
        }
    }

    private static LogEntry Stored(SimulatedStorage storage, long index)
        => storage.TryGet(index, out var entry) ? entry : throw new InvalidOperationException($"index {index} is not stored");
}
