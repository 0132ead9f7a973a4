using System.Text;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>Snapshots and compaction on running nodes, with an application state machine.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class SnapshotNodeTests
{
    /// <summary>Sums the numbers appended; its snapshot is the sum and the count.</summary>
    private sealed class Summer : IGaggleStateMachine
    {
        public long Sum { get; private set; }

        public long Count { get; private set; }

        public void Apply(GaggleLogEntry entry)
        {
            Sum += long.Parse(Encoding.UTF8.GetString(entry.Data.Span));
            Count++;
        }

        public void WriteSnapshot(Stream output)
        {
            using var writer = new BinaryWriter(output, Encoding.UTF8, leaveOpen: true);
            writer.Write(Sum);
            writer.Write(Count);
        }

        public void ReadSnapshot(Stream input)
        {
            using var reader = new BinaryReader(input, Encoding.UTF8, leaveOpen: true);
            Sum = reader.ReadInt64();
            Count = reader.ReadInt64();
        }
    }

    /// <summary>Three nodes, each (re)started with a new <see cref="Summer"/> recorded in <paramref name="machines"/>.</summary>
    private static NodeCluster ClusterOfSummers(Dictionary<string, Summer> machines, Action<GaggleOptions> tune)
        => new(3, options =>
        {
            tune(options);
            lock (machines)
            {
                var summer = new Summer();
                machines[options.NodeId] = summer;
                options.StateMachines["sum"] = summer;
            }
        });

    [Test]
    public async Task AFollowerThatMissedCompactedEntriesCatchesUpFromASnapshot()
    {
        var machines = new Dictionary<string, Summer>();
        await using var cluster = ClusterOfSummers(machines, options =>
        {
            options.SnapshotThresholdEntries = 50;
            options.SnapshotRetainEntries = 10;
            options.MaxMessageBytes = 1024;
        });
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var lagging = cluster.AnyFollower(leader);
        cluster.Network.Isolate(lagging.Id);
        for (int i = 1; i <= 400; i++)
        {
            await leader.AppendAsync(Encoding.UTF8.GetBytes(i.ToString()), TimeSpan.FromSeconds(10));
        }

        var leaderLog = await leader.GetLogAsync();
        Assert.That(leaderLog[0].Index, Is.GreaterThan(300), "the leader compacted its log");
        Assert.That(leaderLog, Has.Count.LessThan(70));

        cluster.Network.Heal();
        await Eventually.True(() => lagging.CommitIndex == leader.CommitIndex, "the lagging follower to catch up");
        await leader.AppendAsync("1000"u8.ToArray(), TimeSpan.FromSeconds(10));
        long expected = 400 * 401 / 2 + 1000;
        await Eventually.True(() => cluster.Ids.All(id => machines[id].Sum == expected), "every state machine to hold the same sum");
        Assert.That(machines[lagging.Id].Count, Is.EqualTo(401));
        Assert.That(cluster.CommittedTexts(lagging.Id), Has.Count.LessThan(401), "the follower got a snapshot instead of every entry");
    }

    [Test]
    public async Task ARestartedNodeRebuildsItsStateFromItsOwnSnapshot()
    {
        var machines = new Dictionary<string, Summer>();
        await using var cluster = ClusterOfSummers(machines, options =>
        {
            options.SnapshotThresholdEntries = 20;
            options.SnapshotRetainEntries = 0;
        });
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        for (int i = 1; i <= 100; i++)
        {
            await leader.AppendAsync(Encoding.UTF8.GetBytes(i.ToString()), TimeSpan.FromSeconds(10));
        }

        var follower = cluster.AnyFollower(leader);
        await Eventually.True(() => machines[follower.Id].Count == 100, "the follower to apply everything");
        await cluster.StopAsync(follower.Id);
        var restarted = await cluster.StartAsync(follower.Id);
        await Eventually.True(() => machines[restarted.Id].Sum == 5050, "the restarted node's state");
        Assert.That(machines[restarted.Id].Count, Is.EqualTo(100));
    }
}

[TestFixture]
public sealed class SnapshotCoveredAppendTests
{
    /// <summary>
    /// A follower's append that committed while the follower was cut off, and reached it only inside
    /// a snapshot, completes (it used to time out: its retries were dropped as duplicates).
    /// </summary>
    [Test]
    public async Task AnAppendThatArrivesOnlyInsideASnapshotCompletes()
    {
        await using var cluster = new NodeCluster(3, options =>
        {
            options.SnapshotThresholdEntries = 50;
            options.SnapshotRetainEntries = 10;
        });
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        cluster.Network.SetLinkFaults(leader.Id, follower.Id, new Gaggle.Channels.LinkFaults { DropRate = 1 });
        var pending = follower.AppendAsync("from the cut-off follower"u8.ToArray(), TimeSpan.FromSeconds(20));
        await Eventually.True(() => cluster.CommittedTexts(leader.Id).Contains("from the cut-off follower"), "the forwarded append to commit");
        for (int i = 0; i < 200; i++)
        {
            await leader.AppendAsync(System.Text.Encoding.UTF8.GetBytes(i.ToString()), TimeSpan.FromSeconds(10));
        }

        cluster.Network.ClearFaults();
        long index = await pending;
        Assert.That(index, Is.GreaterThan(0));
        Assert.That(cluster.CommittedTexts(follower.Id), Does.Not.Contain("from the cut-off follower"), "it arrived inside the snapshot, not as an entry");
    }
}
