using System.Diagnostics.Metrics;
using System.Text;

namespace Gaggle.Redis;

/// <summary>
/// Publishes a channel's <see cref="RedisPubSubChannelStatistics"/> on the <c>Gaggle</c> meter as
/// observable counters tagged with the node id. The instruments observe one channel, so they live on
/// a meter of their own, created when the channel connects and disposed when it disconnects: a
/// stopped channel stops reporting and nothing keeps it alive.
/// </summary>
internal sealed class RedisChannelMetrics : IDisposable
{
    /// <summary>The meter's name, the same as the core's instruments use.</summary>
    public const string MeterName = "Gaggle";

    private static readonly DropReason[] Reasons = Enum.GetValues<DropReason>();
    private static readonly string[] ReasonTags = [.. Reasons.Select(ReasonTag)];

    private readonly Meter _meter = new(MeterName);

    public RedisChannelMetrics(string nodeId, RedisPubSubChannelStatistics statistics)
    {
        var node = new KeyValuePair<string, object?>("gaggle.node", nodeId);
        Counter("gaggle.redis.published", "Envelopes published (acknowledged by Redis).", () => statistics.Published);
        Counter("gaggle.redis.publish.failures", "PUBLISH attempts that failed (each retry counts).", () => statistics.PublishFailures);
        Counter("gaggle.redis.publish.dropped", "Outbound messages given up on: retries exhausted, or too many publishes pending.", () => statistics.PublishesDropped);
        Counter("gaggle.redis.received", "Envelopes accepted and handed to the node.", () => statistics.Received);
        Counter("gaggle.redis.connection.failures", "Redis connection failures.", () => statistics.ConnectionFailures);
        Counter("gaggle.redis.connection.restores", "Redis connections restored after a failure.", () => statistics.ConnectionRestores);
        _meter.CreateObservableCounter(
            "gaggle.redis.dropped",
            () => Reasons.Select(reason => new Measurement<long>(statistics.DroppedFor(reason), node, new KeyValuePair<string, object?>("reason", ReasonTags[(int)reason]))),
            description: "Inbound envelopes dropped, by reason.");

        void Counter(string name, string description, Func<long> read)
            => _meter.CreateObservableCounter(name, () => new Measurement<long>(read(), node), description: description);
    }

    /// <summary>The metric tag of <paramref name="reason"/>: <c>OtherCluster</c> becomes <c>other-cluster</c>.</summary>
    internal static string ReasonTag(DropReason reason)
    {
        var tag = new StringBuilder();
        foreach (char c in reason.ToString())
        {
            if (char.IsUpper(c) && tag.Length > 0)
            {
                tag.Append('-');
            }

            tag.Append(char.ToLowerInvariant(c));
        }

        return tag.ToString();
    }

    public void Dispose() => _meter.Dispose();
}
