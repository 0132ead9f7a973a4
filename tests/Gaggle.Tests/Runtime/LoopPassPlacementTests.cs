using System.Collections.Concurrent;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// Where the node's loop makes its passes: an application's append to an idle node is handled and sent
/// on the caller's own thread (no hand-off to a pool thread); never when another append of the node's
/// callers is waiting (then inputs queue and go out as one batch), and never when passes run
/// application code (event handlers, state machines). The clock is manual: nothing ticks meanwhile.
/// </summary>
[TestFixture]
public sealed class LoopPassPlacementTests
{
    private static readonly byte[] Payload = [1, 2, 3];

    [Test]
    public async Task AnAppendToAnIdleLeaderGoesOutOnTheCallersThread()
    {
        var sends = new ConcurrentQueue<Send>();
        await using var cluster = await StartAsync(sends);
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);

        var (thread, append) = AppendOnThreadOfItsOwn(leader);
        Assert.That(sends.Where(s => s.From == leader.Id && s.Type == MessageType.Append).Select(s => s.Thread), Does.Contain(thread),
            "the leader's AppendEntries left from the caller's thread, before AppendAsync returned");
        await cluster.AdvanceUntilAsync(() => append.IsCompleted, "the append to commit");
        Assert.That(await append, Is.GreaterThan(0));
    }

    [Test]
    public async Task WhileAnotherAppendWaitsTheCallerOnlyQueuesAndThePoolSendsBoth()
    {
        var sends = new ConcurrentQueue<Send>();
        await using var cluster = await StartAsync(sends);
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        foreach (var follower in cluster.Nodes.Keys.Where(id => id != leader.Id))
        {
            // The first append cannot commit yet, so it is still waiting when the second comes.
            cluster.Network.Isolate(follower);
        }

        var (first, firstAppend) = AppendOnThreadOfItsOwn(leader);
        var (second, secondAppend) = AppendOnThreadOfItsOwn(leader);
        await Eventually.True(() => sends.Count(s => s.From == leader.Id && s.Type == MessageType.Append) >= 4, "both appends sent to both followers");
        var appendThreads = sends.Where(s => s.From == leader.Id && s.Type == MessageType.Append).Select(s => s.Thread).ToList();
        Assert.That(appendThreads, Does.Contain(first), "the first, on an idle node, went out on its caller's thread");
        Assert.That(appendThreads, Does.Not.Contain(second), "the second queued for the thread pool's pass");

        cluster.Network.Heal();
        var concurrentAt = cluster.Time.GetUtcNow();
        await cluster.AdvanceUntilAsync(() => firstAppend.IsCompleted && secondAppend.IsCompleted, "both appends to commit");

        // Alone again, but just after two waited at once: a node under load of several callers meets
        // such moments too, and a pass on a caller's thread there would split its batches.
        Assert.That(cluster.Time.GetUtcNow() - concurrentAt, Is.LessThan(AppendCallers.ConcurrencyMemory), "the commits came within the memory");
        var (third, thirdAppend) = AppendOnThreadOfItsOwn(leader);
        await cluster.AdvanceUntilAsync(() => thirdAppend.IsCompleted, "the third append to commit");
        Assert.That(sends.Where(s => s.From == leader.Id && s.Type == MessageType.Append).Select(s => s.Thread), Does.Not.Contain(third),
            "right after two appends waited at once, a lone one still queues for the thread pool");

        await cluster.AdvanceAsync(AppendCallers.ConcurrencyMemory);
        var (fourth, fourthAppend) = AppendOnThreadOfItsOwn(leader);
        Assert.That(sends.Where(s => s.From == leader.Id && s.Type == MessageType.Append).Select(s => s.Thread), Does.Contain(fourth),
            "once the memory ran out, a lone append goes out on its caller's thread again");
        await cluster.AdvanceUntilAsync(() => fourthAppend.IsCompleted, "the fourth append to commit");
    }

    [Test]
    public async Task WithAnAppendedHandlerNoPassRunsOnTheCallersThread()
    {
        var sends = new ConcurrentQueue<Send>();
        await using var cluster = await StartAsync(sends);
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var handlerThreads = new ConcurrentQueue<int>();
        leader.Appended += (_, _) => handlerThreads.Enqueue(Environment.CurrentManagedThreadId);

        var (thread, append) = AppendOnThreadOfItsOwn(leader);
        await cluster.AdvanceUntilAsync(() => append.IsCompleted && !handlerThreads.IsEmpty, "the append to commit and its handler to run");
        Assert.That(handlerThreads, Does.Not.Contain(thread), "the application's handler never runs inside its own AppendAsync call");
        Assert.That(sends.Where(s => s.From == leader.Id).Select(s => s.Thread), Does.Not.Contain(thread), "nor does the pass that sends the entry");
    }

    [Test]
    public async Task ACallerBlockingOnTheLeadersRpcInASynchronizationContextOfItsOwnGetsItsResult()
    {
        // A UI-like thread: what is posted to its context runs only when the thread is free again.
        var sends = new ConcurrentQueue<Send>();
        await using var cluster = await StartAsync(sends, options => options.RpcHandlers["echo"] = (args, _) => ValueTask.FromResult(args.ToArray()));
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var context = new HeldSynchronizationContext();
        bool answered = false;
        var thread = new Thread(() =>
        {
            SynchronizationContext.SetSynchronizationContext(context);
            var call = leader.DispatchOnLeaderAsync("echo", Payload);
            answered = call.Wait(TimeSpan.FromSeconds(3));
            context.RunHeld();
        });
        thread.Start();
        thread.Join();
        Assert.That(answered, Is.True, "the handler ran off the blocked caller's context (it never belonged to the caller's call)");
        Assert.That(context.Posted, Is.Zero, "nothing of the node's was posted to the caller's context");
    }

    [Test]
    public async Task WithAStorageOtherThanMemoryNoPassRunsOnTheCallersThread()
    {
        // A storage that writes to a disk could hold the caller's thread through a stalled write.
        var storage = new ThreadRecordingStorage();
        var network = new InMemoryNetwork(1);
        await using var node = new GaggleNode(new GaggleOptions { NodeId = "a", Members = ["a"] }, network.CreateChannel("a"), storage);
        await node.StartAsync();
        await node.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        for (int i = 0; i < 5; i++)
        {
            var (thread, append) = AppendOnThreadOfItsOwn(node);
            await append;
            Assert.That(storage.SaveThreads, Does.Not.Contain(thread), $"append {i}: the caller's thread never writes to the storage");
        }
    }

    private static async Task<ManualTimeCluster> StartAsync(ConcurrentQueue<Send> sends, Action<GaggleOptions>? configure = null)
    {
        var cluster = new ManualTimeCluster(["a", "b", "c"], configure) { WrapChannel = (id, channel) => new ThreadRecordingChannel(channel, sends) };
        foreach (var id in new[] { "a", "b", "c" })
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Count(n => n.IsLeader) == 1 && cluster.Nodes.Values.All(n => n.LeaderId is not null), "a leader known to all");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100));
        return cluster;
    }

    /// <summary>Calls AppendAsync on a thread of its own (not the pool's) and returns that thread's id and the append.</summary>
    private static (int Thread, Task<long> Append) AppendOnThreadOfItsOwn(GaggleNode node)
    {
        int id = 0;
        Task<long>? append = null;
        var thread = new Thread(() =>
        {
            id = Environment.CurrentManagedThreadId;
            append = node.AppendAsync(Payload);
        });
        thread.Start();
        thread.Join();
        return (id, append!);
    }

    /// <summary>A single-threaded context (a UI thread's): callbacks posted to it wait until its thread runs them.</summary>
    private sealed class HeldSynchronizationContext : SynchronizationContext
    {
        private readonly ConcurrentQueue<(SendOrPostCallback Callback, object? State)> _held = new();
        private int _posted;

        public int Posted => Volatile.Read(ref _posted);

        public override void Post(SendOrPostCallback d, object? state)
        {
            Interlocked.Increment(ref _posted);
            _held.Enqueue((d, state));
        }

        public void RunHeld()
        {
            while (_held.TryDequeue(out var held))
            {
                held.Callback(held.State);
            }
        }
    }

    private readonly record struct Send(string From, int Thread, MessageType? Type);

    private sealed class ThreadRecordingChannel(IChannel inner, ConcurrentQueue<Send> sends) : IChannel
    {
        public string NodeId => inner.NodeId;

        public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default) => inner.ConnectAsync(receiver, cancellationToken);

        public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

        public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            Record(payload, to);
            return inner.SendAsync(to, payload, cancellationToken);
        }

        public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            Record(payload, "*");
            return inner.BroadcastAsync(payload, cancellationToken);
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();

        private void Record(ReadOnlyMemory<byte> payload, string to)
            => sends.Enqueue(new Send(NodeId, Environment.CurrentManagedThreadId, WireCodec.Decode(payload, NodeId, to) is RaftWireMessage raft ? raft.Message.Type : null));
    }

    private sealed class ThreadRecordingStorage : IRaftStorage
    {
        private readonly InMemoryRaftStorage _inner = new();

        public ConcurrentQueue<int> SaveThreads { get; } = new();

        public ValueTask<PersistedState> LoadAsync(CancellationToken cancellationToken = default) => _inner.LoadAsync(cancellationToken);

        public ValueTask SaveAsync(HardState? hardState, IReadOnlyList<LogEntry> entries, CancellationToken cancellationToken = default)
        {
            SaveThreads.Enqueue(Environment.CurrentManagedThreadId);
            return _inner.SaveAsync(hardState, entries, cancellationToken);
        }

        public ValueTask SaveSnapshotAsync(RaftSnapshot snapshot, CancellationToken cancellationToken = default) => _inner.SaveSnapshotAsync(snapshot, cancellationToken);
    }
}
