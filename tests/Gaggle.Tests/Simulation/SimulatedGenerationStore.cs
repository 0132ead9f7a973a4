using Gaggle.Channels;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The generation store of an elastic run (<see cref="IClusterGenerationStore"/>): one value all
/// nodes share, kept by the shipped <see cref="GenerationRegister"/> (what the Redis scripts do) on the
/// simulation's real time. A claim is a compare-and-set from one id to the next, a release sets a claim
/// back, a confirmation reads the value (and its last change) and writes the leader's if none or a lower
/// number, a read reads.
/// As in GaggleNode, every operation runs off the node's loop: it reaches the store after a random
/// delay and its result reaches the node's driver as an input (see Simulator.Elastic.cs). An
/// operation may fail (the store was unreachable), and the store may lose its value (evicted,
/// flushed, failed over): it reads 0 again.
/// </summary>
internal sealed class SimulatedGenerationStore
{
    private readonly List<StoreOperation> _pending = [];
    private long _sequence;

    private readonly GenerationRegister _register = new();

    /// <summary>The recorded generation id; 0 when none is.</summary>
    public long Value => _register.Id;

    /// <summary>What the store did in a run.</summary>
    public GenerationStoreStats Stats { get; } = new();

    public int PendingCount => _pending.Count;

    /// <summary>The time the next operation reaches the store, or long.MaxValue.</summary>
    public long NextDueUs => _pending.Count == 0 ? long.MaxValue : _pending.Min(o => o.DueUs);

    /// <summary>Whether a claim of <paramref name="node"/> is on its way to the store.</summary>
    public bool ClaimPendingBy(SimulatedNode node) => _pending.Exists(o => o.Kind == StoreOperationKind.Claim && o.Node == node);

    /// <summary>Queues <paramref name="operation"/> to reach the store at <paramref name="dueUs"/> (real time).</summary>
    public void Schedule(long dueUs, StoreOperation operation) => _pending.Add(operation with { DueUs = dueUs, Order = ++_sequence });

    /// <summary>Removes and returns the operation due first at or before <paramref name="nowUs"/> (in the order they were queued among equals), or null.</summary>
    public StoreOperation? TakeDue(long nowUs)
    {
        int best = -1;
        for (int i = 0; i < _pending.Count; i++)
        {
            if (_pending[i].DueUs <= nowUs && (best < 0 || (_pending[i].DueUs, _pending[i].Order).CompareTo((_pending[best].DueUs, _pending[best].Order)) < 0))
            {
                best = i;
            }
        }

        if (best < 0)
        {
            return null;
        }

        var operation = _pending[best];
        _pending.RemoveAt(best);
        return operation;
    }

    /// <summary>Sets the value to <paramref name="claimed"/> if it is still <paramref name="expected"/>; true when it did.</summary>
    public bool TryClaim(long expected, long claimed, long nowUs)
    {
        Stats.Claims++;
        if (!_register.TryClaim(expected, claimed, nowUs))
        {
            return false;
        }

        Stats.ClaimsWon++;
        return true;
    }

    /// <summary>Sets the value back to <paramref name="expected"/> if it is still <paramref name="claimed"/>; true when it did.</summary>
    public bool TryRelease(long claimed, long expected, long nowUs)
    {
        if (!_register.TryRelease(claimed, expected, nowUs))
        {
            return false;
        }

        Stats.Released++;
        return true;
    }

    /// <summary>Returns the value and its last change, after recording <paramref name="generation"/> if none or a lower number was recorded.</summary>
    public GenerationConfirmation Confirm(long generation, long nowUs)
    {
        Stats.Confirms++;
        var answer = _register.Confirm(generation, nowUs);
        if (answer.Recorded != _register.Id)
        {
            Stats.Restored++;
        }

        return answer;
    }

    /// <summary>The store lost its value.</summary>
    public void Lose()
    {
        _register.Lose();
        Stats.Lost++;
    }
}

/// <summary>What an operation on the generation store is.</summary>
internal enum StoreOperationKind
{
    /// <summary>The compare-and-set of a claim (then, if lost, the read of the value that won).</summary>
    Claim,

    /// <summary>A lost claim's read of the recorded value.</summary>
    ReadAfterLostClaim,

    /// <summary>A leader's confirmation (which restores a lost or lower value).</summary>
    Confirm,

    /// <summary>A claimant gives its claim back.</summary>
    Release,

    /// <summary>A read of a node waiting to found, only to learn whether the store answers (a failure starts its founding wait over).</summary>
    Probe,

    /// <summary>A read after a generation of the node's number but another tag spoke: the one the store holds lives.</summary>
    CheckRival,
}

/// <summary>An operation of <paramref name="Node"/>'s process on the store: a claim from <paramref name="Generation"/>, the read after it, a confirmation or a release of it.</summary>
internal sealed record StoreOperation(StoreOperationKind Kind, SimulatedNode Node, long Generation)
{
    /// <summary>A claim's (and the read after it) claimed id; a release's id to set back.</summary>
    public long Other { get; init; }

    /// <summary>When it reaches the store (real time).</summary>
    public long DueUs { get; init; }

    /// <summary>A confirmation's send time on the node's clock.</summary>
    public long SentAtUs { get; init; }

    /// <summary>Queue order among operations due at once.</summary>
    public long Order { get; init; }

    public override string ToString() => $"{Kind} {GenerationIds.Describe(Generation)}{(Other == 0 ? "" : $" / {GenerationIds.Describe(Other)}")} by {Node.Id}";
}

/// <summary>What the generation store did in a run.</summary>
internal sealed class GenerationStoreStats
{
    public int Claims { get; set; }

    public int ClaimsWon { get; set; }

    public int Confirms { get; set; }

    /// <summary>Confirmations that put a lost value back (or moved it up).</summary>
    public int Restored { get; set; }

    /// <summary>Claims given back by a claimant that did not found.</summary>
    public int Released { get; set; }

    /// <summary>Operations that failed (unreachable or failing store).</summary>
    public int Failed { get; set; }

    /// <summary>Times the store lost its value.</summary>
    public int Lost { get; set; }
}
