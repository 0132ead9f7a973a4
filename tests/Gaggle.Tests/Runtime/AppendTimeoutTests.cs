using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>An append's timeout is the caller's: it holds while the node's loop is busy or stuck, and for any length the API accepts.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class AppendTimeoutTests
{
    /// <summary>In-memory storage whose writes can be held (a disk that stalls).</summary>
    private sealed class StallingStorage : IRaftStorage
    {
        private readonly InMemoryRaftStorage _inner = new();
        private volatile TaskCompletionSource? _gate;

        public void Stall() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Resume() => _gate?.TrySetResult();

        public ValueTask<PersistedState> LoadAsync(CancellationToken cancellationToken = default) => _inner.LoadAsync(cancellationToken);

        public async ValueTask SaveAsync(HardState? hardState, IReadOnlyList<LogEntry> entries, CancellationToken cancellationToken = default)
        {
            if (_gate is { } gate)
            {
                await gate.Task.ConfigureAwait(false);
            }

            await _inner.SaveAsync(hardState, entries, cancellationToken).ConfigureAwait(false);
        }

        public ValueTask SaveSnapshotAsync(RaftSnapshot snapshot, CancellationToken cancellationToken = default) => _inner.SaveSnapshotAsync(snapshot, cancellationToken);
    }

    private static async Task<(GaggleNode Node, StallingStorage Storage)> StartSingleAsync(Action<GaggleOptions>? configure = null)
    {
        var options = NodeCluster.FastOptions("a", ["a"]);
        configure?.Invoke(options);
        var storage = new StallingStorage();
        var node = new GaggleNode(options, new InMemoryNetwork(1).CreateChannel("a"), storage);
        await node.StartAsync();
        await Eventually.True(() => node.IsLeader, "the single node to lead");
        return (node, storage);
    }

    [Test]
    public async Task AnAppendTimesOutWhileTheLoopIsStuckOnAStalledDisk()
    {
        var (node, storage) = await StartSingleAsync();
        try
        {
            await node.AppendAsync(new byte[] { 1 }, TimeSpan.FromSeconds(10));
            storage.Stall();
            var stuck = node.AppendAsync(new byte[] { 2 }, TimeSpan.FromMilliseconds(100)); // the loop blocks persisting this one
            var wait = Task.Delay(TimeSpan.FromSeconds(5));
            Assert.That(await Task.WhenAny(stuck, wait), Is.SameAs(stuck), "the caller's 100 ms timeout holds although the loop is stuck");
            await Assert.ThrowsAsync<TimeoutException>(() => stuck);
        }
        finally
        {
            storage.Resume();
            await node.DisposeAsync();
        }
    }

    [Test]
    public async Task ALockHandleIsLostAtItsSafeDeadlineWhileTheLoopIsStuck()
    {
        var (node, storage) = await StartSingleAsync(options => options.LockLeaseDuration = TimeSpan.FromMilliseconds(600));
        GaggleLockHandle? handle = null;
        try
        {
            handle = await node.Locks.AcquireAsync("x", TimeSpan.FromSeconds(10));
            storage.Stall();
            // The renewals cannot commit: the hold may no longer be trusted 0.9 lease after the last renewal was sent.
            await Eventually.True(() => handle.HandleLostToken.IsCancellationRequested, "the handle to be marked lost", TimeSpan.FromSeconds(5));
        }
        finally
        {
            storage.Resume();
            if (handle is not null)
            {
                await handle.DisposeAsync();
            }

            await node.DisposeAsync();
        }
    }

    [Test]
    public async Task TimeSpanMaxValueIsAcceptedOrRefusedButNeverAnImmediateTimeout()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAsync("a");
        var lonely = cluster["a"]; // no quorum: nothing commits
        var append = lonely.AppendAsync(new byte[] { 1 }, TimeSpan.MaxValue);
        await Task.WhenAny(append, Task.Delay(TimeSpan.FromMilliseconds(500)));
        Assert.That(append.IsFaulted && append.Exception!.InnerException is TimeoutException, Is.False, "a timeout of TimeSpan.MaxValue does not expire at the next tick");
    }
}
