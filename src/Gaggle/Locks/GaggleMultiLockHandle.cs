namespace Gaggle.Locks;

/// <summary>
/// The holds of a multi-lock acquisition (<see cref="GaggleLocks.AcquireAllAsync"/>): all granted by
/// one log entry, one <see cref="GaggleLockHandle"/> per lock, each with its own fencing token and
/// lease renewals. Dispose it to release them all (idempotent).
/// </summary>
/// <remarks>
/// Every token was granted by the same entry, so all of them carry its log index. Each hold can end on
/// its own (its lease, or its handle disposed alone); <see cref="HandleLostToken"/> is cancelled when
/// any of them can no longer be trusted, as the set is then no longer held as a whole.
/// </remarks>
public sealed class GaggleMultiLockHandle : IAsyncDisposable
{
    private readonly CancellationTokenSource _lost;
    private int _disposed;

    internal GaggleMultiLockHandle(IReadOnlyList<GaggleLockHandle> holds)
    {
        Holds = holds;
        _lost = CancellationTokenSource.CreateLinkedTokenSource([.. holds.Select(h => h.HandleLostToken)]);
    }

    /// <summary>The holds, one per lock, in the order the locks were asked for.</summary>
    public IReadOnlyList<GaggleLockHandle> Holds { get; }

    /// <summary>Cancelled when any of the holds can no longer be trusted (see <see cref="GaggleLockHandle.HandleLostToken"/>).</summary>
    public CancellationToken HandleLostToken => _lost.Token;

    /// <summary>The hold of the lock <paramref name="name"/>.</summary>
    /// <param name="name">A lock of this acquisition.</param>
    /// <returns>Its hold.</returns>
    /// <exception cref="KeyNotFoundException">The acquisition did not take <paramref name="name"/>.</exception>
    public GaggleLockHandle this[string name]
    {
        get
        {
            foreach (var hold in Holds)
            {
                if (hold.Name == name)
                {
                    return hold;
                }
            }

            throw new KeyNotFoundException($"The lock '{name}' is not one of this acquisition's: {string.Join(", ", Holds.Select(h => $"'{h.Name}'"))}.");
        }
    }

    /// <summary>Releases every hold (best effort: a release that cannot be committed leaves the hold to its lease). Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        // Each hold's lost token fires as it is released, and with it this one (not disposed: it stays readable).
        await Task.WhenAll(Holds.Select(h => h.DisposeAsync().AsTask())).ConfigureAwait(false);
    }
}
