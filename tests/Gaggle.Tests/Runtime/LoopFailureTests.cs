using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// A node whose loop fails (here: its storage) stops, and nobody is left waiting for a pass that
/// never comes; nor after it is disposed. The failing write is held until the test lets it fail, so
/// what is queued or waiting at that moment is known.
/// </summary>
[TestFixture]
public sealed class LoopFailureTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>Works until <see cref="Failing"/>; then holds the next write until <see cref="Fail"/> and fails it.</summary>
    private sealed class SwitchableStorage : IRaftStorage
    {
        private readonly InMemoryRaftStorage _inner = new();

        public volatile bool Failing;

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Fail { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ValueTask<PersistedState> LoadAsync(CancellationToken cancellationToken = default) => _inner.LoadAsync(cancellationToken);

        public async ValueTask SaveAsync(HardState? hardState, IReadOnlyList<LogEntry> entries, CancellationToken cancellationToken = default)
        {
            if (!Failing)
            {
                await _inner.SaveAsync(hardState, entries, cancellationToken);
                return;
            }

            Entered.TrySetResult();
            await Fail.Task.ConfigureAwait(false);
            throw new IOException("disk on fire");
        }

        public ValueTask SaveSnapshotAsync(RaftSnapshot snapshot, CancellationToken cancellationToken = default) => _inner.SaveSnapshotAsync(snapshot, cancellationToken);
    }

    private static GaggleNode Node(IRaftStorage storage) => new(
        new GaggleOptions { NodeId = "a", Members = ["a"], HeartbeatInterval = TimeSpan.FromMilliseconds(5), ElectionTimeoutMin = TimeSpan.FromMilliseconds(20), ElectionTimeoutMax = TimeSpan.FromMilliseconds(30) },
        new InMemoryNetwork(1).CreateChannel("a"),
        storage);

    private static async Task AssertFatal(Task waiting)
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await waiting.WaitAsync(Deadline));
        Assert.That(error!.Message, Does.Contain("'a' stopped after a fatal error: disk on fire"));
    }

    /// <summary>Lets the next write fail, from an append that starts it; returns once the node stopped.</summary>
    private static async Task FailTheLoopAsync(GaggleNode node, SwitchableStorage storage)
    {
        storage.Failing = true;
        var append = node.AppendAsync(new byte[] { 1 });
        await storage.Entered.Task.WaitAsync(Deadline);
        storage.Fail.SetResult();
        await AssertFatal(append);
    }

    /// <summary>A started node whose loop is inside its first pass, holding the first write (the campaign's) until <see cref="SwitchableStorage.Fail"/>.</summary>
    private static async Task<(GaggleNode Node, SwitchableStorage Storage)> StalledAtFirstWriteAsync()
    {
        var storage = new SwitchableStorage { Failing = true };
        var node = Node(storage);
        await node.StartAsync();
        await storage.Entered.Task.WaitAsync(Deadline);
        return (node, storage);
    }

    /// <summary>Waits until lock <paramref name="name"/> has a request queued behind its holder.</summary>
    private static async Task UntilQueuedAsync(GaggleNode node, string name)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while ((await node.Locks.InspectAsync(name, Deadline)).QueueLength == 0)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"no request queued on '{name}'");
            await Task.Delay(5);
        }
    }

    [Test]
    public async Task ReadsQueuedBehindAPassThatFailsGetTheFatalErrorInsteadOfWaitingForever()
    {
        var (node, storage) = await StalledAtFirstWriteAsync();
        await using var disposing = node;

        // The loop is inside a pass, awaiting the write: these wait in its inbox.
        var log = node.GetLogAsync();
        var peek = node.PeekLockAsync("orders", CancellationToken.None);
        storage.Fail.SetResult();

        await AssertFatal(log);
        await AssertFatal(peek);
        var later = await Assert.ThrowsAsync<InvalidOperationException>(() => node.GetLogAsync());
        Assert.That(later!.Message, Does.Contain("disk on fire"), "a read after the failure gets the fatal error too");
    }

    [Test]
    public async Task A_log_read_from_a_stopped_node_fails_in_its_task_as_from_any_async_API()
    {
        var node = Node(new SwitchableStorage());
        await node.StartAsync();
        await node.DisposeAsync();

        Task<IReadOnlyList<GaggleLogEntry>>? read = null;
        Assert.DoesNotThrow(() => read = node.GetLogAsync());
        Assert.That(async () => await read!, Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task A_leader_whose_loop_failed_no_longer_trusts_its_leadership()
    {
        var storage = new SwitchableStorage();
        await using var node = Node(storage);
        await node.StartAsync();
        var token = await node.Leadership.WaitForLeadershipAsync().WaitAsync(Deadline);

        await FailTheLoopAsync(node, storage);

        // No pass renews it any more, and the other nodes elect another leader: two would act as one.
        Assert.That(node.Leadership.IsLeader, Is.False);
        await Eventually.True(() => token.IsCancellationRequested, "the leadership token cancelled (on the thread pool)");

        // Nor does it claim to lead, or to know a leader (the leader gauge and health checks read these).
        Assert.That((node.IsLeader, node.Role, node.LeaderId), Is.EqualTo((false, RaftRole.Follower, (string?)null)));
        Assert.That(node.FatalError?.Message, Does.Contain("'a' stopped after a fatal error: disk on fire"));
    }

    [Test]
    public async Task A_disposed_leader_neither_claims_leadership_nor_reports_a_fatal_error()
    {
        var node = Node(new SwitchableStorage());
        await node.StartAsync();
        await node.WaitForLeaderAsync(Deadline);
        Assert.That(node.IsLeader, Is.True);

        await node.DisposeAsync();

        Assert.That((node.IsLeader, node.Role, node.LeaderId), Is.EqualTo((false, RaftRole.Follower, (string?)null)));
        Assert.That(node.FatalError, Is.Null, "an orderly stop is no failure");
    }

    [Test]
    public async Task A_leader_wait_without_a_timeout_gets_the_fatal_error()
    {
        // The first write (the campaign's) stalls, so no leader is known yet; then it fails.
        var (node, storage) = await StalledAtFirstWriteAsync();
        await using var disposing = node;
        var waiting = node.WaitForLeaderAsync();
        storage.Fail.SetResult();

        await AssertFatal(waiting);
    }

    [Test]
    public async Task A_leader_wait_without_a_timeout_ends_when_the_node_is_disposed()
    {
        // One of three members: no leader can be elected.
        var node = new GaggleNode(new GaggleOptions { NodeId = "a", Members = ["a", "b", "c"] }, new InMemoryNetwork(1).CreateChannel("a"), new InMemoryRaftStorage());
        await node.StartAsync();
        var waiting = node.WaitForLeaderAsync();

        await node.DisposeAsync();

        Assert.That(async () => await waiting.WaitAsync(Deadline), Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task A_queued_lock_request_gets_the_fatal_error()
    {
        var storage = new SwitchableStorage();
        await using var node = Node(storage);
        await node.StartAsync();
        await node.WaitForLeaderAsync(Deadline);
        await using var held = await node.Locks.AcquireAsync("orders", Deadline);
        var queued = node.Locks.AcquireAsync("orders");
        await UntilQueuedAsync(node, "orders");

        await FailTheLoopAsync(node, storage);

        await AssertFatal(queued);
    }

    [Test]
    public async Task A_queued_lock_request_ends_when_the_node_is_disposed()
    {
        var node = Node(new SwitchableStorage());
        await node.StartAsync();
        await node.WaitForLeaderAsync(Deadline);
        var held = await node.Locks.AcquireAsync("orders", Deadline);
        var queued = node.Locks.AcquireAsync("orders");
        await UntilQueuedAsync(node, "orders");

        await node.DisposeAsync();

        Assert.That(async () => await queued.WaitAsync(Deadline), Throws.InstanceOf<ObjectDisposedException>());
        await held!.DisposeAsync();
    }
}
