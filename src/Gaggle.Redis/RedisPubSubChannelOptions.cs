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

    /// <summary>
    /// The node ids accepted as senders; null (the default) accepts any id. Set it only for a cluster
    /// whose membership never changes: a member added later is not heard. Inbound traffic is otherwise
    /// filtered by cluster name, <see cref="ClusterKey"/> and sender incarnation.
    /// </summary>
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

    /// <summary>
    /// How many bytes a message may gain on its way through Redis beyond
    /// <see cref="GaggleOptions.MaxMessageBytes"/>: the Redis envelope (version, flags, cluster name,
    /// sender id, incarnation, sequence, payload length and a 32-byte signature: at most 189 bytes
    /// with 64-character names), the wire message's header (at most 75 bytes), and the per-entry
    /// framing and entry header of a single entry as large as <see cref="GaggleOptions.MaxMessageBytes"/>
    /// allows (at most 144 bytes). The worst case is under 512 bytes; the margin is 64 KiB so the
    /// check stays safe when a format gains a field.
    /// </summary>
    public const int MessageOverheadBytes = 64 * 1024;

    /// <summary>The smallest <see cref="MaxEnvelopeBytes"/> that carries every message of a node with <paramref name="maxMessageBytes"/>.</summary>
    /// <param name="maxMessageBytes">The node's <see cref="GaggleOptions.MaxMessageBytes"/>.</param>
    /// <returns><paramref name="maxMessageBytes"/> plus <see cref="MessageOverheadBytes"/>.</returns>
    public static long MinEnvelopeBytesFor(int maxMessageBytes) => (long)maxMessageBytes + MessageOverheadBytes;

    /// <summary>Checks the settings; the message names every invalid setting, its value and the rule.</summary>
    /// <exception cref="ArgumentException">A setting is invalid.</exception>
    public void Validate() => ThrowIfAny(GetValidationFailures());

    /// <summary>
    /// Checks the settings, and that <see cref="MaxEnvelopeBytes"/> carries the largest message the
    /// node with <paramref name="node"/> sends (<see cref="MinEnvelopeBytesFor"/>); a smaller limit
    /// would drop large entries and snapshot chunks as oversized and stall replication.
    /// </summary>
    /// <param name="node">The settings of the node that uses this channel.</param>
    /// <exception cref="ArgumentException">A setting is invalid.</exception>
    public void Validate(GaggleOptions node) => ThrowIfAny(GetValidationFailures(node));

    /// <summary>Every problem with the settings, each naming the setting, its value and the rule; empty when they are valid.</summary>
    /// <param name="node">When given, <see cref="MaxEnvelopeBytes"/> is also checked against its <see cref="GaggleOptions.MaxMessageBytes"/>.</param>
    /// <returns>The problems found.</returns>
    public IReadOnlyList<string> GetValidationFailures(GaggleOptions? node = null)
    {
        var failures = GetValidationFailures(static setting => setting, requireConnection: true);
        if (node is not null && MaxEnvelopeBytes < MinEnvelopeBytesFor(node.MaxMessageBytes))
        {
            failures.Add($"MaxEnvelopeBytes is {MaxEnvelopeBytes}; it must be at least MaxMessageBytes ({node.MaxMessageBytes}) + {MessageOverheadBytes} bytes of envelope and header overhead = {MinEnvelopeBytesFor(node.MaxMessageBytes)}, or large entries and snapshot chunks are dropped as oversized and replication stalls.");
        }

        return failures;
    }

    /// <summary>
    /// The rules, with each setting named by <paramref name="settingName"/> (hosting names them by
    /// their configuration keys). The configuration string and cluster key are secrets: never quoted.
    /// </summary>
    internal List<string> GetValidationFailures(Func<string, string> settingName, bool requireConnection)
    {
        var failures = new List<string>();
        if (Connection is null && string.IsNullOrWhiteSpace(Configuration))
        {
            if (requireConnection || Configuration is not null)
            {
                failures.Add($"{settingName(nameof(Configuration))} is empty and Connection is null; set a Redis configuration string such as 'localhost:6379' or pass an IConnectionMultiplexer.");
            }
        }
        else if (Connection is null)
        {
            try
            {
                ConfigurationOptions.Parse(Configuration!);
            }
            catch (ArgumentException e)
            {
                failures.Add($"{settingName(nameof(Configuration))} is not a valid StackExchange.Redis configuration string ({e.Message}); it must look like 'host:port,option=value,...'.");
            }
        }

        CheckName(failures, settingName(nameof(Prefix)), Prefix);
        CheckName(failures, settingName(nameof(ClusterName)), ClusterName);
        if (ClusterKey is not null && ClusterKey.Length < 16)
        {
            failures.Add($"{settingName(nameof(ClusterKey))} has {ClusterKey.Length} characters; it must have at least 16 (or be null to disable authentication).");
        }

        if (MaxEnvelopeBytes < 1024)
        {
            failures.Add($"{settingName(nameof(MaxEnvelopeBytes))} is {MaxEnvelopeBytes}; it must be at least 1024.");
        }

        if (PublishRetries is < 0 or > 100)
        {
            failures.Add($"{settingName(nameof(PublishRetries))} is {PublishRetries}; it must be between 0 and 100.");
        }

        if (PublishRetryDelay < TimeSpan.Zero || PublishRetryDelay > TimeSpan.FromSeconds(30))
        {
            failures.Add($"{settingName(nameof(PublishRetryDelay))} is {PublishRetryDelay.TotalMilliseconds} ms; it must be between 0 and 30 s.");
        }

        if (MaxPendingPublishes < 1)
        {
            failures.Add($"{settingName(nameof(MaxPendingPublishes))} is {MaxPendingPublishes}; it must be at least 1.");
        }

        return failures;
    }

    private static void ThrowIfAny(IReadOnlyList<string> failures)
    {
        if (failures.Count > 0)
        {
            throw new ArgumentException("RedisPubSubChannelOptions: " + string.Join(" ", failures));
        }
    }

    private static void CheckName(List<string> failures, string setting, string value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 64 || value.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
        {
            failures.Add($"{setting} is '{value}'; it must be 1 to 64 characters among letters, digits and . _ -");
        }
    }
}
