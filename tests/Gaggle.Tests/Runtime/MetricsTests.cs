using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

[TestFixture]
[NonParallelizable] // the meter is process-wide: other clusters' nodes must not report under the same ids meanwhile
public sealed class MetricsTests
{
    [Test]
    public async Task TheGaggleMeterReportsCommitsLatencyAndTheTermPerNode()
    {
        var seen = new ConcurrentDictionary<(string Instrument, string? Node), double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Gaggle")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? node = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "gaggle.node")
                {
                    node = tag.Value as string;
                }
            }

            seen.AddOrUpdate((instrument.Name, node), value, (_, old) => instrument is Counter<long> ? old + value : value);
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        listener.Start();

        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        for (int i = 0; i < 5; i++)
        {
            await leader.AppendAsync(new byte[] { 1 }, TimeSpan.FromSeconds(10));
        }

        await Eventually.True(() => cluster.Ids.All(id => seen.GetValueOrDefault(("gaggle.entries.committed", id)) >= 5), "5 commits counted on every node");
        listener.RecordObservableInstruments();
        Assert.That(seen[("gaggle.term", leader.Id)], Is.EqualTo(leader.Term));
        Assert.That(seen[("gaggle.is_leader", leader.Id)], Is.EqualTo(1));
        Assert.That(seen[("gaggle.voters", leader.Id)], Is.EqualTo(3));
        Assert.That(seen[("gaggle.learners", leader.Id)], Is.EqualTo(0));
        Assert.That(seen.ContainsKey(("gaggle.append.duration", leader.Id)), Is.True);
        Assert.That(seen.GetValueOrDefault(("gaggle.leader.changes", leader.Id)), Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public async Task MessagesTheRaftCoreRefusesAreCountedInTheDropMetricLikeInDroppedMessages()
    {
        var dropped = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Gaggle" && instrument.Name == "gaggle.messages.dropped")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? node = null, reason = null;
            foreach (var tag in tags)
            {
                node = tag.Key == "gaggle.node" ? tag.Value as string : node;
                reason = tag.Key == "reason" ? tag.Value as string : reason;
            }

            if (node == "refuser")
            {
                dropped.AddOrUpdate(reason ?? "", value, (_, old) => old + value);
            }
        });
        listener.Start();

        // ClusterSize mode with every seat taken: the core refuses any other sender.
        var network = new InMemoryNetwork(1);
        await using var node = new GaggleNode(new GaggleOptions { NodeId = "refuser", ClusterSize = 1 }, network.CreateChannel("refuser"));
        await node.StartAsync();
        await using var intruder = network.CreateChannel("intruder");
        await intruder.ConnectAsync(_ => { });
        for (int i = 1; i <= 3; i++)
        {
            await intruder.SendAsync("refuser", WireCodec.Encode(new RaftWireMessage(new RaftMessage { Type = MessageType.Heartbeat, From = "intruder", Term = i })));
        }

        await Eventually.True(() => node.DroppedMessages == 3, "the three refused messages counted in DroppedMessages");
        await Eventually.True(() => dropped.Values.Sum() == node.DroppedMessages, "the metric to agree with DroppedMessages");
        Assert.That(dropped.GetValueOrDefault("refused"), Is.EqualTo(3));
    }
}
