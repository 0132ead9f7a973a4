using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

[TestFixture]
public sealed class StorageFailureTests
{
    private sealed class FailingStorage : IRaftStorage
    {
        public ValueTask<PersistedState> LoadAsync(CancellationToken cancellationToken = default)
            => ValueTask.FromResult(new PersistedState(HardState.Empty, []));

        public ValueTask SaveAsync(HardState? hardState, IReadOnlyList<LogEntry> entries, CancellationToken cancellationToken = default)
            => throw new IOException("disk on fire");

        public ValueTask SaveSnapshotAsync(RaftSnapshot snapshot, CancellationToken cancellationToken = default)
            => throw new IOException("disk on fire");
    }

    [Test]
    public async Task AStorageFailureStopsTheNodeAndFailsPendingWorkClearly()
    {
        var network = new InMemoryNetwork(1);
        var channel = network.CreateChannel("a");
        var node = new GaggleNode(new GaggleOptions { NodeId = "a", Members = ["a"], HeartbeatInterval = TimeSpan.FromMilliseconds(5), ElectionTimeoutMin = TimeSpan.FromMilliseconds(20), ElectionTimeoutMax = TimeSpan.FromMilliseconds(30) }, channel, new FailingStorage());
        await node.StartAsync();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => node.AppendAsync(new byte[] { 1 }, TimeSpan.FromSeconds(10)));
        Assert.That(error!.Message, Does.Contain("'a' stopped after a fatal error: disk on fire"));
        var later = await Assert.ThrowsAsync<InvalidOperationException>(() => node.AppendAsync(new byte[] { 1 }));
        Assert.That(later!.Message, Does.Contain("disk on fire"));
        await node.DisposeAsync();
        Assert.That(channel.IsConnected, Is.False, "the channel is released even after the loop failed");
    }
}
