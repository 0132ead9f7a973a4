namespace Gaggle.Benchmarks.LockComparison;

/// <summary>
/// Gaggle's locks on the benchmark's cluster (default options), waiting in FIFO order. With
/// <c>leaderOnly</c> every client calls the leader; otherwise client i calls node i mod N, the
/// followers first, so a single client runs on a follower (a follower forwards each request to the leader).
/// </summary>
internal sealed class GaggleLocksUnderTest(BenchCluster cluster, bool leaderOnly) : ILockUnderTest
{
    private static readonly TimeSpan LeaderTimeout = TimeSpan.FromSeconds(10);

    private GaggleNode[] _nodes = [];

    public string Key => leaderOnly ? "gaggle_leader" : "gaggle_spread";

    public string Title => leaderOnly ? "Gaggle, leader only" : "Gaggle, spread";

    /// <summary>Waits until the previous cell's entries are applied everywhere, then finds the leader again (it can move on a starved machine).</summary>
    public async Task PrepareAsync()
    {
        await cluster.SettleAsync().ConfigureAwait(false);
        var leader = await cluster.AgreedLeaderAsync(LeaderTimeout, previousTerm: 0).ConfigureAwait(false);
        _nodes = leaderOnly ? [leader] : [.. cluster.Running.Where(n => n != leader), leader];
    }

    public async Task<IAsyncDisposable?> AcquireAsync(int client, string name, TimeSpan timeout, CancellationToken cancellationToken)
        => await _nodes[client % _nodes.Length].Locks.TryAcquireAsync(name, timeout, cancellationToken).ConfigureAwait(false);
}
