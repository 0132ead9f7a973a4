using System.Diagnostics;
using System.Collections.Concurrent;
using Gaggle.Channels;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// A follower forwards appends to the leader in batches. A channel's size limit is set against
/// MaxMessageBytes, so a batch must fit it as encoded, length prefixes included.
/// </summary>
[TestFixture]
public sealed class ForwardBatchTests
{
    private const int MaxMessageBytes = 1024;

    [TestCase(false)]
    [TestCase(true)]
    public async Task ABatchOfSmallForwardedAppendsFitsMaxMessageBytesAsEncoded(bool traced)
    {
        // Traced, the callers' trace contexts go to the leader before the batches, split like them.
        using var listener = traced ? Listen() : null;
        using var caller = traced ? new ActivitySource("Gaggle.Tests.ForwardBatch") : null;
        using var request = caller?.StartActivity("request");
        string[] ids = ["a", "b", "c"];
        var network = new InMemoryNetwork(3);
        GaggleOptions Options(string id) => new()
        {
            NodeId = id,
            Members = ids,
            MaxMessageBytes = MaxMessageBytes,
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            // c never campaigns during the test: it stays a follower and must forward.
            ElectionTimeoutMin = TimeSpan.FromMilliseconds(id == "c" ? 60_000 : 150),
            ElectionTimeoutMax = TimeSpan.FromMilliseconds(id == "c" ? 120_000 : 300),
        };

        var recording = new RecordingChannel(network.CreateChannel("c"));
        await using var c = new GaggleNode(Options("c"), recording);
        await c.StartAsync();
        // No leader yet: the appends wait on c, and all go together once a leader is known.
        var appends = Enumerable.Range(0, 100).Select(i => c.AppendAsync(new byte[20], TimeSpan.FromSeconds(30))).ToList();
        await using var a = new GaggleNode(Options("a"), network.CreateChannel("a"));
        await using var b = new GaggleNode(Options("b"), network.CreateChannel("b"));
        await a.StartAsync();
        await b.StartAsync();
        await Task.WhenAll(appends);

        var sizes = recording.ForwardAppendSizes.ToList();
        Assert.That(sizes, Has.Count.GreaterThan(1), "the appends were split into several forwards");
        // A ForwardAppend is a version byte, a kind byte and the entry count (one byte below 128), then the entries.
        Assert.That(sizes, Has.All.LessThanOrEqualTo(MaxMessageBytes + 3));
        var traceSizes = recording.TraceContextsSizes.ToList();
        Assert.That(traceSizes, traced ? Has.Count.GreaterThan(1) : Is.Empty, "the trace contexts of 100 callers were split too");
        Assert.That(traceSizes, Has.All.LessThanOrEqualTo(MaxMessageBytes + 3));
    }

    private static ActivityListener Listen()
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is GaggleDiagnostics.ActivitySourceName or "Gaggle.Tests.ForwardBatch",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    private sealed class RecordingChannel(IChannel inner) : IChannel
    {
        public ConcurrentQueue<int> ForwardAppendSizes { get; } = new();

        public ConcurrentQueue<int> TraceContextsSizes { get; } = new();

        public string NodeId => inner.NodeId;

        public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default) => inner.ConnectAsync(receiver, cancellationToken);

        public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

        public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            switch (WireCodec.Decode(payload, NodeId, to))
            {
                case ForwardAppend:
                    ForwardAppendSizes.Enqueue(payload.Length);
                    break;
                case TraceContexts:
                    TraceContextsSizes.Enqueue(payload.Length);
                    break;
            }

            return inner.SendAsync(to, payload, cancellationToken);
        }

        public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.BroadcastAsync(payload, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
