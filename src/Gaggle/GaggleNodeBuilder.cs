using Gaggle.Channels;
using Gaggle.Storage;
using Microsoft.Extensions.Logging;

namespace Gaggle;

/// <summary>
/// Puts a <see cref="GaggleNode"/> together: options, a channel (in-memory, or Redis with
/// <c>UseRedis</c> from Gaggle.Redis), storage, clock and logging.
/// </summary>
/// <example>
/// <code>
/// await using var node = new GaggleNodeBuilder(options).UseRedis("localhost:6379", redis => redis.ClusterName = "orders").Build();
/// await node.StartAsync();
/// </code>
/// </example>
public sealed class GaggleNodeBuilder
{
    private Func<GaggleOptions, IChannel>? _channelFactory;
    private Func<GaggleOptions, FileRaftStorage>? _storageFactory;

    /// <summary>Starts a builder for a node with <paramref name="options"/>.</summary>
    /// <param name="options">The node's settings (validated by <see cref="Build"/>).</param>
    public GaggleNodeBuilder(GaggleOptions options)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>The node's settings.</summary>
    public GaggleOptions Options { get; }

    /// <summary>The storage; in memory when not set.</summary>
    public IRaftStorage? Storage { get; private set; }

    /// <summary>The clock; the system clock when not set.</summary>
    public TimeProvider? TimeProvider { get; private set; }

    /// <summary>Logging for the node, its channel and the storage <see cref="UseFileStorage"/> creates; none when not set.</summary>
    public ILoggerFactory? LoggerFactory { get; private set; }

    /// <summary>Uses the channel that <paramref name="factory"/> creates for the node.</summary>
    /// <param name="factory">Creates the node's channel from its options.</param>
    /// <returns>This builder.</returns>
    public GaggleNodeBuilder UseChannel(Func<GaggleOptions, IChannel> factory)
    {
        _channelFactory = factory ?? throw new ArgumentNullException(nameof(factory));
        return this;
    }

    /// <summary>Connects the node to an in-process network.</summary>
    /// <param name="network">The network the cluster's nodes share.</param>
    /// <returns>This builder.</returns>
    public GaggleNodeBuilder UseInMemory(InMemoryNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        return UseChannel(options => network.CreateChannel(options.NodeId));
    }

    /// <summary>Keeps the node's hard state and log in <paramref name="storage"/>.</summary>
    /// <param name="storage">The storage.</param>
    /// <returns>This builder.</returns>
    public GaggleNodeBuilder UseStorage(IRaftStorage storage)
    {
        Storage = storage ?? throw new ArgumentNullException(nameof(storage));
        _storageFactory = null;
        return this;
    }

    /// <summary>
    /// Keeps the node's hard state, log and snapshots in <paramref name="directory"/> (a durable
    /// write-ahead log, fsynced per batch); the node disposes this storage when it stops. The storage
    /// logs its recovery (a torn tail cut off, leftovers removed) through <see cref="LoggerFactory"/>.
    /// </summary>
    /// <param name="directory">The node's own data directory (created if missing).</param>
    /// <param name="flushPolicy">When writes are forced to disk.</param>
    /// <returns>This builder.</returns>
    public GaggleNodeBuilder UseFileStorage(string directory, FlushPolicy flushPolicy = FlushPolicy.EveryBatch)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        _storageFactory = options => new FileRaftStorage(
            new FileRaftStorageOptions { Directory = directory, NodeId = options.NodeId, FlushPolicy = flushPolicy },
            LoggerFactory?.CreateLogger<FileRaftStorage>());
        Storage = null;
        return this;
    }

    /// <summary>Uses <paramref name="timeProvider"/> as the node's clock.</summary>
    /// <param name="timeProvider">The clock.</param>
    /// <returns>This builder.</returns>
    public GaggleNodeBuilder UseTimeProvider(TimeProvider timeProvider)
    {
        TimeProvider = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        return this;
    }

    /// <summary>Logs through <paramref name="loggerFactory"/>.</summary>
    /// <param name="loggerFactory">The logger factory.</param>
    /// <returns>This builder.</returns>
    public GaggleNodeBuilder UseLoggerFactory(ILoggerFactory loggerFactory)
    {
        LoggerFactory = loggerFactory ?? throw new ArgumentNullException(nameof(loggerFactory));
        return this;
    }

    /// <summary>Validates the options and creates the node (not started).</summary>
    /// <returns>The node; call <see cref="GaggleNode.StartAsync"/> on it.</returns>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">The options are invalid.</exception>
    /// <exception cref="InvalidOperationException">No channel was chosen.</exception>
    public GaggleNode Build()
    {
        GaggleOptionsValidator.ThrowIfInvalid(Options);
        return BuildWithValidatedOptions();
    }

    /// <summary>
    /// Creates the node from options the caller has validated (<see cref="Build"/>, or the options
    /// system under hosting): the channel and storage factories see valid options, and the node's
    /// constructor does not validate them again.
    /// </summary>
    internal GaggleNode BuildWithValidatedOptions()
    {
        if (_channelFactory is null)
        {
            throw new InvalidOperationException("GaggleNodeBuilder has no channel; call UseInMemory, UseRedis or UseChannel before Build.");
        }

        // Elastic mode: every node built is a new member, named after the display name (NodeId).
        var options = Options.IsElastic ? Options.WithNodeId(GaggleIdentity.NewMemberId(Options.NodeId)) : Options;
        var owned = _storageFactory?.Invoke(options);
        var channel = _channelFactory(options);
        return new GaggleNode(options, channel, owned ?? Storage, TimeProvider, LoggerFactory, optionsValidated: true) { OwnedStorage = owned };
    }
}
