using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

internal sealed partial class Simulator
{
    private int _committedSeen;

    /// <summary>
    /// Plays GaggleNode's loop for one node after any input: take each ready, persist it, send its
    /// messages (the network only delivers later, so "persist before send" holds), advance the driver
    /// (it applies what committed), save a snapshot it made and compact, carry out its events for the
    /// callers; then check the node.
    /// </summary>
    private void Process(SimulatedNode node)
    {
        var driver = node.Driver;
        while (driver is not null && node.Driver == driver)
        {
            if (driver.TakeReady(node.LocalUs) is { } ready)
            {
                ProcessReady(node, ready);
            }
            else if (driver.Events.IsEmpty)
            {
                break;
            }

            node.CarryOut();
        }

        if (node.Driver is not null)
        {
            CheckNode(node);
            if (node.SupersededBy is { } generation)
            {
                // GaggleNode's loop: the reset comes once the pass that learned of the newer generation is done.
                ResetForGeneration(node, generation);
            }
            else if (node.Removed || node.Orphaned)
            {
                node.OrphanedStarts += node.Orphaned && !node.Removed ? 1 : 0;
                StartOver(node);
            }
        }
    }

    private void ProcessReady(SimulatedNode node, NodeReady ready)
    {
        var driver = node.Driver!;
        var checker = _checkers.For(ready.Generation);
        if (ready.Raft is { } raft)
        {
            if (raft.SoftState is { } soft)
            {
                Trace($"  {node.Id} is {soft.Role} in term {soft.Term}, leader {soft.LeaderId ?? "-"}");
            }

            if (raft.Snapshot is { } snapshot)
            {
                Trace($"  {node.Id} installs snapshot {snapshot.Index}/t{snapshot.Term} ({snapshot.Data.Length} bytes)");
                _storageStats = _storageStats with { Installs = _storageStats.Installs + 1 };
                if (snapshot.Index <= node.Applied)
                {
                    throw new SafetyViolationException($"{node.Id} was handed snapshot {snapshot.Index}/t{snapshot.Term} to install but has applied up to {node.Applied}");
                }
            }

            node.Persist(raft, checker);
            if (node.Storage.Buffered && _random.Next(100) < Settings.FlushPercent)
            {
                node.Storage.Flush();
            }

            if (raft.Snapshot is { } installed)
            {
                checker.ObserveRestoredAt(node.Id, installed.Index, installed.Term);
                node.Applied = installed.Index;
                node.InstalledSnapshotIndex = installed.Index;
            }

            foreach (var entry in raft.CommittedEntries)
            {
                checker.ObserveApplied(node.Id, node.Applied, entry);
                if (entry.Kind == EntryKind.Configuration)
                {
                    ObserveAppliedConfig(node, entry);
                }

                if (entry.Index > node.HardState.Commit || !node.Storage.TryGet(entry.Index, out var stored) || !SafetyChecker.SameContent(stored, entry))
                {
                    throw new SafetyViolationException(
                        $"{node.Id} applies {SafetyChecker.Describe(entry)} beyond its persisted commit index {node.HardState.Commit}, or not as stored in {node.Storage.SnapshotIndex + 1}..{node.Storage.LastIndex}");
                }

                node.Applied = entry.Index;
            }
        }

        foreach (var message in ready.Messages)
        {
            if (message.Message is RaftWireMessage { Message: var raftMessage })
            {
                if (raftMessage.From != node.Id)
                {
                    throw new SafetyViolationException($"{node.Id} sent a message claiming to be from {raftMessage.From}: {raftMessage}");
                }

                if (raftMessage.Type == MessageType.VoteResponse && !raftMessage.Reject)
                {
                    checker.ObserveVote(node.Id, raftMessage.Term, raftMessage.To!);
                }
            }

            _network.Send(node.Id, message, ready.Generation, NowUs);
            if (message.To is null && _shape.Elastic && _network.Connected(node.Id, node.Id)
                && _scriptLoses?.Invoke(new Envelope(node.Id, node.Id, message.Message, ready.Generation)) != true)
            {
                // Redis echoes a publish to the publisher's own subscription (counted at once here: no
                // envelope, so the seed's schedule of deliveries stays as it was).
                node.EchoesHeard++;
            }
        }

        driver.Advance();
        if (driver.Events.SnapshotToSave is { } taken)
        {
            driver.Events.SnapshotToSave = null;
            SaveSnapshot(node, taken);
        }
    }

    /// <summary>
    /// A snapshot the driver made: every node's snapshot at one index holds the same bytes (the state
    /// machines are deterministic); saved, then the log compacted, as the node's loop does.
    /// </summary>
    private void SaveSnapshot(SimulatedNode node, RaftSnapshot snapshot)
    {
        if (snapshot.Index != node.Applied)
        {
            throw new SafetyViolationException($"{node.Id} snapshotted at {snapshot.Index} but has applied up to {node.Applied}");
        }

        if (_snapshots.TryGetValue((node.Generation, snapshot.Index), out var known))
        {
            if (!known.Data.Span.SequenceEqual(snapshot.Data.Span) || known.Term != snapshot.Term)
            {
                throw new SafetyViolationException(
                    $"{node.Id}'s snapshot at {snapshot.Index}/t{snapshot.Term} ({snapshot.Data.Length} bytes) differs from {known.Node}'s ({known.Data.Length} bytes, t{known.Term}): the state machines diverged");
            }
        }
        else
        {
            _snapshots[(node.Generation, snapshot.Index)] = (snapshot.Term, snapshot.Data, node.Id);
        }

        node.Storage.BeginBatch();
        node.Storage.SaveSnapshot(snapshot);
        node.Storage.EndBatch();
        node.Driver!.CompactTo(snapshot);
        _storageStats = _storageStats with { Snapshots = _storageStats.Snapshots + 1 };
        Trace($"  {node.Id} snapshots at {snapshot.Index}/t{snapshot.Term} ({snapshot.Data.Length} bytes)");
    }

    /// <summary>The first snapshot taken at each index of each generation's log.</summary>
    private readonly Dictionary<(long Generation, long Index), (long Term, ReadOnlyMemory<byte> Data, string Node)> _snapshots = [];

    /// <summary>The lock checker watches every lock entry a node applies (or drops as a duplicate); a hold ended must reach its holder.</summary>
    public Action<long, EntryEnvelope, bool> ObserveEntry(SimulatedNode node) => (index, envelope, firstTime) =>
    {
        if (envelope.Kind != EntryPayloadKind.Lock)
        {
            return;
        }

        if (!firstTime)
        {
            Checker.ObserveDuplicate(node.Id, index, node.Generation);
            return;
        }

        var locks = node.Driver!.Machines.Locks;
        var command = locks.LastCommand ?? throw new LockSimViolation($"{node.Id}: entry {index} holds a malformed lock command");
        var events = locks.LastEvents.ToList();
        Checker.ObserveApplied(node.Id, locks.Table, index, envelope, command, events, node.Generation);
        foreach (var ended in events)
        {
            if (ended.Type is LockEventType.Expired or LockEventType.Released && ended.Request.Node == node.Id && ended.Request.Incarnation == node.Incarnation)
            {
                _endedHolds.Add((node, ended.Name, ended.Token));
            }
        }
    };

    private readonly List<(SimulatedNode Node, string Name, long Token)> _endedHolds = [];

    /// <summary>The per-step checks of one node that has just changed (no other node did).</summary>
    private void CheckNode(SimulatedNode node)
    {
        foreach (var (holder, name, token) in _endedHolds)
        {
            foreach (var client in holder.Clients)
            {
                LockHistoryChecker.RequireNotified(client, name, token);
            }
        }

        _endedHolds.Clear();
        var core = node.Core!;
        node.LatestConfig = core.Configuration;
        if (node.Driver!.Machines.LastAppliedMembers is { } members && node.Driver.Machines.Locks.Table.WaitsOutside(members))
        {
            // Elastic mode: a node appends only as a member, so after a configuration entry no waiter of a node it does not list is left (LockTable.GoneNodes.cs).
            throw new LockSimViolation($"{node.Id}'s lock table keeps a wait of a node that its last configuration entry applied, [{string.Join(", ", members)}], does not list");
        }

        var storage = node.Storage;
        if (core.LastIndex != storage.LastIndex || core.Log.LastTerm != storage.LastTerm)
        {
            throw new SafetyViolationException(
                $"{node.Id}'s log ends at {core.LastIndex}/t{core.Log.LastTerm} but its storage ends at {storage.LastIndex}/t{storage.LastTerm} after the Ready was persisted");
        }

        if (node.ReportedRejoining != core.Rejoining)
        {
            node.ReportedRejoining = core.Rejoining;
            Trace($"  {node.Id} is {(core.Rejoining ? "now" : "no longer")} rejoining");
            _storageStats = core.Rejoining ? _storageStats : _storageStats with { Rejoined = _storageStats.Rejoined + 1 };
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

        var checker = _checkers.For(node.Generation);
        if (commit > node.Commit)
        {
            Trace($"  {node.Id} commits {node.Commit + 1}..{commit}");
            checker.ObserveCommitted(node.Id, core.Term, node.Commit + 1, commit, TermAt(node));
            node.Commit = commit;
        }

        if (node.Applied != commit)
        {
            throw new SafetyViolationException($"{node.Id} has applied up to {node.Applied} but its commit index is {commit} after the Ready");
        }

        if (core.Role == RaftRole.Leader)
        {
            checker.ObserveLeader(node.Id, core.Term);
            CheckLeaderCompleteness(node);
        }

        if (_checkers.CommittedCount > _committedSeen)
        {
            // Newly committed entries must already be in the logs of every leader of a later term (of their generation).
            _committedSeen = _checkers.CommittedCount;
            foreach (var other in _nodes)
            {
                if (other != node && other.Core?.Role == RaftRole.Leader && other.Generation == node.Generation)
                {
                    CheckLeaderCompleteness(other);
                }
            }
        }
    }

    /// <summary>The term of the entry at an index as <paramref name="node"/> holds it: in its log, or (compacted) as applied.</summary>
    private Func<long, long> TermAt(SimulatedNode node) => index =>
    {
        long term = node.Core!.TermAt(index);
        return term >= 0 || index < 1 || index > node.Applied ? term : _checkers.For(node.Generation).AppliedTermAt(index);
    };

    private void CheckLeaderCompleteness(SimulatedNode leader)
    {
        var core = leader.Core!;
        if (leader.LeaderTerm != core.Term)
        {
            leader.LeaderTerm = core.Term;
            leader.LeaderCheckedUpTo = 0;
        }

        leader.LeaderCheckedUpTo = _checkers.For(leader.Generation).CheckLeaderCompleteness(leader.Id, core.Term, leader.LeaderCheckedUpTo, TermAt(leader));
    }

    /// <summary>
    /// At the end of a run, Log Matching checked directly on the stored logs (the per-step check is
    /// inductive): for every pair of one generation (the logs nodes held before a reset included), the
    /// logs agree on everything they both hold up to the last index where their terms agree.
    /// </summary>
    private void CheckAllLogsMatch()
    {
        var nodes = _nodes.Concat(_retired).Select(n => (n.Id, n.Generation, n.Storage)).Concat(_logsBeforeReset)
            .Select(n => (n.Id, Generation: _closedLogs.GetValueOrDefault(n.Storage, n.Generation), n.Storage)).ToArray();
        for (int a = 0; a < nodes.Length; a++)
        {
            for (int b = a + 1; b < nodes.Length; b++)
            {
                if (nodes[a].Generation != nodes[b].Generation)
                {
                    continue;
                }

                var left = nodes[a].Storage;
                var right = nodes[b].Storage;
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
                            $"log matching: {nodes[a].Id} and {nodes[b].Id}{(nodes[a].Generation == 0 ? "" : $" (generation {nodes[a].Generation})")} share entry {last}/t{Stored(left, last).Term} but differ at index {i}: "
                            + $"{SafetyChecker.Describe(Stored(left, i))} vs {SafetyChecker.Describe(Stored(right, i))}");
                    }
                }
            }
        }
    }

    private static LogEntry Stored(SimulatedStorage storage, long index)
        => storage.TryGet(index, out var entry) ? entry : throw new InvalidOperationException($"index {index} is not stored");
}
