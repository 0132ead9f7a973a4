using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Elastic runs, GaggleNode's part around each driver's generation: claims, confirmations and releases carried to the
/// <see cref="SimulatedGenerationStore"/> and their results back, the founding of each generation
/// (once while its cluster lives), and the reset of a node whose generation a newer one replaced.
/// </summary>
internal sealed partial class Simulator
{
    /// <summary>GaggleNode.CarryOutGenerations: the driver's claim, probe, confirmation and release go to the store off the loop.</summary>
    public void CarryOutGenerations(SimulatedNode node, long? claim, bool probe, (long Generation, long SentAtUs)? confirm, long? release)
    {
        if (claim is { } expected)
        {
            Trace($"  {node.Id} claims generation {expected + 1}");
            ScheduleStoreOperation(StoreOperationKind.Claim, node, expected);
        }

        if (probe)
        {
            ScheduleStoreOperation(StoreOperationKind.Probe, node, node.Driver!.Generation);
        }

        if (confirm is { } c)
        {
            ScheduleStoreOperation(StoreOperationKind.Confirm, node, c.Generation, c.SentAtUs);
        }

        if (release is { } claimed)
        {
            Trace($"  {node.Id} gives back its claim of generation {claimed}");
            ScheduleStoreOperation(StoreOperationKind.Release, node, claimed);
        }
    }

    private void ScheduleStoreOperation(StoreOperationKind kind, SimulatedNode node, long generation, long sentAtUs = 0)
        => _store.Schedule(NowUs + _random.NextInt64(0, Settings.Elastic!.StoreDelayMaxUs + 1), new StoreOperation(kind, node, generation) { SentAtUs = sentAtUs });

    /// <summary>
    /// An operation reaches the store (a paused process sends it once it resumes; one that died had sent
    /// it): it fails when the node is cut from the store, or now and then; a claim's result, or its
    /// failure, reaches the node's current driver as an input, as GaggleNode's inbox does (after a reset
    /// the new driver gets it).
    /// </summary>
    private void RunStoreOperation(StoreOperation operation)
    {
        var node = operation.Node;
        if (node.IsPausedAt(NowUs))
        {
            _store.Schedule(node.PausedUntilUs, operation);
            return;
        }

        if (operation.Kind == StoreOperationKind.Release && _scriptHoldsReleases)
        {
            _store.Schedule(NowUs + ElectionTimeoutUs, operation);
            return;
        }

        long expected = operation.Generation;
        bool fails = !_network.ReachesStore(node.Id) || (!_storeHealed && _random.Next(100) < Settings.Elastic!.StoreFailurePercent);
        if (fails)
        {
            _store.Stats.Failed++;
            Trace($"store: {operation} fails");
            if (operation.Kind == StoreOperationKind.Probe)
            {
                DeliverToDriver(node, driver => driver.GenerationStoreUnreachable());
            }
            else if (operation.Kind is not (StoreOperationKind.Confirm or StoreOperationKind.Release))
            {
                DeliverToDriver(node, driver => driver.GenerationClaimFailed());
            }

            return;
        }

        switch (operation.Kind)
        {
            case StoreOperationKind.Claim when _store.TryClaim(expected):
                Trace($"store: {operation} won");
                DeliverToDriver(node, driver => driver.GenerationClaimed(expected, won: true, expected + 1));
                break;
            case StoreOperationKind.Claim:
                Trace($"store: {operation} lost to {_store.Value}");
                ScheduleStoreOperation(StoreOperationKind.ReadAfterLostClaim, node, expected);
                break;
            case StoreOperationKind.Probe:
                break;
            case StoreOperationKind.ReadAfterLostClaim:
                long recorded = _store.Value;
                DeliverToDriver(node, driver => driver.GenerationClaimed(expected, won: false, recorded));
                break;
            case StoreOperationKind.Release:
                Trace($"store: {operation} (was {_store.Value})");
                _store.TryRelease(expected);
                break;
            default:
                long before = _store.Confirm(expected);
                if (before != expected)
                {
                    Trace($"store: {operation} found {before}");
                }

                DeliverToDriver(node, driver => driver.GenerationConfirmed(operation.SentAtUs, expected, before));
                break;
        }
    }

    /// <summary>A store result as an input of <paramref name="node"/>'s driver, if the process still runs; a founding it causes is recorded.</summary>
    private void DeliverToDriver(SimulatedNode node, Action<NodeDriver> input)
    {
        if (!node.IsUp || !_nodes.Contains(node))
        {
            Trace($"  the result is lost: {node.Id} is gone");
            return;
        }

        var driver = node.Driver!;
        long foundedBefore = driver.Generations!.FoundedAtUs;
        driver.Observe(node.LocalUs);
        input(driver);
        if (driver.Generations.FoundedAtUs != foundedBefore)
        {
            ObserveFounded(node, driver.Generation);
        }

        Process(node);
    }

    /// <summary>
    /// A generation is founded once while its cluster lives: two clusters of one generation would take
    /// each other's messages for their own. Only once every member of the first is gone may the number
    /// come back, when the store lost its value and no instance remembers it: that is a new cluster,
    /// whose histories start afresh (a message of the old one still in flight, at most half an election
    /// timeout old, would be checked as part of the new one's).
    /// </summary>
    private void ObserveFounded(SimulatedNode node, long generation)
    {
        Trace($"  {node.Id} founds generation {generation}");
        if (_founders.TryGetValue(generation, out var earlier))
        {
            var members = _nodes.Where(n => n != node && n.IsUp && n.Generation == generation && (n.Core!.LastIndex > 0 || n.Core.Snapshot is not null)).Select(n => n.Id).ToList();
            if (members.Count > 0)
            {
                throw new SafetyViolationException(
                    $"generation {generation} founded twice: by {earlier.Founder} at {earlier.AtUs} us and by {node.Id} at {NowUs} us, while the first lives on "
                    + $"({string.Join(", ", members)}; the store records {_store.Value})");
            }

            CloseCluster(generation);
        }

        _founders[generation] = (node.Id, NowUs);
        _elasticStats.Founded++;
    }

    /// <summary>The cluster of <paramref name="generation"/> is gone and a new one takes its number: its histories are closed.</summary>
    private void CloseCluster(long generation)
    {
        Trace($"  generation {generation} founded again: the store lost its value while every member of the earlier one was gone");
        _elasticStats.FoundedAgain++;
        long closed = -_elasticStats.FoundedAgain;
        foreach (var node in _retired.Where(n => n.Generation == generation))
        {
            _closedLogs.TryAdd(node.Storage, closed);
        }

        foreach (var (_, _, storage) in _logsBeforeReset.Where(l => l.Generation == generation))
        {
            _closedLogs.TryAdd(storage, closed);
        }

        _checkers.Close(generation);
        Appends.Close(generation);
        Checker.Close(generation);
        History.Close(generation);
        _appliedConfigs.Remove(generation);
        _everMember.RemoveWhere(m => m.Generation == generation);
        foreach (var key in _snapshots.Keys.Where(k => k.Generation == generation).ToList())
        {
            _snapshots.Remove(key);
        }
    }

    /// <summary>GaggleNode.ResetForGeneration: a newer generation replaced <paramref name="node"/>'s; it starts over in it with empty state.</summary>
    private void ResetForGeneration(SimulatedNode node, long generation)
    {
        long old = node.Generation;
        _logsBeforeReset.Add((node.Id, old, node.Storage));
        _elasticStats.Resets++;
        Trace($"  {node.Id} resets: generation {generation} replaced its generation {old}");
        node.ResetForGeneration(history => Settings.CreateElasticDriverSettings(node.Id, _random.Next(), node.Incarnation, history), generation, Settings.ClientsPerNode);
        Process(node);
    }

    /// <summary>
    /// GaggleNode.ResetForRemoval and ResetOrphaned: a member removed while paused or cut off starts over
    /// in its generation as a new incarnation, keeping its term and vote; a learner that heard no voter
    /// for the member timeout starts over with nothing, waiting to join or found.
    /// </summary>
    private void StartOver(SimulatedNode node)
    {
        bool removed = node.Removed;
        long generation = node.Generation;
        if (removed && ToldBeforeItsRemovalCommitted(node, generation) is { } inForce)
        {
            // Told so while the configuration without it was not committed: that configuration may still
            // be overwritten, and the node's log and acknowledgements still count in the committed one
            // (a voter that drops a log a majority relied on lets a leader without a committed entry win).
            // A word told from a committed removal may arrive after the node was added back: the node
            // cannot know, and starting over then is safe (its new incarnation is a member already).
            throw new SafetyViolationException(
                $"{node.Id} starts over as removed from generation {generation} (learnt from configuration {node.Driver!.LifeConfigurationIndex}) while the committed configuration in force there, {inForce}, still holds it");
        }

        var keep = removed ? new Gaggle.Raft.HardState(node.Core!.Term, node.Core.VotedFor, 0) : default;
        _logsBeforeReset.Add((node.Id, generation, node.Storage));
        _elasticStats.Resets++;
        Trace($"  {node.Id} starts over in generation {generation}: {(removed ? "it was removed" : "it heard no voter for the member timeout")}");
        node.Incarnation = (ulong)_random.NextInt64(1, long.MaxValue);
        long life = node.Driver!.LifeConfigurationIndex;
        node.StartOver(history => Settings.CreateElasticDriverSettings(node.Id, _random.Next(), node.Incarnation, history), generation, live: removed, keep, Settings.ClientsPerNode, life);
        Process(node);
    }
}

/// <summary>Removal checks of elastic runs.</summary>
internal sealed partial class Simulator
{
    /// <summary>
    /// The committed configuration in force at the index <paramref name="node"/> learnt of its removal
    /// from (a "not a member", or its own log), when it still holds the node or that index has not
    /// committed yet (the newest committed one then); null when that removal had committed.
    /// </summary>
    private ClusterConfig? ToldBeforeItsRemovalCommitted(SimulatedNode node, long generation)
    {
        // The removal it learnt of: told by a leader, or a committed configuration of its own log without it.
        long told = node.Driver!.LifeConfigurationIndex;
        var committed = _configHistory.Where(c => c.Generation == generation).ToList();
        if (told <= 0 || committed.Count == 0 || committed.Max(c => c.Index) < told)
        {
            return AppliedConfigOf(generation).Contains(node.Id) ? AppliedConfigOf(generation) : null;
        }

        var inForce = committed.Where(c => c.Index <= told).OrderBy(c => c.Index).Select(c => (AppliedConfiguration?)c).LastOrDefault();
        return inForce is { } config && config.Config.Contains(node.Id) ? config.Config : null;
    }
}

/// <summary>What the instances and generations of an elastic run did.</summary>
internal sealed class ElasticSimStats
{
    public int Started { get; set; }

    public int Died { get; set; }

    public int Redeployed { get; set; }

    public int Outages { get; set; }

    /// <summary>Times the hub (Redis) went down for one to three member timeouts.</summary>
    public int HubOutages { get; set; }

    /// <summary>Graceful leaves begun, and those that ended with the node removed (the others ran out of shutdown time).</summary>
    public int Leaves { get; set; }

    public int LeavesDone { get; set; }

    /// <summary>Generations founded (claims won by a node that then formed the cluster).</summary>
    public int Founded { get; set; }

    /// <summary>Generations founded again after their cluster was gone and the store had lost its value.</summary>
    public int FoundedAgain { get; set; }

    public long HighestGeneration { get; set; }

    /// <summary>Generations whose log committed something.</summary>
    public int GenerationsCommitted { get; set; }

    /// <summary>Nodes that reset because a newer generation replaced theirs, was removed, or heard no voter for the member timeout.</summary>
    public int Resets { get; set; }

    /// <summary>Stranded instances (of a generation whose live voters are no majority) an operator stopped at stabilization.</summary>
    public int StrandedStopped { get; set; }

    /// <summary>Forwards a leader refused as sent under an admission its configuration no longer has for the sender.</summary>
    public int StaleAdmissionRefused { get; set; }

    /// <summary>Appends their node gave up, outcome unknown, on learning it had been removed and added again.</summary>
    public int GivenUpOnReadmission { get; set; }

    /// <summary>The most origins a node's duplicate table remembered at the end of the run (members' sessions only).</summary>
    public int MostOriginsRemembered { get; set; }

    public GenerationStoreStats Store { get; set; } = new();
}
