using Gaggle.Channels;
using Gaggle.Locks;

namespace Gaggle.Tests.Locks.Contract;

/// <summary>A hold as the lock contract sees it, whichever API took it.</summary>
public interface IContractHold : IAsyncDisposable
{
    long FencingToken { get; }

    CancellationToken HandleLostToken { get; }
}

/// <summary>One way of taking Gaggle locks on one node: the native API, or an adapter over it.</summary>
public interface ILockContractClient
{
    /// <summary>A hold, or null when none was granted within <paramref name="timeout"/> (zero: try once).</summary>
    Task<IContractHold?> TryAcquireAsync(string name, int maxCount, TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>A hold; <see cref="TimeoutException"/> when none was granted within <paramref name="timeout"/> (null: without limit).</summary>
    Task<IContractHold> AcquireAsync(string name, int maxCount, TimeSpan? timeout, CancellationToken cancellationToken = default);

    /// <summary>A read (or, with <paramref name="write"/>, write) hold of a reader-writer lock, or null when none was granted within <paramref name="timeout"/>.</summary>
    Task<IContractHold?> TryAcquireReaderWriterAsync(string name, bool write, TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>A read (or, with <paramref name="write"/>, write) hold of a reader-writer lock; <see cref="TimeoutException"/> when none was granted in time.</summary>
    Task<IContractHold> AcquireReaderWriterAsync(string name, bool write, TimeSpan? timeout, CancellationToken cancellationToken = default);
}

/// <summary>Gaggle's own lock API (<see cref="GaggleLocks"/>): mutexes for a count of 1, semaphores otherwise, and reader-writer locks.</summary>
public sealed class NativeLockClient(GaggleNode node) : ILockContractClient
{
    public async Task<IContractHold?> TryAcquireAsync(string name, int maxCount, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var hold = maxCount == 1
            ? await node.Locks.TryAcquireAsync(name, timeout, cancellationToken)
            : await node.Locks.TryAcquireSemaphoreAsync(name, maxCount, timeout, cancellationToken);
        return hold is null ? null : new Hold(hold);
    }

    public async Task<IContractHold> AcquireAsync(string name, int maxCount, TimeSpan? timeout, CancellationToken cancellationToken = default)
        => new Hold(maxCount == 1
            ? await node.Locks.AcquireAsync(name, timeout, cancellationToken)
            : await node.Locks.AcquireSemaphoreAsync(name, maxCount, timeout, cancellationToken));

    public async Task<IContractHold?> TryAcquireReaderWriterAsync(string name, bool write, TimeSpan timeout, CancellationToken cancellationToken = default)
        => await (write ? node.Locks.TryAcquireWriteAsync(name, timeout, cancellationToken) : node.Locks.TryAcquireReadAsync(name, timeout, cancellationToken)) is { } hold ? new Hold(hold) : null;

    public async Task<IContractHold> AcquireReaderWriterAsync(string name, bool write, TimeSpan? timeout, CancellationToken cancellationToken = default)
        => new Hold(await (write ? node.Locks.AcquireWriteAsync(name, timeout, cancellationToken) : node.Locks.AcquireReadAsync(name, timeout, cancellationToken)));

    private sealed class Hold(GaggleLockHandle handle) : IContractHold
    {
        public long FencingToken => handle.FencingToken;

        public CancellationToken HandleLostToken => handle.HandleLostToken;

        public ValueTask DisposeAsync() => handle.DisposeAsync();
    }
}

/// <summary>
/// Three nodes with a static member list on some channel, for the lock contract; <see cref="CutOff"/>
/// stops all traffic to and from one node, as the channel can.
/// </summary>
public sealed class LockContractCluster : IAsyncDisposable
{
    private readonly Action<string> _cutOff;

    private LockContractCluster(IReadOnlyList<GaggleNode> nodes, Action<string> cutOff)
    {
        Nodes = nodes;
        _cutOff = cutOff;
    }

    public IReadOnlyList<GaggleNode> Nodes { get; }

    /// <summary>Starts nodes a, b and c, each on the channel <paramref name="createChannel"/> makes for it.</summary>
    /// <param name="lease">The nodes' <see cref="GaggleOptions.LockLeaseDuration"/>.</param>
    /// <param name="createChannel">Makes the channel of one node.</param>
    /// <param name="cutOff">Cuts one node (by id) off from the others in both directions.</param>
    public static async Task<LockContractCluster> StartAsync(TimeSpan lease, Func<string, IChannel> createChannel, Action<string> cutOff)
    {
        string[] ids = ["a", "b", "c"];
        var nodes = ids.Select(id => new GaggleNode(
            new GaggleOptions
            {
                NodeId = id,
                Members = ids,
                HeartbeatInterval = TimeSpan.FromMilliseconds(20),
                ElectionTimeoutMin = TimeSpan.FromMilliseconds(150),
                ElectionTimeoutMax = TimeSpan.FromMilliseconds(300),
                LockLeaseDuration = lease,
            },
            createChannel(id))).ToList();
        var cluster = new LockContractCluster(nodes, cutOff);
        try
        {
            foreach (var node in nodes)
            {
                await node.StartAsync();
            }
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        return cluster;
    }

    /// <summary>Three nodes on a fresh in-memory network; a cut is <see cref="InMemoryNetwork.Isolate"/>.</summary>
    public static Task<LockContractCluster> StartInMemoryAsync(TimeSpan lease)
    {
        var network = new InMemoryNetwork(1);
        return StartAsync(lease, network.CreateChannel, network.Isolate);
    }

    /// <summary>Waits until every node follows one leader, and returns it.</summary>
    public async Task<GaggleNode> WaitForLeaderAsync()
    {
        GaggleNode? leader = null;
        await LockContractTests.UntilAsync(
            () =>
            {
                var leaders = Nodes.Where(n => n.IsLeader).ToList();
                leader = leaders.Count == 1 && Nodes.All(n => n.LeaderId == leaders[0].Id && n.Term == leaders[0].Term) ? leaders[0] : null;
                return Task.FromResult(leader is not null);
            },
            "every node to follow one leader");
        return leader!;
    }

    public void CutOff(string nodeId) => _cutOff(nodeId);

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }
    }
}
