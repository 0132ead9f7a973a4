using System.Text;
using Gaggle.Channels;
using Gaggle.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;
using StackExchange.Redis;

namespace Gaggle.Redis;

/// <summary>
/// An <see cref="IChannel"/> over Redis pub/sub. <c>send</c> publishes to the target node's own Redis
/// channel (<c>{prefix}:{{cluster}}:node:{id}</c>), <c>broadcast</c> to the cluster's channel
/// (<c>{prefix}:{{cluster}}:all</c>); a node subscribes to those two only.
/// </summary>
/// <remarks>
/// Pub/sub is at-most-once: messages published while a subscriber is disconnected are lost, which
/// Raft tolerates. StackExchange.Redis reconnects and resubscribes by itself; the channel reads each
/// subscription with one loop (ordered delivery), drops and counts anything malformed, oversized,
/// from another cluster, from a non-member, replayed, stale or (with a cluster key) unauthenticated,
/// and never throws a delivery problem at the node. Sends never wait for Redis: a failed PUBLISH is
/// retried in the background with exponential backoff and jitter, then dropped and counted.
/// </remarks>
public sealed partial class RedisPubSubChannel : IChannel, IClusterGenerationStore
{
    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);
    private const long NeverLogged = long.MinValue;

    private readonly RedisPubSubChannelOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly byte[]? _key;
    private readonly ulong _incarnation;
    private readonly RedisChannel _ownChannel;
    private readonly RedisChannel _allChannel;
    private readonly string _nodeChannelPrefix;
    private readonly HashSet<string>? _members;
    private readonly ResiliencePipeline _retryPipeline;
    private readonly Lock _deliverLock = new();
    private readonly Dictionary<string, SenderWindow> _windows = new(StringComparer.Ordinal);
    private readonly long[] _lastLogged = Enumerable.Repeat(NeverLogged, Enum.GetValues<DropReason>().Length + 1).ToArray();
    private readonly CancellationTokenSource _stopping = new();
    private IConnectionMultiplexer? _connection;
    private bool _ownsConnection;
    private ISubscriber? _subscriber;
    private ChannelMessageQueue? _ownQueue;
    private ChannelMessageQueue? _allQueue;
    private Task _readers = Task.CompletedTask;
    private Action<InboundMessage>? _receiver;
    private long _sequence;
    private int _pendingPublishes;
    private volatile bool _connected;
    private RedisChannelMetrics? _metrics;

    /// <summary>Creates the channel of node <paramref name="nodeId"/>; <see cref="ConnectAsync"/> connects it.</summary>
    /// <param name="nodeId">The owning node's id.</param>
    /// <param name="options">Connection, naming and security settings; validated here.</param>
    /// <param name="loggerFactory">Logging; none when null.</param>
    /// <param name="timeProvider">
    /// The clock of the retry delays, the log throttle and the incarnation; the system clock when null.
    /// A node's builder passes the node's own clock.
    /// </param>
    public RedisPubSubChannel(string nodeId, RedisPubSubChannelOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(nodeId);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        NodeId = nodeId;
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<RedisPubSubChannel>();
        _time = timeProvider ?? TimeProvider.System;
        _key = options.ClusterKey is null ? null : Encoding.UTF8.GetBytes(options.ClusterKey);
        _incarnation = NodeIncarnations.Next(_time);
        _members = options.Members is null ? null : new HashSet<string>(options.Members, StringComparer.Ordinal);
        ChannelPrefix = $"{options.Prefix}:{{{options.ClusterName}}}:";
        _nodeChannelPrefix = ChannelPrefix + "node:";
        _ownChannel = RedisChannel.Literal(_nodeChannelPrefix + nodeId);
        _allChannel = RedisChannel.Literal(ChannelPrefix + "all");
        // The first attempt is made outside the pipeline (measured: a pipeline run for every PUBLISH
        // cost about a third more CPU per commit), and the first retry after PublishRetryDelay enters
        // it: it makes the remaining PublishRetries - 1 attempts, with growing, jittered delays.
        var pipeline = new ResiliencePipelineBuilder { TimeProvider = _time };
        if (options.PublishRetries > 1)
        {
            pipeline.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = options.PublishRetries - 1,
                Delay = options.PublishRetryDelay * 2,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder().Handle<RedisException>().Handle<TimeoutException>(),
            });
        }

        _retryPipeline = pipeline.Build();
    }

    /// <inheritdoc />
    public string NodeId { get; }

    /// <summary>
    /// This channel's incarnation, sent in every envelope: receivers keep the highest one per sender
    /// and drop envelopes of lower ones as <see cref="DropReason.StaleIncarnation"/>.
    /// </summary>
    internal ulong Incarnation => _incarnation;

    /// <summary>The start of this cluster's Redis channel names, e.g. <c>gaggle:{orders}:</c>.</summary>
    public string ChannelPrefix { get; }

    /// <summary>
    /// Counters of traffic, drops and connection events; while the channel is connected they are also
    /// published on the <c>Gaggle</c> meter (<c>gaggle.redis.*</c>, tagged <c>gaggle.node</c>).
    /// </summary>
    public RedisPubSubChannelStatistics Statistics { get; } = new();

    /// <inheritdoc />
    public async ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        if (_receiver is not null)
        {
            throw new InvalidOperationException($"The Redis channel of node '{NodeId}' is already connected.");
        }

        _receiver = receiver;
        if (_options.Connection is { } shared)
        {
            _connection = shared;
        }
        else
        {
            var configuration = ConfigurationOptions.Parse(_options.Configuration!);
            configuration.AbortOnConnectFail = false;
            // A consensus member should be back within a heartbeat or two of Redis returning.
            configuration.ReconnectRetryPolicy = new ExponentialRetry(100, 2000);
            configuration.ClientName ??= $"gaggle-{_options.ClusterName}-{NodeId}";
            _connection = await ConnectionMultiplexer.ConnectAsync(configuration).WaitAsync(cancellationToken).ConfigureAwait(false);
            _ownsConnection = true;
        }

        _connection.ConnectionFailed += OnConnectionFailed;
        _connection.ConnectionRestored += OnConnectionRestored;
        _subscriber = _connection.GetSubscriber();
        _ownQueue = await _subscriber.SubscribeAsync(_ownChannel).WaitAsync(cancellationToken).ConfigureAwait(false);
        _allQueue = await _subscriber.SubscribeAsync(_allChannel).WaitAsync(cancellationToken).ConfigureAwait(false);
        _connected = true;
        _metrics = new RedisChannelMetrics(NodeId, Statistics);
        _readers = Task.WhenAll(ReadLoopAsync(_ownQueue), ReadLoopAsync(_allQueue));
    }

    /// <inheritdoc />
    public async ValueTask DisconnectAsync(CancellationToken cancellationToken = default)
    {
        if (!_connected)
        {
            return;
        }

        _connected = false;
        _metrics?.Dispose();
        lock (_deliverLock)
        {
            _receiver = null;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var queue in new[] { _ownQueue, _allQueue })
        {
            if (queue is not null)
            {
                try
                {
                    await queue.UnsubscribeAsync().WaitAsync(TimeSpan.FromSeconds(5), _time, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is RedisException or TimeoutException)
                {
                    RedisLog.UnsubscribeFailed(_logger, e, NodeId);
                }
            }
        }

        await _readers.ConfigureAwait(false);
        if (_connection is not null)
        {
            _connection.ConnectionFailed -= OnConnectionFailed;
            _connection.ConnectionRestored -= OnConnectionRestored;
            if (_ownsConnection)
            {
                await _connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => DisconnectAsync();

    /// <inheritdoc />
    public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(to);
        Publish(RedisChannel.Literal(_nodeChannelPrefix + to), payload);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        Publish(_allChannel, payload);
        return ValueTask.CompletedTask;
    }

    private void Publish(RedisChannel channel, ReadOnlyMemory<byte> payload)
    {
        if (!_connected || _subscriber is null)
        {
            return;
        }

        if (Interlocked.Increment(ref _pendingPublishes) > _options.MaxPendingPublishes)
        {
            Interlocked.Decrement(ref _pendingPublishes);
            Statistics.CountPublishDropped();
            return;
        }

        var envelope = new RedisEnvelope(_options.ClusterName, NodeId, _incarnation, (ulong)Interlocked.Increment(ref _sequence), payload).Encode(_key);
        _ = PublishAsync(_subscriber, channel, envelope);
    }

    /// <summary>
    /// Publishes once directly (the common case costs one PUBLISH and no pipeline); a failed first
    /// attempt goes through the retry pipeline (backoff with jitter, <see cref="RedisPubSubChannelOptions.PublishRetries"/> retries).
    /// </summary>
    private async Task PublishAsync(ISubscriber subscriber, RedisChannel channel, byte[] envelope)
    {
        try
        {
            try
            {
                await subscriber.PublishAsync(channel, envelope).ConfigureAwait(false);
                Statistics.CountPublished();
                return;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // Every failed attempt counts, the first one too (also when no retry follows).
                Statistics.CountPublishFailure();
                if (_options.PublishRetries == 0)
                {
                    throw;
                }

                await Task.Delay(_options.PublishRetryDelay, _time, _stopping.Token).ConfigureAwait(false);
            }

            await _retryPipeline.ExecuteAsync(
                static async (state, _) =>
                {
                    try
                    {
                        await state.subscriber.PublishAsync(state.channel, state.envelope).ConfigureAwait(false);
                    }
                    catch (Exception) when (state.self.CountPublishFailure())
                    {
                        throw;
                    }
                },
                (self: this, subscriber, channel, envelope),
                _stopping.Token).ConfigureAwait(false);
            Statistics.CountPublished();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Retries exhausted, the channel stopped, or an unexpected failure: the message is lost (Raft resends).
            Statistics.CountPublishDropped();
            if (ShouldLog(_lastLogged.Length - 1))
            {
                RedisLog.PublishDropped(_logger, e, NodeId, channel.ToString());
            }
        }
        finally
        {
            Interlocked.Decrement(ref _pendingPublishes);
        }
    }

    private bool CountPublishFailure()
    {
        Statistics.CountPublishFailure();
        return false;
    }

    private async Task ReadLoopAsync(ChannelMessageQueue queue)
    {
        try
        {
            while (true)
            {
                var message = await queue.ReadAsync(_stopping.Token).ConfigureAwait(false);
                Deliver(message.Message);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or System.Threading.Channels.ChannelClosedException)
        {
            // Disconnected.
        }
    }

    private void Deliver(RedisValue value)
    {
        if (value.Length() > _options.MaxEnvelopeBytes)
        {
            Drop(DropReason.Oversized, "?");
            return;
        }

        byte[]? data = value;
        var envelope = default(RedisEnvelope);
        if ((data is null ? DropReason.Malformed : RedisEnvelope.TryDecode(data, _key, out envelope)) is { } reason)
        {
            Drop(reason, "?");
            return;
        }

        if (envelope.Cluster != _options.ClusterName)
        {
            Drop(DropReason.OtherCluster, envelope.Sender);
            return;
        }

        if (envelope.Sender == NodeId)
        {
            // Our own broadcast, echoed back by Redis: counted (the subscription works), not delivered.
            Interlocked.Increment(ref _echoes);
            return;
        }

        if (_members is not null && !_members.Contains(envelope.Sender))
        {
            Drop(DropReason.NonMember, envelope.Sender);
            return;
        }

        lock (_deliverLock)
        {
            if (!_windows.TryGetValue(envelope.Sender, out var window))
            {
                window = new SenderWindow();
                _windows[envelope.Sender] = window;
            }

            if (window.Accept(envelope.Incarnation, envelope.Sequence) is { } refused)
            {
                Drop(refused, envelope.Sender);
                return;
            }

            if (_receiver is { } receiver)
            {
                Statistics.CountReceived();
                receiver(new InboundMessage(envelope.Sender, envelope.Payload));
            }
        }
    }

    private void Drop(DropReason reason, string sender)
    {
        Statistics.CountDropped(reason);
        if (ShouldLog((int)reason))
        {
            RedisLog.Dropped(_logger, NodeId, reason, sender, Statistics.DroppedFor(reason));
        }
    }

    /// <summary>At most one log line per reason every <see cref="LogInterval"/>: hostile traffic must not flood the logs.</summary>
    private bool ShouldLog(int slot)
    {
        long now = _time.GetTimestamp();
        long last = Interlocked.Read(ref _lastLogged[slot]);
        return (last == NeverLogged || _time.GetElapsedTime(last, now) >= LogInterval)
            && Interlocked.CompareExchange(ref _lastLogged[slot], now, last) == last;
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e)
    {
        Statistics.CountConnectionFailure();
        RedisLog.ConnectionFailed(_logger, e.Exception, NodeId, e.ConnectionType.ToString(), e.FailureType.ToString());
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        Statistics.CountConnectionRestore();
        RedisLog.ConnectionRestored(_logger, NodeId, e.ConnectionType.ToString());
    }
}
