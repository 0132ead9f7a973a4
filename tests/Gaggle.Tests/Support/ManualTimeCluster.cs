using System.Diagnostics;
using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Runtime;
using Gaggle.Storage;

namespace Gaggle.Tests.Support;

/// <summary>
/// <see cref="GaggleNode"/>s over an in-memory network on one <see cref="ManualTimeProvider"/>: their
/// ticks, lease clocks and lock timers move only when the test advances the clock, so a lease lasts
/// exactly as long as the test says, whatever the machine's load.
/// </summary>
internal sealed class ManualTimeCluster(string[] ids, Action<GaggleOptions>? configure = null) : IAsyncDisposable
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(4);
    private readonly Dictionary<string, InMemoryRaftStorage> _storage = [];

    public ManualTimeProvider Time { get; } = new();

    public Dictionary<string, GaggleNode> Nodes { get; } = [];

    public InMemoryNetwork Network => _network ??= new InMemoryNetwork(1, Time);

    private InMemoryNetwork? _network;

    public GaggleNode this[string id] => Nodes[id];

    /// <summary>The nodes' logging, when set.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>When set, the clock the nodes are given instead of <see cref="Time"/> (one that wraps it, to watch what they do with it).</summary>
    public TimeProvider? NodeClock { get; set; }

    /// <summary>When set, wraps each node's channel (to watch what it sends).</summary>
    public Func<string, IChannel, IChannel>? WrapChannel { get; set; }

    /// <summary>Starts node <paramref name="id"/> (one of the seed ids, or a newcomer); <paramref name="configureNode"/> adjusts its options after the cluster's.</summary>
    public async Task<GaggleNode> StartAsync(string id, Action<GaggleOptions>? configureNode = null)
    {
        var options = NodeCluster.FastOptions(id, ids);
        int seat = Array.IndexOf(ids, id);
        options.RandomSeed = seat >= 0 ? seat + 1 : 1000 + id.Sum(c => c);
        configure?.Invoke(options);
        configureNode?.Invoke(options);
        if (!_storage.TryGetValue(id, out var storage))
        {
            // Kept across restarts of the node in this cluster: durable as far as the node can tell.
            storage = new InMemoryRaftStorage { SurvivesRestart = true };
            _storage[id] = storage;
        }

        var channel = Network.CreateChannel(id);
        var node = new GaggleNode(options, WrapChannel?.Invoke(id, channel) ?? channel, storage, NodeClock ?? Time, LoggerFactory);
        Nodes[id] = node;
        await node.StartAsync();
        return node;
    }

    /// <summary>
    /// Starts an elastic node (no member list) named <paramref name="name"/>; its member id is the name
    /// plus a suffix counting the elastic nodes started, so runs are repeatable. Returns the node (keyed by its member id).
    /// </summary>
    public async Task<GaggleNode> StartElasticAsync(string name, Action<GaggleOptions>? configureNode = null)
    {
        var options = NodeCluster.FastOptions(name, []);
        options.MemberTimeout = TimeSpan.FromMilliseconds(1200);
        options.RandomSeed = ++_elasticStarted;
        configure?.Invoke(options);
        configureNode?.Invoke(options);
        string memberId = $"{name}.{_elasticStarted:d8}";
        var channel = Network.CreateChannel(memberId);
        var node = new GaggleNode(options, WrapChannel?.Invoke(memberId, channel) ?? channel, null, NodeClock ?? Time, LoggerFactory);
        Nodes[memberId] = node;
        await node.StartAsync();
        return node;
    }

    private int _elasticStarted;

    /// <summary>
    /// Stops node <paramref name="id"/> gracefully. A node releases its holds as it stops, which takes
    /// a commit: the clock moves on, one tick at a time, while it stops, its loop and the others' catching up in between.
    /// </summary>
    public async Task StopAsync(string id)
    {
        if (!Nodes.Remove(id, out var node))
        {
            return;
        }

        var stopping = node.DisposeAsync().AsTask();
        var watch = Stopwatch.StartNew();
        while (!stopping.IsCompleted)
        {
            if (watch.Elapsed > Eventually.DefaultDeadline)
            {
                throw new TimeoutException($"Gave up after {Eventually.DefaultDeadline.TotalSeconds:0} s waiting for node '{id}' to stop.");
            }

            try
            {
                await node.GetLogAsync();
            }
            catch (ObjectDisposedException)
            {
                // Its loop stopped taking inputs: what is left of its stop takes no time, so the clock
                // stays (moving it until the stop's last steps ran on another thread would let a
                // stop of a few milliseconds take minutes on the clock, past every lease).
                break;
            }

            if (!stopping.IsCompleted)
            {
                Time.Advance(Step);
                await CatchUpAsync();
            }
        }

        await stopping.WaitAsync(Eventually.DefaultDeadline);
    }

    /// <summary>Moves the clock on by <paramref name="span"/>, one tick at a time, letting the nodes' loops catch up in between.</summary>
    public async Task AdvanceAsync(TimeSpan span)
    {
        for (var moved = TimeSpan.Zero; moved < span; moved += Step)
        {
            Time.Advance(Step);
            await CatchUpAsync();
        }
    }

    /// <summary>
    /// Returns once every running node's loop has handled what was queued for it (its tick among
    /// them), twice over, so that what those inputs sent arrived; and once the work a node started off
    /// its loop (RPC handlers' synchronous start, calls to the generation store, all on the thread pool)
    /// has handed its outcome to the loop, so that it is handled at the time it was started, not some
    /// ticks later on a busy machine (a generation claim answered late would found with a longer silence, so a shorter hold-off).
    /// </summary>
    private async Task CatchUpAsync()
    {
        for (int round = 0; round < 2; round++)
        {
            while (Nodes.Values.Any(node => node.OffLoopWorkPending > 0))
            {
                await Task.Yield();
            }

            await Task.WhenAll(Nodes.Values.Select(node => node.GetLogAsync()));
        }
    }

    /// <summary>Moves the clock on, one tick at a time, until <paramref name="condition"/> holds.</summary>
    public async Task AdvanceUntilAsync(Func<bool> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > Eventually.DefaultDeadline)
            {
                throw new TimeoutException($"Gave up after {Eventually.DefaultDeadline.TotalSeconds:0} s waiting for {what}. Nodes: "
                    + string.Join("; ", Nodes.Values.Select(n => $"{n.Id} gen {n.Generation} {n.Role} term {n.Term} leader {n.LeaderId} commit {n.CommitIndex} voters [{string.Join(",", n.Membership.Voters)}] learners [{string.Join(",", n.Membership.Learners)}]")));
            }

            Time.Advance(Step);
            await CatchUpAsync();
        }
    }

    /// <summary>
    /// Appends a lock command on behalf of a process that is not a node here (a holder that went
    /// away: nobody renews or releases what it gets). Not awaited: nobody here sees it complete.
    /// </summary>
    public static void AppendForeign(GaggleNode leader, string origin, long sequence, LockCommand command, CancellationToken stop)
    {
        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, 0, origin, 1, sequence, command.Encode()).Encode();
        _ = leader.AppendEnvelopeAsync(sequence, envelope, null, stop).ContinueWith(static _ => { }, TaskScheduler.Default);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var id in Nodes.Keys.ToList())
        {
            await StopAsync(id);
        }
    }
}
