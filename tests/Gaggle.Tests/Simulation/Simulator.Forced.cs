using Gaggle.Channels;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Elastic runs, the operator's other way back when every voter in play is stranded:
/// <see cref="GaggleNode.ForceNewGenerationAsync"/> on one stranded voter. The survivor keeps its log and
/// becomes the sole voter of the next generation; the other stranded instances stay up, and, as in
/// production, start over as newcomers when they hear of the newer generation (their holds die with
/// their state, their beliefs with their safe deadlines). The new generation's histories continue the
/// survivor's: its committed prefix is theirs, and what the lost majority committed beyond it is lost
/// by design (<see cref="GenerationSafetyCheckers.Fork"/>, <see cref="LockHistoryChecker.Fork"/>,
/// <see cref="AppendChecker.Fork"/>); everything after it is checked as in any generation.
/// </summary>
internal sealed partial class Simulator
{
    /// <summary>
    /// Half the time (when one qualifies), forces a new generation on a stranded voter that is up, not
    /// paused or leaving, holds state, knows no leader and reaches the store, picked at random among
    /// them (not the most up to date: an operator may pick any). Mirrors ForceNewGenerationAsync against
    /// the store: read the value; refuse if it holds a generation not older than the survivor's; restore
    /// it if lost; claim the next generation. False when nothing was forced (the caller stops the
    /// stranded instances instead).
    /// </summary>
    private bool TryForceNewGeneration(IReadOnlyList<SimulatedNode> voters)
    {
        var candidates = voters.Where(n => n.IsUp && !n.IsPausedAt(NowUs) && !n.Driver!.Departing && n.Core!.LeaderId is null && n.Core.LastIndex > 0
            && _network.ReachesStore(n.Id)).ToList();
        if (candidates.Count == 0 || _random.Next(2) == 0)
        {
            return false;
        }

        var survivor = candidates[_random.Next(candidates.Count)];
        long current = survivor.Generation;
        long recorded = _store.Value;
        if (recorded != current && recorded != 0 && !GenerationIds.IsNewer(current, recorded))
        {
            Trace($"the operator cannot force a generation on {survivor.Id}: the store holds {GenerationIds.Describe(recorded)}, not older than its {GenerationIds.Describe(current)}");
            _elasticStats.ForcesRefused++;
            return false;
        }

        if (recorded != current)
        {
            // The store lost its value: restored first, so that the claim goes above the survivor's generation.
            _store.Confirm(current, NowUs);
        }

        long next = GenerationIds.Next(current, _random);
        if (!_store.TryClaim(current, next, NowUs))
        {
            Trace($"the operator's claim of generation {GenerationIds.Describe(next)} for {survivor.Id} fails: the store holds {GenerationIds.Describe(_store.Value)}");
            _elasticStats.ForcesRefused++;
            return false;
        }

        long known = survivor.Core!.CommitIndex;
        Trace($"the operator forces generation {GenerationIds.Describe(next)} on stranded voter {survivor.Id} (generation {GenerationIds.Describe(current)}, "
            + $"commit {known}, last {survivor.Core.LastIndex}; the most up-to-date stranded voter's last index is {voters.Max(v => v.Core!.LastIndex)})");
        ForkHistories(survivor, current, next, known);
        var driver = survivor.Driver!;
        driver.Observe(survivor.LocalUs);
        driver.ForceNewGeneration(next);
        ObserveFounded(survivor, next);
        _elasticStats.Forced++;
        Process(survivor);
        return true;
    }

    /// <summary>The histories of <paramref name="forced"/> start as those of <paramref name="generation"/> up to the survivor's commit index <paramref name="known"/>.</summary>
    private void ForkHistories(SimulatedNode survivor, long generation, long forced, long known)
    {
        if (survivor.Commit != known || survivor.Applied != known)
        {
            throw new SafetyViolationException($"{survivor.Id} forces a generation with commit index {known}, but it reported commit {survivor.Commit} and applied {survivor.Applied}");
        }

        _checkers.Fork(generation, forced, survivor.Id, known);
        Checker.Fork(generation, forced, known);
        Appends.Fork(generation, forced, known);
        foreach (var ((_, index), snapshot) in _snapshots.Where(s => s.Key.Generation == generation && s.Key.Index <= known).ToList())
        {
            // The state at an index of the prefix is the same in both generations: so are the snapshots taken there.
            _snapshots[(forced, index)] = snapshot;
        }
    }
}
