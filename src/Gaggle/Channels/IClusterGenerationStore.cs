namespace Gaggle.Channels;

/// <summary>
/// Where an elastic cluster records its generation, the number of its life: a channel whose
/// transport can keep one small value that all nodes share (Redis: the key
/// <c>{prefix}:{cluster}:generation</c>) implements it. Elastic mode (neither
/// <see cref="GaggleOptions.Members"/> nor <see cref="GaggleOptions.ClusterSize"/> set) needs it.
/// </summary>
/// <remarks>
/// A missing value reads as 0. <see cref="TryClaimGenerationAsync"/> is a compare-and-set from the
/// generation a node saw to the next one, which is how exactly one of several nodes starting at once
/// forms the cluster; <see cref="TryReleaseClaimAsync"/> gives back a claim its claimant will not found
/// after all. A leader calls <see cref="ConfirmGenerationAsync"/> every half election timeout: it learns
/// that its generation is still the current one (without that it proposes nothing; see the README's
/// "generation fence") and restores a value the store lost (evicted, flushed, failed over).
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

    /// <summary>Sets the generation back to <paramref name="claimed"/> - 1 (none, when that is 0) if it is still <paramref name="claimed"/>: the caller claimed it and will not found it.</summary>
    /// <param name="claimed">The generation the caller's claim set.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>True when this call set it back; false when the recorded generation was no longer <paramref name="claimed"/>.</returns>
    ValueTask<bool> TryReleaseClaimAsync(long claimed, CancellationToken cancellationToken = default);

    /// <summary>Reads the recorded generation, and records <paramref name="generation"/> first if none or a lower one is recorded, in one atomic step.</summary>
    /// <param name="generation">A live cluster's generation.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The generation recorded before the call (0: none).</returns>
    ValueTask<long> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default);
}
