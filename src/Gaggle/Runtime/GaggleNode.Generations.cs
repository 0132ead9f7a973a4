using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;

namespace Gaggle;

/// <summary>
/// Elastic mode's cluster generation on the node: read from the channel's store at start, claimed when
/// the driver decides to found a cluster, restored by the leader, and a reset when a newer generation
/// replaced this node's cluster.
/// </summary>
public sealed partial class GaggleNode
{
    private long _generation;
    private int _probingStore;
    private volatile bool _storeUnreachable;
    private int _generationCallsPending;

    /// <summary>
    /// In elastic mode, the number of the generation of the cluster this node belongs to or waits to
    /// join (see <see cref="IClusterGenerationStore"/>; the high bits of its fencing tokens); 0 before
    /// one is known, and always 0 with <see cref="GaggleOptions.Members"/> or <see cref="GaggleOptions.ClusterSize"/>.
    /// </summary>
    public long Generation => GenerationIds.NumberOf(GenerationId);

    /// <summary>The id of this node's generation: its number and its founder's tag (see <see cref="GenerationIds"/>).</summary>
    internal long GenerationId => Interlocked.Read(ref _generation);

    private IClusterGenerationStore? GenerationStore => _options.IsElastic ? _channel as IClusterGenerationStore : null;

    /// <summary>At start: the generation recorded in the store.</summary>
    private async Task StartGenerationAsync(NodeDriver driver, CancellationToken cancellationToken)
    {
        if (GenerationStore is { } store)
        {
            driver.StartGeneration(await store.ReadGenerationAsync(cancellationToken).ConfigureAwait(false), live: false);
        }
    }

    /// <summary>Carries out the driver's generation decisions: a claim, a restore (both off the loop).</summary>
    private void CarryOutGenerations(NodeEvents events)
    {
        if (GenerationStore is not { } store)
        {
            return;
        }

        if (events.ClaimGeneration is { } claim)
        {
            RunOffLoop(() => ClaimGenerationAsync(store, claim.Expected, claim.Claimed));
        }

        if (events.ProbeGenerationStore && Interlocked.CompareExchange(ref _probingStore, 1, 0) == 0)
        {
            RunOffLoop(() => ProbeGenerationStoreAsync(store));
        }

        if (events.CheckRival)
        {
            RunOffLoop(() => CheckRivalAsync(store));
        }

        if (events.ConfirmGeneration is { } confirm)
        {
            RunOffLoop(() => ConfirmGenerationAsync(store, confirm.Generation, confirm.SentAtUs));
        }

        if (events.ReleaseClaim is { } release)
        {
            // Not counted as off-loop work: nothing comes back to the loop, and its retries wait on the clock.
            _ = Task.Run(() => ReleaseClaimAsync(store, release.Claimed, release.Expected));
        }
    }

    /// <summary>
    /// Gives back a claim this node will not found, retrying (it is a compare-and-set: a retry after a
    /// lost answer is harmless) until the store answers, for half the member timeout: the live
    /// generation's leader keeps its fence shut while the claim stands, and takes its cluster for
    /// superseded if it stands for the member timeout.
    /// </summary>
    private async Task ReleaseClaimAsync(IClusterGenerationStore store, long claimed, long expected)
    {
        var until = _time.GetTimestamp() + (long)(_options.MemberTimeout.TotalSeconds / 2 * _time.TimestampFrequency);
        var pause = _options.ElectionTimeoutMin / 4;
        while (true)
        {
            try
            {
                await store.TryReleaseClaimAsync(claimed, expected, _stopping.Token).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                if (_time.GetTimestamp() >= until)
                {
                    Log.GenerationStoreFailed(_logger, e, Id);
                    return;
                }
            }

            try
            {
                await Task.Delay(pause, _time, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, _options.ElectionTimeoutMax.Ticks));
        }
    }

    /// <summary>A leader's confirmation of its generation in the store (see <see cref="GenerationFence"/>); the answer goes to the loop with the time it was sent.</summary>
    private async Task ConfirmGenerationAsync(IClusterGenerationStore store, long generation, long sentAtUs)
    {
        try
        {
            var answer = await store.ConfirmGenerationAsync(generation, _stopping.Token).ConfigureAwait(false);
            _storeUnreachable = false;
            _inbox.TryWrite(new ActionInput(driver => driver.GenerationConfirmed(sentAtUs, generation, answer)));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (!_storeUnreachable)
            {
                _storeUnreachable = true;
                Log.GenerationStoreUnreachable(_logger, e, Id);
            }

            // No answer, no confirmation: the fence shuts a fence after the last one answered.
        }
    }

    /// <summary>Runs a call to the store on the thread pool, counted in <see cref="OffLoopWorkPending"/> until it handed its outcome to the loop.</summary>
    private void RunOffLoop(Func<Task> call)
    {
        Interlocked.Increment(ref _generationCallsPending);
        _ = Task.Run(async () =>
        {
            try
            {
                await call().ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _generationCallsPending);
            }
        });
    }

    /// <summary>Reads the store after a generation of this node's number but another tag spoke: the one it holds lives.</summary>
    private async Task CheckRivalAsync(IClusterGenerationStore store)
    {
        try
        {
            long recorded = await store.ReadGenerationAsync(_stopping.Token).ConfigureAwait(false);
            _inbox.TryWrite(new ActionInput(driver => driver.RivalChecked(recorded)));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.GenerationStoreFailed(_logger, e, Id);
        }
    }

    /// <summary>Reads the store only to learn that it answers; a failure starts the driver's founding wait over.</summary>
    private async Task ProbeGenerationStoreAsync(IClusterGenerationStore store)
    {
        try
        {
            await store.ReadGenerationAsync(_stopping.Token).ConfigureAwait(false);
            _storeUnreachable = false;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (!_storeUnreachable)
            {
                _storeUnreachable = true;
                Log.GenerationStoreUnreachable(_logger, e, Id);
            }

            _inbox.TryWrite(new ActionInput(driver => driver.GenerationStoreUnreachable()));
        }
        finally
        {
            Interlocked.Exchange(ref _probingStore, 0);
        }
    }

    private async Task ClaimGenerationAsync(IClusterGenerationStore store, long expected, long claimed)
    {
        try
        {
            bool won = await store.TryClaimGenerationAsync(expected, claimed, _stopping.Token).ConfigureAwait(false);
            long recorded = won ? claimed : await store.ReadGenerationAsync(_stopping.Token).ConfigureAwait(false);
            _inbox.TryWrite(new ActionInput(driver =>
            {
                driver.GenerationClaimed(expected, claimed, won, recorded);
                if (won && driver.Generations?.FoundedAtUs >= 0 && driver.Generation == recorded)
                {
                    Log.GenerationFounded(_logger, Id, GenerationIds.Describe(recorded), GenerationIds.Describe(expected), driver.Generations.SilenceBeforeFoundingUs / 1000);
                }
            }));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.GenerationStoreFailed(_logger, e, Id);
            _inbox.TryWrite(new ActionInput(driver => driver.GenerationClaimFailed()));
        }
    }

    /// <summary>
    /// An operator's way back when a majority of the voters is lost for good (crashed, never coming
    /// back): the cluster takes no writes and never guesses by itself. Call this on one surviving member
    /// (the most up to date: <see cref="LastLogIndex"/>): it claims the next generation in the store and
    /// becomes its sole voter with its own log, all of it counting as committed (what the lost majority
    /// acknowledged but this node never received is lost; what this node holds but cannot know
    /// committed is applied in the new generation, after its hold-off and with its tokens, except
    /// other instances' lock requests, which those instances fail when they start over); the other
    /// survivors see the newer generation, drop their state and join it; new instances join as usual. Fencing tokens keep
    /// increasing (the generation is in their high bits); the node proposes nothing for three election
    /// timeouts (the generation fence: a leader of the old generation stops first) and grants nothing
    /// for a lock lease plus four, so every hold of the old generation has expired first.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting for the leadership of the new generation.</param>
    /// <returns>The new generation.</returns>
    /// <exception cref="InvalidOperationException">This node is not in elastic mode, holds no cluster state, knows a leader (the cluster is not lost), or the store holds a newer generation (join it instead).</exception>
    public async Task<long> ForceNewGenerationAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfStopped();
        if (GenerationStore is not { } store)
        {
            throw new InvalidOperationException($"Node '{Id}' has a fixed member list (Members or ClusterSize); only an elastic cluster has generations to force.");
        }

        if (LastLogIndex == 0)
        {
            throw new InvalidOperationException($"Node '{Id}' holds no cluster state (its log is empty); force a new generation from a surviving member.");
        }

        if (LeaderId is { } leader)
        {
            throw new InvalidOperationException($"Node '{Id}' knows a leader, '{leader}' (term {Term}): the cluster is not lost. A new generation is for a cluster that lost a majority of its voters for good.");
        }

        long current = GenerationId;
        long recorded = await store.ReadGenerationAsync(cancellationToken).ConfigureAwait(false);
        if (recorded != current && recorded != 0 && !GenerationIds.IsNewer(current, recorded))
        {
            throw new InvalidOperationException($"The store holds generation {GenerationIds.Describe(recorded)}, not older than node '{Id}''s {GenerationIds.Describe(current)}: that generation lives or is forming; this node joins it by itself.");
        }

        if (recorded != current)
        {
            // The store lost its value: restore it first, so the claim goes above this node's generation.
            await store.ConfirmGenerationAsync(current, cancellationToken).ConfigureAwait(false);
        }

        long next = GenerationIds.Next(current, Random.Shared);
        if (!await store.TryClaimGenerationAsync(current, next, cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"Node '{Id}' could not claim generation {GenerationIds.NumberOf(next)}: another node claimed it first; this node joins it by itself.");
        }

        var forced = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new ActionInput(
            driver =>
            {
                driver.ForceNewGeneration(next);
                forced.TrySetResult();
            },
            error => forced.TrySetException(error)));
        await forced.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        Log.GenerationForced(_logger, Id, GenerationIds.Describe(next), GenerationIds.Describe(current), LastLogIndex);
        await WaitForLeaderAsync(null, cancellationToken).ConfigureAwait(false);
        return GenerationIds.NumberOf(next);
    }

    /// <summary>
    /// A newer generation replaced this node's cluster: everything waiting fails, every hold and the
    /// leadership are lost, and the node starts over with empty state, as a newcomer to the new generation.
    /// </summary>
    private NodeDriver ResetForGeneration(NodeDriver old, long generation)
    {
        Log.GenerationSuperseded(_logger, Id, GenerationIds.Describe(generation), GenerationIds.Describe(old.Generation));
        return StartOver(generation, default, new InvalidOperationException(
            $"Node '{Id}' left its cluster (generation {GenerationIds.Describe(old.Generation)}): generation {GenerationIds.Describe(generation)} replaced it, and the old state is gone; retry."));
    }

    /// <summary>
    /// Elastic mode: this node was removed (its removal committed while it was paused or cut off): it
    /// starts over as a new incarnation of the same member id in the same generation, with its term and
    /// vote (so it never votes twice in a term) and no log, and asks to join again.
    /// </summary>
    private NodeDriver ResetForRemoval(NodeDriver old)
    {
        Log.RemovedStartingOver(_logger, Id, GenerationIds.Describe(old.Generation));
        return StartOver(old.Generation, new HardState(old.Core.Term, old.Core.VotedFor, 0), new InvalidOperationException(
            $"Node '{Id}' was removed from its cluster (it was not heard from for MemberTimeout); it joins again as a new incarnation; retry."), lifeConfigurationIndex: old.LifeConfigurationIndex);
    }

    /// <summary>
    /// Elastic mode: this learner heard no voter for the member timeout (every voter is gone): it drops
    /// its state and waits, as a newcomer, to join a live cluster or to found the next generation.
    /// </summary>
    private NodeDriver ResetOrphaned(NodeDriver old)
    {
        Log.OrphanedStartingOver(_logger, Id, GenerationIds.Describe(old.Generation), _options.MemberTimeout.TotalMilliseconds);
        return StartOver(old.Generation, default, new InvalidOperationException(
            $"Node '{Id}' lost its cluster (generation {GenerationIds.Describe(old.Generation)}): no voter was heard for MemberTimeout; retry once it has joined a cluster again."), live: false, lifeConfigurationIndex: old.LifeConfigurationIndex);
    }

    private NodeDriver StartOver(long generation, HardState hardState, Exception failure, bool live = true, long lifeConfigurationIndex = 0)
    {
        _leadership.Update(trusted: false);
        FailPending(failure);
        _incarnation = NodeIncarnations.Next(_time);
        _storage = new InMemoryRaftStorage();
        var driver = new NodeDriver(NodeDriverSettings.From(_options, _incarnation, _tickInterval, _channel is IEchoingChannel), new PersistedState(hardState, []), _sequences);
        driver.StartGeneration(generation, live);
        driver.StartOverAfter(lifeConfigurationIndex);
        _driver = driver;
        PublishStatus(driver);
        return driver;
    }
}
