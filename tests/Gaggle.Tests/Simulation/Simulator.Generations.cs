using Gaggle.Channels;
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
    public void CarryOutGenerations(SimulatedNode node, (long Expected, long Claimed)? claim, bool probe, (long Generation, long SentAtUs)? confirm, (long Claimed, long Expected)? release, bool rival = false)
    {
        if (rival)
        {
            ScheduleStoreOperation(StoreOperationKind.CheckRival, node, node.Driver!.Generation);
        }

        if (claim is { } c0)
        {
            Trace($"  {node.Id} claims generation {GenerationIds.Describe(c0.Claimed)}");
            ScheduleStoreOperation(StoreOperationKind.Claim, node, c0.Expected, other: c0.Claimed);
        }

        if (probe)
        {
            ScheduleStoreOperation(StoreOperationKind.Probe, node, node.Driver!.Generation);
        }

        if (confirm is { } c)
        {
            ScheduleStoreOperation(StoreOperationKind.Confirm, node, c.Generation, c.SentAtUs);
        }

        if (release is { } r)
        {
            Trace($"  {node.Id} gives back its claim of generation {GenerationIds.Describe(r.Claimed)}");
            ScheduleStoreOperation(StoreOperationKind.Release, node, r.Claimed, other: r.Expected);
        }
    }

    private void ScheduleStoreOperation(StoreOperationKind kind, SimulatedNode node, long generation, long sentAtUs = 0, long other = 0)
        => _store.Schedule(NowUs + _random.NextInt64(0, Settings.Elastic!.StoreDelayMaxUs + 1), new StoreOperation(kind, node, generation) { SentAtUs = sentAtUs, Other = other });

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
            else if (operation.Kind is not (StoreOperationKind.Confirm or StoreOperationKind.Release or StoreOperationKind.CheckRival))
            {
                DeliverToDriver(node, driver => driver.GenerationClaimFailed());
            }

            return;
        }

        switch (operation.Kind)
        {
            case StoreOperationKind.Claim when _store.TryClaim(expected, operation.Other, NowUs):
                Trace($"store: {operation} won");
                DeliverToDriver(node, driver => driver.GenerationClaimed(expected, operation.Other, won: true, operation.Other));
                break;
            case StoreOperationKind.Claim:
                Trace($"store: {operation} lost to {GenerationIds.Describe(_store.Value)}");
                ScheduleStoreOperation(StoreOperationKind.ReadAfterLostClaim, node, expected, other: operation.Other);
                break;
            case StoreOperationKind.Probe:
                break;
            case StoreOperationKind.CheckRival:
                long held = _store.Value;
                Trace($"store: {operation} finds {GenerationIds.Describe(held)}");
                DeliverToDriver(node, driver => driver.RivalChecked(held));
                break;
            case StoreOperationKind.ReadAfterLostClaim:
                long recorded = _store.Value;
                DeliverToDriver(node, driver => driver.GenerationClaimed(expected, operation.Other, won: false, recorded));
                break;
            case StoreOperationKind.Release:
                Trace($"store: {operation} (was {GenerationIds.Describe(_store.Value)})");
                _store.TryRelease(expected, operation.Other, NowUs);
                break;
            default:
                var answer = _store.Confirm(expected, NowUs);
                if (answer.Recorded != expected || answer.SinceChange < TimeSpan.FromMicroseconds(Settings.Elastic!.MemberTimeoutUs))
                {
                    Trace($"store: {operation} found {GenerationIds.Describe(answer.Recorded)} ({answer.Change} {(long)answer.SinceChange.TotalMilliseconds} ms ago)");
                }

                if (_scriptLosesConfirmAnswers && answer.Recorded != expected)
                {
                    Trace($"  the answer is lost");
                    break;
                }

                DeliverToDriver(node, driver => driver.GenerationConfirmed(operation.SentAtUs, expected, answer));
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
    /// A generation id is founded once while its cluster lives: two clusters of one id would take each
    /// other's messages for their own. (Ids carry a random tag: a number founded again, after the store
    /// lost its value, is another id; the fence and the checks keep the two from acting at once.) Should
    /// an id come back once every member of the first is gone, that is a new cluster, whose histories
    /// start afresh.
    /// </summary>
    private void ObserveFounded(SimulatedNode node, long generation)
    {
        Trace($"  {node.Id} founds generation {GenerationIds.Describe(generation)}");
        if (_founders.TryGetValue(generation, out var earlier))
        {
            var members = _nodes.Where(n => n != node && n.IsUp && n.Generation == generation && (n.Core!.LastIndex > 0 || n.Core.Snapshot is not null)).Select(n => n.Id).ToList();
            if (members.Count > 0)
            {
                throw new SafetyViolationException(
                    $"generation {GenerationIds.Describe(generation)} founded twice: by {earlier.Founder} at {earlier.AtUs} us and by {node.Id} at {NowUs} us, while the first lives on "
                    + $"({string.Join(", ", members)}; the store records {GenerationIds.Describe(_store.Value)})");
            }

            CloseCluster(generation);
        }

        if (!_foundedNumbers.Add(GenerationIds.NumberOf(generation)))
        {
            _elasticStats.FoundedAgain++;
            if (_nodes.Exists(n => n != node && n.IsUp && n.GenerationNumber == GenerationIds.NumberOf(generation) && n.Generation != generation))
            {
                _elasticStats.FoundedBesideALiveOne++;
            }
        }

        _founders[generation] = (node.Id, NowUs);
        _elasticStats.Founded++;
    }

    /// <summary>The cluster of <paramref name="generation"/> is gone and a new one takes its number: its histories are closed.</summary>
    private void CloseCluster(long generation)
    {
        Trace($"  generation {generation} founded again: the store lost its value while every member of the earlier one was gone");
        long closed = -(++_closedClusters);
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

    /// <summary>Generations founded with the number of one whose member still ran (the store had lost the value meanwhile).</summary>
    public int FoundedBesideALiveOne { get; set; }

    public long HighestGeneration { get; set; }

    /// <summary>Generations whose log committed something.</summary>
    public int GenerationsCommitted { get; set; }

    /// <summary>Nodes that reset because a newer generation replaced theirs, was removed, or heard no voter for the member timeout.</summary>
    public int Resets { get; set; }

    /// <summary>Stranded instances (of a generation whose live voters are no majority) an operator stopped at stabilization.</summary>
    public int StrandedStopped { get; set; }

    /// <summary>Generations an operator forced on a stranded voter (ForceNewGenerationAsync), and forcings the store refused (the operator stopped the stranded instances instead).</summary>
    public int Forced { get; set; }

    public int ForcesRefused { get; set; }

    /// <summary>Forwards a leader refused as sent under an admission its configuration no longer has for the sender.</summary>
    public int StaleAdmissionRefused { get; set; }

    /// <summary>Appends their node gave up, outcome unknown, on learning it had been removed and added again.</summary>
    public int GivenUpOnReadmission { get; set; }

    /// <summary>The most origins a node's duplicate table remembered at the end of the run (members' sessions only).</summary>
    public int MostOriginsRemembered { get; set; }

    public GenerationStoreStats Store { get; set; } = new();
}
