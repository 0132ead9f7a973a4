namespace Gaggle.Benchmarks.LockComparison;

/// <summary>
/// One column of the lock comparison: a way to take and give back a named mutex. Every implementation
/// waits with its own library's acquire-with-timeout API, so contended cells compare the libraries'
/// own waiting (busy-wait retries for the Redis locks, a FIFO queue for Gaggle).
/// </summary>
internal interface ILockUnderTest
{
    /// <summary>The JSON value of <c>implementation</c>, e.g. <c>raw_setnx_cad</c>.</summary>
    string Key { get; }

    /// <summary>The column heading of the markdown table.</summary>
    string Title { get; }

    /// <summary>Before each cell: whatever puts the implementation in a comparable state (a settled cluster, its current leader).</summary>
    Task PrepareAsync();

    /// <summary>
    /// Acquires <paramref name="name"/> for <paramref name="client"/>, waiting up to <paramref name="timeout"/>.
    /// </summary>
    /// <returns>The hold (dispose it to release), or null when it was not granted in time.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> ended the wait.</exception>
    Task<IAsyncDisposable?> AcquireAsync(int client, string name, TimeSpan timeout, CancellationToken cancellationToken);
}
