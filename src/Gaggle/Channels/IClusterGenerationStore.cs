namespace Gaggle.Channels;

/// <summary>
/// Where an elastic cluster records its generation, the id of its life: a channel whose transport can
/// keep one small value that all nodes share (Redis: the key <c>{prefix}:{cluster}:generation</c>)
/// implements it. Elastic mode (neither <see cref="GaggleOptions.Members"/> nor
/// <see cref="GaggleOptions.ClusterSize"/> set) needs it.
/// </summary>
/// <remarks>
/// <para>
/// A generation id is a non-negative integer below 2^52: its low 16 bits are the generation's number,
/// the bits above them a random tag drawn by its founder (so two generations founded with one number,
/// after the store lost its value while the first lived on unheard, are told apart). A missing value
/// reads as 0. A store compares ids exactly, and orders them by their numbers only.
/// </para>
/// <para>
/// <see cref="TryClaimGenerationAsync"/> is a compare-and-set from the id a node saw to the id of the
/// next generation, which is how exactly one of several nodes starting at once forms the cluster;
/// <see cref="TryReleaseClaimAsync"/> gives back a claim its claimant will not found after all. A
/// leader calls <see cref="ConfirmGenerationAsync"/> every half election timeout: it learns that its
/// generation is still the current one (without that it proposes nothing; see the README's "generation
/// fence"), restores a value the store lost (evicted, flushed, failed over), and learns how and how
/// long ago the value last changed: a leader waits out a change made less than a settle time ago, by
/// whichever node made it. The store records each change's kind and time (its own clock) beside the value.
/// </para>
/// </remarks>
public interface IClusterGenerationStore
{
    /// <summary>Reads the recorded generation id; 0 when none is recorded.</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The generation id.</returns>
    ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default);

    /// <summary>Sets the generation id to <paramref name="claimed"/> if it is still <paramref name="expected"/> (0: none recorded), recording the change as <see cref="GenerationChange.Claimed"/>.</summary>
    /// <param name="expected">The generation id the caller saw.</param>
    /// <param name="claimed">The id of the generation the caller founds: the next number, with its own tag.</param>
    /// <param name="cancellationToken">Cancels the claim.</param>
    /// <returns>True when this call set it; false when the recorded generation was no longer <paramref name="expected"/>.</returns>
    ValueTask<bool> TryClaimGenerationAsync(long expected, long claimed, CancellationToken cancellationToken = default);

    /// <summary>Sets the generation id back to <paramref name="expected"/> (none, when that is 0) if it is still <paramref name="claimed"/>: the caller claimed it and will not found it.</summary>
    /// <param name="claimed">The generation id the caller's claim set.</param>
    /// <param name="expected">The generation id the claim replaced.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>True when this call set it back; false when the recorded generation was no longer <paramref name="claimed"/>.</returns>
    ValueTask<bool> TryReleaseClaimAsync(long claimed, long expected, CancellationToken cancellationToken = default);

    /// <summary>
    /// Reads the recorded generation id, and records <paramref name="generation"/> first if none or one
    /// of a lower number is recorded (<see cref="GenerationChange.Restored"/>, <see cref="GenerationChange.Replaced"/>),
    /// in one atomic step; answers with how the value it leaves got there and how long ago.
    /// </summary>
    /// <param name="generation">A live cluster's generation id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The id recorded before the call, and the last change.</returns>
    ValueTask<GenerationConfirmation> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default);
}
