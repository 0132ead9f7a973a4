namespace Gaggle.Channels;

/// <summary>
/// Where an elastic cluster records its generation, the number of its life: a channel whose
/// transport can keep one small value that all nodes share (Redis: the key
/// <c>{prefix}:{cluster}:generation</c>) implements it. Elastic mode (neither
/// <see cref="GaggleOptions.Members"/> nor <see cref="GaggleOptions.ClusterSize"/> set) needs it.
/// </summary>
/// <remarks>
/// A missing value reads as 0. The value only goes up: <see cref="TryClaimGenerationAsync"/> is a
/// compare-and-set from the generation a node saw to the next one, which is how exactly one of several
/// nodes starting at once forms the cluster; <see cref="RaiseGenerationAsync"/> restores a value the
/// store lost (evicted, flushed, failed over) from a live leader's.
/// </remarks>
public interface IClusterGenerationStore
{
    /// <summary>Reads the recorded generation; 0 when none is recorded.</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The generation.</returns>
    ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default);

    /// <summary>Sets the generation to <paramref name="expected"/> + 1 if it is still <paramref name="expected"/> (0: none recorded).</summary>
    /// <param name="expected">The generation the caller saw.</param>
    /// <param name="cancellationToken">Cancels the claim.</param>
    /// <returns>True when this call set it; false when the recorded generation was no longer <paramref name="expected"/>.</returns>
    ValueTask<bool> TryClaimGenerationAsync(long expected, CancellationToken cancellationToken = default);

    /// <summary>Records <paramref name="generation"/> if none or a lower one is recorded.</summary>
    /// <param name="generation">A live cluster's generation.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>A task that completes when the value is written (or was already as high).</returns>
    ValueTask RaiseGenerationAsync(long generation, CancellationToken cancellationToken = default);
}
