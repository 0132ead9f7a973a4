using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Gaggle.Channels;
using Gaggle.Leadership;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using System.Diagnostics.Metrics;

namespace Gaggle;

/// <summary>
/// One member of a Gaggle cluster: a replicated, ordered log with leader election, appends from any
/// node, and RPC handlers that run on the leader.
/// </summary>
/// <remarks>
/// All Raft work happens on one loop per node; the public members are safe to call from any thread.
/// Events are raised on that loop: handlers must return quickly (hand work off instead of blocking),
/// and an exception they throw is logged, never propagated. Committed entries are delivered in log
/// order, once each, on every node; no-op entries that leaders append are not delivered.
/// </remarks>
public sealed partial class GaggleNode : IAsyncDisposable
{
    private const int NotStarted = 0;
    private const int Running = 1;
    private const int Stopped = 2;

    private readonly GaggleOptions _options;
    private readonly IChannel _channel;
    private IRaftStorage _storage;
    private readonly TimeProvider _time;
    private readonly double _microsecondsPerTimestamp;
    private readonly ILogger _logger;
    private readonly LoopInbox _inbox;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _subscribersLock = new();
    private readonly List<Channel<GaggleLogEntry>> _subscribers = [];
    private int _subscriberCount;
    private ulong _incarnation;
    private readonly SequenceCounter _sequences = new();
    private readonly TimeSpan _tickInterval;
    private NodeDriver? _driver;
    private volatile string[] _knownMembers = [];
    private readonly KeyValuePair<string, object?> _nodeTag;
    private readonly Instrument[] _gauges;
    private readonly Meter _meter;
    private readonly GaggleLeadership _leadership;
    private readonly AppendCallers _appendCallers;
    private readonly DispatchCallers _dispatchCallers;

    /// <summary>Storage the node created for itself (through its builder) and disposes when it stops.</summary>
    internal IDisposable? OwnedStorage { get; init; }

    /// <summary>
    /// Work this node started off its loop whose outcome the loop has not been handed yet: RPC handlers
    /// that have not returned from their synchronous start, calls to the generation store, lock
    /// renewals due that have not posted their append, and appends the loop answered whose callers have
    /// not resumed (a renewal sets its next timer when it resumes). A manual clock waits for them before
    /// it moves on, so that each happens at the time it was due, not some ticks later on a busy machine.
    /// </summary>
    internal int OffLoopWorkPending => _dispatchCallers.HandlersStarting + Volatile.Read(ref _generationCallsPending)
        + Volatile.Read(ref _renewalsDue) + _appendCallers.AnsweredNotResumed;
    private ITimer? _timer;
    private Task _loop = Task.CompletedTask;
    private int _state;
    private int _disposed;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private InvalidOperationException? _fatalError;
    private long _nextCallId;
    private volatile NodeStatus _status = new(RaftRole.Follower, 0, null, 0, 0, false);
    private TaskCompletionSource _leaderKnown = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates a node; call <see cref="StartAsync"/> to join the cluster.</summary>
    /// <param name="options">The node's settings; validated here (<see cref="Microsoft.Extensions.Options.OptionsValidationException"/> lists every problem).</param>
    /// <param name="channel">How this node reaches the others; its <see cref="IChannel.NodeId"/> must equal <see cref="GaggleOptions.NodeId"/>. The node disconnects it when stopped.</param>
    /// <param name="storage">Where the hard state and log are kept; in memory when null.</param>
    /// <param name="timeProvider">The clock; the system clock when null.</param>
    /// <param name="loggerFactory">Logging; none when null.</param>
    public GaggleNode(GaggleOptions options, IChannel channel, IRaftStorage? storage = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
        : this(options, channel, storage, timeProvider, loggerFactory, optionsValidated: false)
    {
    }

    /// <summary>Creates a node; <paramref name="optionsValidated"/> when the caller (a builder, the options system) has validated the options already.</summary>
    internal GaggleNode(GaggleOptions options, IChannel channel, IRaftStorage? storage, TimeProvider? timeProvider, ILoggerFactory? loggerFactory, bool optionsValidated)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(channel);
        if (!optionsValidated)
        {
            GaggleOptionsValidator.ThrowIfInvalid(options);
        }

        if (options.IsElastic && channel.NodeId != options.NodeId)
        {
            // Elastic mode: the channel carries this process's member id (the display name plus a suffix).
            options = GaggleIdentity.IsMemberIdOf(channel.NodeId, options.NodeId)
                ? options.WithNodeId(channel.NodeId)
                : throw new ArgumentException(
                    $"The channel belongs to node '{channel.NodeId}' but NodeId is '{options.NodeId}'; in elastic mode the channel's id must be NodeId or a member id made from it (GaggleNodeBuilder makes one).", nameof(channel));
        }
        else if (channel.NodeId != options.NodeId)
        {
            throw new ArgumentException($"The channel belongs to node '{channel.NodeId}' but NodeId is '{options.NodeId}'; they must be the same.", nameof(channel));
        }

        if (options.IsElastic && channel is not IClusterGenerationStore)
        {
            throw new ArgumentException(
                $"Node '{channel.NodeId}' is in elastic mode (neither Members nor ClusterSize is set) but its channel, {channel.GetType().Name}, does not record the cluster generation (IClusterGenerationStore); "
                + "use the Redis or in-memory channel, or set Members.", nameof(channel));
        }

        if (options.IsElastic && storage is not null and not InMemoryRaftStorage)
        {
            throw new ArgumentException(
                $"Node '{channel.NodeId}' is in elastic mode (neither Members nor ClusterSize is set), whose members are new for every process and keep their state in memory; "
                + $"its storage, {storage.GetType().Name}, would be of no use after a restart. Remove the storage (DataDirectory), or set Members for nodes with durable identities.", nameof(storage));
        }

        _options = options;
        _channel = channel;
        _storage = storage ?? new InMemoryRaftStorage();
        if (!options.IsElastic && options.Voters is not null && _storage is InMemoryRaftStorage { SurvivesRestart: false })
        {
            throw new ArgumentException(
                $"Voters is {options.Voters} (the leader changes the voters by itself) but node '{options.NodeId}' keeps its log in memory; "
                + "membership changes need durable storage (FileRaftStorage): a node restarted without its log would fall back to Members.", nameof(storage));
        }

        _time = timeProvider ?? TimeProvider.System;
        _microsecondsPerTimestamp = 1_000_000.0 / _time.TimestampFrequency;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<GaggleNode>();
        _incarnation = NodeIncarnations.Next(_time);
        _tickInterval = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond, options.HeartbeatInterval.Ticks / 5));
        _nodeTag = new KeyValuePair<string, object?>("gaggle.node", options.NodeId);
        _leadership = new GaggleLeadership(this);
        _appendCallers = new AppendCallers(_time, _nodeTag, TimedOut);
        _inbox = new LoopInbox(RunPassAsync, OnLoopFailed);
        var handlers = new Dictionary<string, RpcHandler>(options.RpcHandlers, StringComparer.Ordinal) { [MembershipRequest.Method] = ServeMembershipAsync };
        _dispatchCallers = new DispatchCallers(options.NodeId, handlers, _stopping.Token, SendAsync);
        _knownMembers = options.Members.Count > 0 ? [.. options.Members] : options.IsElastic ? [] : [options.NodeId];
        // Gauges observe this node, so they live on a meter of its own, disposed with it.
        _meter = new Meter(GaggleMetrics.MeterName);
        _gauges =
        [
            _meter.CreateObservableGauge("gaggle.term", () => new Measurement<long>(Term, _nodeTag), description: "The node's current term."),
            _meter.CreateObservableGauge("gaggle.commit_index", () => new Measurement<long>(CommitIndex, _nodeTag), description: "The node's commit index."),
            _meter.CreateObservableGauge("gaggle.is_leader", () => new Measurement<int>(IsLeader ? 1 : 0, _nodeTag), description: "1 on the leader."),
            _meter.CreateObservableGauge("gaggle.voters", () => new Measurement<int>(Membership.Voters.Count, _nodeTag), description: "Voters in the configuration this node uses."),
            _meter.CreateObservableGauge("gaggle.learners", () => new Measurement<int>(Membership.Learners.Count, _nodeTag), description: "Learners in the configuration this node uses."),
            _meter.CreateObservableGauge("gaggle.generation", () => new Measurement<long>(Generation, _nodeTag), description: "The elastic cluster generation this node belongs to or waits to join (0 with a fixed member list)."),
        ];
    }

    /// <summary>Raised on the leader when it adds an application entry to its log (not yet committed).</summary>
    public event EventHandler<GaggleLogEntry>? Appended;

    /// <summary>Raised on every node for each committed application entry, in log order, once per entry.</summary>
    public event EventHandler<GaggleLogEntry>? Committed;

    /// <summary>Raised when the known leader changes (a leader is elected, or the leader is lost).</summary>
    public event EventHandler<LeaderChange>? LeaderChanged;

    /// <summary>This node's id.</summary>
    public string Id => _options.NodeId;

    /// <summary>The cluster's member ids, voters then learners: the configuration in force (see <see cref="Membership"/>), at first the configured <see cref="GaggleOptions.Members"/>, or those discovered so far in ClusterSize mode.</summary>
    public IReadOnlyList<string> Members => _knownMembers;

    /// <summary>This node's trusted leadership: a lease-backed <see cref="GaggleLeadership.IsLeader"/> and a token cancelled when it ends.</summary>
    public GaggleLeadership Leadership => _leadership;

    /// <summary>Whether this node is the leader as far as it knows.</summary>
    public bool IsLeader => _status.Role == RaftRole.Leader;

    /// <summary>The leader this node knows in its current term, or null.</summary>
    public string? LeaderId => _status.LeaderId;

    /// <summary>This node's role.</summary>
    public RaftRole Role => _status.Role;

    /// <summary>This node's current term.</summary>
    public long Term => _status.Term;

    /// <summary>The highest log index this node knows to be committed and has applied.</summary>
    public long CommitIndex => _status.CommitIndex;

    /// <summary>The index of the last entry in this node's log.</summary>
    public long LastLogIndex => _status.LastIndex;

    /// <summary>
    /// True while this node, restarted after losing its storage, may not vote or campaign yet (see
    /// <see cref="GaggleOptions.Rejoin"/>).
    /// </summary>
    public bool IsRejoining => _status.Rejoining;

    /// <summary>
    /// The error that stopped this node (its storage failed, or an invariant broke), or null while it
    /// runs or after an orderly stop. Once set, every call fails with it, its leadership ended, and it
    /// knows no leader; only a new node (a restart) recovers. The health check of Gaggle.Hosting reports it.
    /// </summary>
    public Exception? FatalError => Volatile.Read(ref _fatalError);

    /// <summary>True when this node's log holds entries of earlier terms that are not yet known to be committed.</summary>
    public bool HasUncommittedEntriesInPreviousTerms() => _status.HasUncommittedPreviousTerms;

    /// <summary>Loads the persisted state, connects the channel and starts the node's loop.</summary>
    /// <param name="cancellationToken">Cancels the start.</param>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, Running, NotStarted) != NotStarted)
        {
            throw new InvalidOperationException($"Node '{Id}' was already started; a node starts once (create a new one to restart).");
        }

        var persisted = await _storage.LoadAsync(cancellationToken).ConfigureAwait(false);
        _driver = new NodeDriver(NodeDriverSettings.From(_options, _incarnation, _tickInterval, _channel is IEchoingChannel), persisted, _sequences);
        PublishStatus(_driver);
        await _channel.ConnectAsync(OnInbound, cancellationToken).ConfigureAwait(false);
        await StartGenerationAsync(_driver, cancellationToken).ConfigureAwait(false);
        _loop = _inbox.Ended;
        _inbox.Start();
        _timer = _time.CreateTimer(_ => OnTimer(), null, _tickInterval, _tickInterval);
        Log.Started(_logger, Id, persisted.HardState.Term, persisted.Entries.Count);
    }

    /// <summary>Waits until this node knows a leader and returns its id.</summary>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <exception cref="TimeoutException">No leader became known within <paramref name="timeout"/>.</exception>
    /// <exception cref="ObjectDisposedException">The node was stopped first.</exception>
    /// <exception cref="InvalidOperationException">The node stopped after a fatal error (see <see cref="FatalError"/>).</exception>
    public async Task<string> WaitForLeaderAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var deadline = timeout is { } t ? _time.GetTimestamp() + (long)(t.TotalSeconds * _time.TimestampFrequency) : long.MaxValue;
        while (true)
        {
            ThrowIfStopped();
            var known = Volatile.Read(ref _leaderKnown);
            if (_status.LeaderId is { } leader)
            {
                return leader;
            }

            var left = deadline == long.MaxValue ? Timeout.InfiniteTimeSpan : _time.GetElapsedTime(_time.GetTimestamp(), deadline);
            if (left != Timeout.InfiniteTimeSpan && left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"Node '{Id}' saw no leader within {timeout!.Value.TotalMilliseconds:0} ms.");
            }

            try
            {
                await known.Task.WaitAsync(left, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"Node '{Id}' saw no leader within {timeout!.Value.TotalMilliseconds:0} ms.");
            }
        }
    }

    /// <summary>
    /// Returns a copy of this node's log (committed and uncommitted entries) read on the node's loop:
    /// the entries after the last compaction, since those before live only in the snapshot.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task<IReadOnlyList<GaggleLogEntry>> GetLogAsync(CancellationToken cancellationToken = default)
    {
        // Async: a stopped node's error comes in the task, as from the node's other async calls.
        var result = new TaskCompletionSource<IReadOnlyList<GaggleLogEntry>>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(ActionInput.Reading<IReadOnlyList<GaggleLogEntry>>(driver => driver.Log().Select(ToPublic).ToArray(), result));
        return await result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Streams committed application entries from now on, in log order, until the node stops or
    /// <paramref name="cancellationToken"/> is cancelled. A slow reader buffers; it never slows the node.
    /// </summary>
    /// <param name="cancellationToken">Ends the stream.</param>
    public async IAsyncEnumerable<GaggleLogEntry> ReadCommittedAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateUnbounded<GaggleLogEntry>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        lock (_subscribersLock)
        {
            _subscribers.Add(channel);
            Volatile.Write(ref _subscriberCount, _subscribers.Count);
        }

        try
        {
            await foreach (var entry in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return entry;
            }
        }
        finally
        {
            lock (_subscribersLock)
            {
                _subscribers.Remove(channel);
                Volatile.Write(ref _subscriberCount, _subscribers.Count);
            }
        }
    }

    /// <summary>
    /// Leaves the cluster. While a leader is known, the node first ends its lock requests (waiting ones
    /// are withdrawn, and one made from now on fails with <see cref="ObjectDisposedException"/>) and
    /// releases the locks it holds, so the next waiters get them at once, not a lease later, as a closed
    /// ZooKeeper session frees its locks; each release waits at most a settle time (four maximum
    /// election timeouts, on the node's <see cref="TimeProvider"/>) for its commit, and one that does not
    /// commit is left to its lease. A leader then hands leadership to an up-to-date follower when it can,
    /// the loop stops, the channel disconnects, and pending appends, RPCs, lock requests and leader
    /// waits fail with <see cref="ObjectDisposedException"/>; the node then claims no leadership and
    /// knows no leader. Idempotent; a second call returns once the first has stopped the node.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            await _stopped.Task.ConfigureAwait(false);
            return;
        }

        try
        {
            await StopCoreAsync().ConfigureAwait(false);
        }
        finally
        {
            _stopped.TrySetResult();
        }
    }

    /// <summary>Whether <see cref="DisposeAsync"/> began: a lock request made now fails with <see cref="ObjectDisposedException"/>.</summary>
    internal void ThrowIfClosing()
    {
        if (Volatile.Read(ref _disposed) == 1)
        {
            throw new ObjectDisposedException(nameof(GaggleNode), $"Gaggle node '{Id}' is stopping.");
        }
    }

    private async Task StopCoreAsync()
    {
        // A loop that failed has already set Stopped; the timer and channel still need releasing.
        if (Volatile.Read(ref _state) == Running && _locks is not null && LeaderId is not null)
        {
            // Every request the driver watches is given up first, in one input: the inbox keeps its
            // order, so the withdrawals go to the log before the releases, and no release hands a
            // lock to this node's own waiting request.
            _inbox.TryWrite(new ActionInput(driver => driver.GiveUpAllLockRequests()));
            _lockCallers.FailAll(new ObjectDisposedException(nameof(GaggleNode), $"Gaggle node '{Id}' stopped before the lock was granted."));
            await _locks.ReleaseAllAsync().ConfigureAwait(false);
        }

        int previous = Interlocked.Exchange(ref _state, Stopped);
        if (previous == Running)
        {
            var handedOver = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_inbox.TryWrite(new ActionInput(driver => HandOverLeadership(driver, handedOver))))
            {
                await Task.WhenAny(handedOver.Task, _loop).ConfigureAwait(false);
            }
        }

        if (_timer is not null)
        {
            await _timer.DisposeAsync().ConfigureAwait(false);
        }

        _inbox.Complete();
        await _loop.ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_driver is not null)
        {
            try
            {
                await _channel.DisconnectAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log.SendFailed(_logger, e, Id, "(disconnect)");
            }
        }

        EndService(new ObjectDisposedException(nameof(GaggleNode), $"Gaggle node '{Id}' stopped before the operation completed."));
        OwnedStorage?.Dispose();
        _meter.Dispose();
        lock (_subscribersLock)
        {
            foreach (var subscriber in _subscribers)
            {
                subscriber.Writer.TryComplete();
            }
        }

        Log.Stopped(_logger, Id);
    }

    private void ThrowIfStopped()
    {
        if (Volatile.Read(ref _fatalError) is { } fatal)
        {
            throw fatal;
        }

        if (Volatile.Read(ref _state) == Stopped)
        {
            throw new ObjectDisposedException(nameof(GaggleNode), $"Gaggle node '{Id}' is stopped.");
        }
    }

    private void ThrowIfNotRunning()
    {
        ThrowIfStopped();
        if (Volatile.Read(ref _state) != Running)
        {
            throw new InvalidOperationException($"Gaggle node '{Id}' is not started; call StartAsync first.");
        }
    }

    /// <summary>
    /// Hands an application's request to the loop. On an idle node this thread makes the loop's pass
    /// itself (see <see cref="LoopInbox"/>), sparing the request a thread hand-off, when <see cref="RunsHere"/> allows.
    /// </summary>
    private void Post(ILoopInput input)
    {
        ThrowIfNotRunning();
        if (!_inbox.TryWrite(input, RunsHere(input is PendingAppend ? 1 : 0) ? LoopWake.HereIfIdle : LoopWake.ThreadPool))
        {
            // Refused: the node stopped, or its loop failed (recorded before the inbox refuses anything).
            ThrowIfStopped();
            throw new ObjectDisposedException(nameof(GaggleNode), $"Gaggle node '{Id}' is stopped.");
        }
    }

    /// <summary>
    /// Whether an application's thread posting now makes the loop's pass itself when the loop is idle:
    /// only when no other append of this node's callers is waiting (<paramref name="own"/> of them are
    /// the poster's) and none was beside another lately (<see cref="AppendCallers.RecentlyConcurrent"/>):
    /// under load, inputs queue for one pass on the thread pool and go out as one batch (measured: passes
    /// made on callers' threads under a load of 16 callers split batches, about a quarter more passes),
    /// and no application code runs in passes (state machines, the <see cref="Appended"/>,
    /// <see cref="Committed"/> and <see cref="LeaderChanged"/> handlers): that never runs inside an
    /// application's call. Only with the in-memory storage (the diskless default): a pass that writes
    /// to a disk could hold the caller's thread through a stalled write, past its timeout, and the
    /// write costs far more than the hand-off saved.
    /// </summary>
    private bool RunsHere(int own)
        => _appendCallers.Count <= own && !_appendCallers.RecentlyConcurrent && _storage is InMemoryRaftStorage
            && _options.StateMachines.Count == 0 && Appended is null && Committed is null && LeaderChanged is null;

    private static GaggleLogEntry ToPublic(LogEntry entry)
    {
        if (entry.Kind == EntryKind.Normal && EntryEnvelope.TryDecode(entry.Data, out var envelope))
        {
            return new GaggleLogEntry(entry.Index, entry.Term, entry.Kind, envelope.Payload, envelope.Origin);
        }

        return new GaggleLogEntry(entry.Index, entry.Term, entry.Kind, ReadOnlyMemory<byte>.Empty, null);
    }

    private sealed record NodeStatus(RaftRole Role, long Term, string? LeaderId, long CommitIndex, long LastIndex, bool HasUncommittedPreviousTerms, bool Rejoining = false);
}
