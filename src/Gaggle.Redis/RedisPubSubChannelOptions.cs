using StackExchange.Redis;

namespace Gaggle.Redis;

/// <summary>Settings of a <see cref="RedisPubSubChannel"/>.</summary>
public sealed class RedisPubSubChannelOptions
{
    /// <summary>
    /// A StackExchange.Redis configuration string (e.g. <c>localhost:6379</c>, or
    /// <c>host:6380,ssl=true,user=gaggle,password=...</c> for TLS and an ACL user). Ignored when
    /// <see cref="Connection"/> is set. The channel owns and disposes a connection it creates, which
    /// does not abort when Redis is down at start and reconnects with backoff from 100 ms to 2 s.
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>A connection the application already has; the channel uses it and never disposes it.</summary>
    public IConnectionMultiplexer? Connection { get; set; }

    /// <summary>The first part of every Redis channel name.</summary>
    /// <value>The default is <c>gaggle</c>.</value>
    public string Prefix { get; set; } = "gaggle";

    /// <summary>
    /// The cluster's name: nodes with the same prefix and cluster name form one cluster. It is used as
    /// a hash tag (<c>gaggle:{orders}:all</c>) so one cluster's channels live on one Redis Cluster shard.
    /// </summary>
    /// <value>The default is <c>default</c>.</value>
    public string ClusterName { get; set; } = "default";

    /// <summary>
    /// A secret shared by every node of the cluster. When set, every envelope carries an HMAC-SHA256
    /// over its content and unsigned or forged envelopes are dropped: a client that can PUBLISH into
    /// Redis can then neither vote nor append. At least 16 characters.
    /// </summary>
    /// <value>The default is null (no authentication).</value>
    public string? ClusterKey { get; set; }

    /// <summary>The node ids accepted as senders; null accepts any id (the Raft layer still refuses non-members).</summary>
    public IReadOnlyCollection<string>? Members { get; set; }

    /// <summary>Inbound envelopes larger than this are dropped without being parsed.</summary>
    /// <value>The default is 16 MiB.</value>
    public int MaxEnvelopeBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>How many times a failed PUBLISH is retried (with exponential backoff and jitter) before the message is dropped.</summary>
    /// <value>The default is 3.</value>
    public int PublishRetries { get; set; } = 3;

    /// <summary>The first retry delay of a failed PUBLISH.</summary>
    /// <value>The default is 20 ms.</value>
    public TimeSpan PublishRetryDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Publishes not yet acknowledged by Redis beyond which new sends are dropped (so a dead Redis cannot eat memory).</summary>
    /// <value>The default is 20000.</value>
    public int MaxPendingPublishes { get; set; } = 20000;

    /// <summary>Checks the settings; the message names the setting, its value and the rule.</summary>
    /// <exception cref="ArgumentException">A setting is invalid.</exception>
    public void Validate()
    {
        if (Connection is null && string.IsNullOrWhiteSpace(Configuration))
        {
            throw new ArgumentException("RedisPubSubChannelOptions: Configuration is empty and Connection is null; set a Redis configuration string such as 'localhost:6379' or pass an IConnectionMultiplexer.");
        }

        CheckName(nameof(Prefix), Prefix);
        CheckName(nameof(ClusterName), ClusterName);
        if (ClusterKey is not null && ClusterKey.Length < 16)
        {
            throw new ArgumentException($"RedisPubSubChannelOptions: ClusterKey has {ClusterKey.Length} characters; it must have at least 16 (or be null to disable authentication).");
        }

        if (MaxEnvelopeBytes < 1024)
        {
            throw new ArgumentException($"RedisPubSubChannelOptions: MaxEnvelopeBytes is {MaxEnvelopeBytes}; it must be at least 1024.");
        }

        if (PublishRetries is < 0 or > 100)
        {
            throw new ArgumentException($"RedisPubSubChannelOptions: PublishRetries is {PublishRetries}; it must be between 0 and 100.");
        }

        if (PublishRetryDelay < TimeSpan.Zero || PublishRetryDelay > TimeSpan.FromSeconds(30))
        {
            throw new ArgumentException($"RedisPubSubChannelOptions: PublishRetryDelay is {PublishRetryDelay.TotalMilliseconds} ms; it must be between 0 and 30 s.");
        }

        if (MaxPendingPublishes < 1)
        {
            throw new ArgumentException($"RedisPubSubChannelOptions: MaxPendingPublishes is {MaxPendingPublishes}; it must be at least 1.");
        }
    }

    private static void CheckName(string setting, string value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 64 || value.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
        {
            throw new ArgumentException($"RedisPubSubChannelOptions: {setting} is '{value}'; it must be 1 to 64 characters among letters, digits and . _ -");
        }
    }
}
