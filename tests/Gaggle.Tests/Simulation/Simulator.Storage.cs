using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Crashes, restarts and lost storage. A crash of a FlushPolicyNone node may lose its
/// newest unflushed batches; LoseStorage wipes a node's storage entirely. Either way the node restarts
/// as one that lost data: with StartRejoining (the documented procedure), or, in the
/// <see cref="LostStorageRestart.AutomaticDetection"/> variant, told nothing. Raft tolerates the loss
/// of at most N - majority servers' state at once, so a loss is only scheduled while the nodes that
/// lost data and are not yet whole again stay within that bound. What "whole again" and the messages
/// of a node's previous incarnation mean is the <see cref="LossModel"/>.
/// </summary>
internal sealed partial class Simulator
{
    private void CrashRandomNode()
    {
        if (_shape.Elastic)
        {
            CrashInstance();
            return;
        }

        var up = _nodes.Where(n => n.IsUp).ToArray();
        if (up.Length == 0)
        {
            return;
        }

        // Half the crashes hit a leader: those that strike mid-replication make the interesting histories (Raft §5.4.2).
        var leaders = up.Where(n => n.Core!.Role == RaftRole.Leader).ToArray();
        var node = leaders.Length > 0 && _random.Next(2) == 0 ? leaders[_random.Next(leaders.Length)] : up[_random.Next(up.Length)];
        long termBefore = node.Core!.Term;
        Crash(node);
        if (node.Storage.UnflushedBatches > 0 && _random.Next(100) < Settings.LoseTailPercent && MayLoseData(node))
        {
            int batches = _random.Next(1, node.Storage.UnflushedBatches + 1);
            node.Storage.LoseNewest(batches);
            node.LostData = node.Unhealed = true;
            _checkers.For(node.Generation).ObserveForgottenTerms(node.Id, node.HardState.Term, termBefore);
            _storageStats = _storageStats with { LostTails = _storageStats.LostTails + 1 };
            Trace($"  {node.Id} lost its {batches} newest unflushed batches: now term {node.HardState.Term}, vote {node.HardState.VotedFor ?? "-"}, "
                + $"commit {node.HardState.Commit}, snapshot {node.Storage.SnapshotIndex}, last {node.Storage.LastIndex}");
        }
        else
        {
            // The process died, the machine did not: the OS writes the unflushed batches out.
            node.Storage.Flush();
        }
    }

    /// <summary>A node (up or down) loses its storage entirely: a deleted data directory, a replaced disk.</summary>
    private void LoseStorage()
    {
        var candidates = _nodes.Where(MayLoseData).ToArray();
        if (candidates.Length == 0)
        {
            return;
        }

        var node = candidates[_random.Next(candidates.Length)];
        long termBefore = node.IsUp ? node.Core!.Term : node.HardState.Term;
        if (node.IsUp)
        {
            Crash(node);
        }

        node.Storage.Wipe();
        _checkers.For(node.Generation).ObserveForgottenTerms(node.Id, 0, termBefore);
        node.LostData = node.Unhealed = true;
        _storageStats = _storageStats with { LostStorage = _storageStats.LostStorage + 1 };
        Trace($"  {node.Id} lost its storage");
    }

    private void Crash(SimulatedNode node)
    {
        node.Crash();
        int dropped = _network.DropSomeTo(node.Id, _random);
        Trace($"crash {node.Id} ({dropped} messages to it lost)");
    }

    /// <summary>Whether <paramref name="node"/> may lose state now, keeping the damaged nodes within N - majority.</summary>
    private bool MayLoseData(SimulatedNode node)
        => !node.IsDamaged && _nodes.Count(n => n.IsDamaged) + 1 <= _ids.Length - Quorum.Majority(_ids.Length);

    private void RestartRandomNode()
    {
        var down = _nodes.Where(n => !n.IsUp).ToArray();
        if (down.Length > 0)
        {
            StartNode(down[_random.Next(down.Length)]);
        }
    }

    private void StartNode(SimulatedNode node)
    {
        bool rejoin = node.LostData && _loss.Restart == LostStorageRestart.StartRejoining;
        if (node.LostData && !_loss.Races)
        {
            // The channel's incarnations: nothing addressed to the node's previous incarnation reaches the
            // new one, and what the previous one sent is delivered before the new one starts, or never.
            int dropped = _network.DropAllOf(node.Id);
            Trace($"  {dropped} messages to or from {node.Id}'s previous incarnation lost");
        }

        node.Storage.Flush();
        ulong incarnation = ++_incarnations;
        int randomSeed = _random.Next();
        if (_shape.Elastic)
        {
            StartInstance(node, incarnation, randomSeed);
            return;
        }

        var random = new Random(randomSeed);
        bool joining = _shape.Membership && !_ids.Contains(node.Id);
        node.Start(history => Settings.CreateDriverSettings(node.Id, _shape, _ids, random, incarnation, rejoin, joining, history), incarnation, Settings.ClientsPerNode);
        if (node.Storage.Snapshot is { } snapshot)
        {
            _checkers.For(node.Generation).ObserveRestoredAt(node.Id, snapshot.Index, snapshot.Term);
        }

        Trace($"start {node.Id} incarnation {incarnation}{(rejoin ? " rejoining" : "")}{(joining ? " joining" : "")} (term {node.HardState.Term}, vote {node.HardState.VotedFor ?? "-"}, "
            + $"commit {node.HardState.Commit}, snapshot {node.Storage.SnapshotIndex}, last {node.Storage.LastIndex})");
        Process(node);
    }
}
