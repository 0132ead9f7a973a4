using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class ChannelSettingsAndMetricsTests
{
    [Test]
    public void ValidateListsEveryInvalidSetting()
    {
        var options = new RedisPubSubChannelOptions { Prefix = "", ClusterKey = "short", PublishRetries = -1 };
        Assert.That(options.GetValidationFailures(), Has.Exactly(4).Items);
        var error = Assert.Throws<ArgumentException>(options.Validate);
        Assert.That(error!.Message, Does.Contain("Configuration is empty").And.Contain("Prefix is ''").And.Contain("ClusterKey has 5 characters").And.Contain("PublishRetries is -1"));
    }

    [Test]
    public async Task UseRedisRefusesAnEnvelopeLimitThatCannotCarryTheLargestMessage()
    {
        var options = new GaggleOptions { NodeId = "a", Members = ["a"], MaxMessageBytes = 16 * 1024 * 1024 };
        // The default MaxEnvelopeBytes (16 MiB) is no larger than the message limit: entries that big would be dropped as oversized.
        var error = Assert.Throws<ArgumentException>(() => new GaggleNodeBuilder(options).UseRedis("127.0.0.1:1").Build());
        Assert.That(error!.Message, Does.Contain("MaxEnvelopeBytes is 16777216; it must be at least MaxMessageBytes (16777216) + 65536 bytes of envelope and header overhead = 16842752"));

        long enough = RedisPubSubChannelOptions.MinEnvelopeBytesFor(options.MaxMessageBytes);
        await using var node = new GaggleNodeBuilder(options).UseRedis("127.0.0.1:1", redis => redis.MaxEnvelopeBytes = (int)enough).Build();
        Assert.That(node.Id, Is.EqualTo("a"), "built (not started: nothing connects)");
    }

    [Test]
    [Category("Redis")]
    public async Task ChannelCountersArePublishedOnTheGaggleMeterUntilTheChannelIsDisposed()
    {
        var configuration = await RedisServer.RequireAsync();
        string cluster = "metrics-" + Guid.NewGuid().ToString("N")[..8];
        string sender = "s-" + cluster, receiver = "r-" + cluster;
        using var metrics = new RedisMetrics(sender, receiver);
        var a = new RedisPubSubChannel(sender, new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster });
        var b = new RedisPubSubChannel(receiver, new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = cluster });
        await using (a)
        {
            await a.ConnectAsync(_ => { });
            await b.ConnectAsync(_ => { });
            for (int i = 0; i < 3; i++)
            {
                await a.SendAsync(receiver, new byte[] { 1, 2, 3 });
            }

            await using (var raw = await ConnectionMultiplexer.ConnectAsync(configuration))
            {
                await raw.GetSubscriber().PublishAsync(RedisChannel.Literal(b.ChannelPrefix + "node:" + receiver), new byte[] { 42 });
            }

            await Eventually.True(() => b.Statistics.Received == 3 && b.Statistics.DroppedFor(DropReason.Malformed) == 1 && a.Statistics.Published == 3, "three envelopes received and one garbage message dropped");
            var seen = metrics.Collect();
            using (Assert.EnterMultipleScope())
            {
                Assert.That(seen.GetValueOrDefault(("gaggle.redis.published", sender, null)), Is.EqualTo(3));
                Assert.That(seen.GetValueOrDefault(("gaggle.redis.received", receiver, null)), Is.EqualTo(3));
                Assert.That(seen.GetValueOrDefault(("gaggle.redis.dropped", receiver, "malformed")), Is.EqualTo(1));
                Assert.That(seen.GetValueOrDefault(("gaggle.redis.dropped", receiver, "bad-signature"), -1), Is.Zero);
                Assert.That(seen.ContainsKey(("gaggle.redis.publish.failures", sender, null)), Is.True);
                Assert.That(seen.ContainsKey(("gaggle.redis.publish.dropped", sender, null)), Is.True);
                Assert.That(seen.ContainsKey(("gaggle.redis.connection.failures", receiver, null)), Is.True);
            }

            await b.DisposeAsync();
            seen = metrics.Collect();
            Assert.That(seen.Keys.Select(k => k.Node), Has.None.EqualTo(receiver), "a disposed channel stops reporting");
            Assert.That(seen.Keys.Select(k => k.Node), Has.Some.EqualTo(sender));
        }

        Assert.That(metrics.Collect(), Is.Empty);
    }

    [Test]
    [Category("Redis")]
    public async Task TheCountersOfAChannelUseRedisCreatedAreReachable()
    {
        var configuration = await RedisServer.RequireAsync();
        string cluster = "metrics-" + Guid.NewGuid().ToString("N")[..8];
        string id = "solo-" + cluster;
        using var metrics = new RedisMetrics(id);
        var node = new GaggleNodeBuilder(new GaggleOptions { NodeId = id, Members = [id] }).UseRedis(configuration, redis => redis.ClusterName = cluster).Build();
        await using (node)
        {
            await node.StartAsync();
            Assert.That(metrics.Collect().Keys.Select(k => k.Instrument), Does.Contain("gaggle.redis.received").And.Contain("gaggle.redis.published"));
        }

        Assert.That(metrics.Collect(), Is.Empty, "the stopped node's channel stops reporting");
    }

    /// <summary>Reads the <c>gaggle.redis.*</c> instruments of some nodes on demand.</summary>
    private sealed class RedisMetrics : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly HashSet<string> _nodes;
        private ConcurrentDictionary<(string Instrument, string? Node, string? Reason), long> _seen = new();

        public RedisMetrics(params string[] nodes)
        {
            _nodes = [.. nodes];
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "Gaggle" && instrument.Name.StartsWith("gaggle.redis.", StringComparison.Ordinal))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                string? node = null, reason = null;
                foreach (var tag in tags)
                {
                    node = tag.Key == "gaggle.node" ? tag.Value as string : node;
                    reason = tag.Key == "reason" ? tag.Value as string : reason;
                }

                if (node is not null && _nodes.Contains(node))
                {
                    _seen[(instrument.Name, node, reason)] = value;
                }
            });
            _listener.Start();
        }

        public ConcurrentDictionary<(string Instrument, string? Node, string? Reason), long> Collect()
        {
            _seen = new();
            _listener.RecordObservableInstruments();
            return _seen;
        }

        public void Dispose() => _listener.Dispose();
    }
}
