using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Gaggle.Raft;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>
/// Membership changes over the Redis channel while appends keep coming: the cluster replaces two of
/// its three voters, its leader among them, and no acknowledged append is lost or duplicated.
/// </summary>
[TestFixture]
[Category("Redis")]
public sealed class MembershipOverRedisTests
{
    private static readonly string[] Originals = ["a", "b", "c"];
    private static readonly string[] Newcomers = ["d", "e"];
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <summary>
    /// a, b and c form the cluster; d and e join as learners, are promoted, then two of the original
    /// three are removed, the leader among them (first or last): a removed leader hands over once its
    /// own removal commits. Changes are asked of followers and learners, so most travel to the leader
    /// over Redis. The leader's log is compacted before d and e join, so they catch up from a snapshot.
    /// Three writers append through different nodes all along.
    /// </summary>
    [TestCase(false, TestName = "ReplacingTwoVotersUnderLoadLosesNoAcknowledgedAppend(leader removed last)")]
    [TestCase(true, TestName = "ReplacingTwoVotersUnderLoadLosesNoAcknowledgedAppend(leader removed first)")]
    public async Task ReplacingTwoVotersUnderLoadLosesNoAcknowledgedAppend(bool leaderFirst)
    {
        var total = Stopwatch.StartNew();
        await using var cluster = new MembershipCluster(await RedisServer.RequireAsync());
        try
        {
            foreach (var id in Originals)
            {
                await cluster.StartAsync(id, join: false);
            }

            await cluster.WaitForLeaderAsync(Originals);
            await using var load = AppendLoad.Start(writers: 3, [.. Originals.Select(id => cluster.Nodes[id])]);
            // Past the snapshot threshold, so the newcomers cannot catch up from the log alone.
            await Eventually.True(() => load.AcknowledgedCount >= 3 * MembershipCluster.SnapshotThreshold, "appends past the snapshot threshold", Deadline);

            foreach (var id in Newcomers)
            {
                await cluster.StartAsync(id, join: true);
            }

            await cluster.Nodes["b"].AddLearnerAsync("d", timeout: Deadline);
            var withLearners = await cluster.Nodes["c"].AddLearnerAsync("e", timeout: Deadline);
            Assert.That(withLearners.Learners, Is.EqualTo(Newcomers));

            // A learner may ask for its own promotion; the leader waits until it has caught up.
            await cluster.Nodes["d"].PromoteAsync("d", timeout: Deadline);
            var promoted = await cluster.Nodes["e"].PromoteAsync("e", timeout: Deadline);
            Assert.That(promoted.Voters, Is.EqualTo(new[] { "a", "b", "c", "d", "e" }));
            Assert.That(promoted.Learners, Is.Empty);
            Assert.That(Newcomers.Select(cluster.FirstCommittedIndex), Is.All.GreaterThan(MembershipCluster.SnapshotThreshold), "the first entry d and e applied from the log (they started from a snapshot)");

            // Appends go through the newcomers while the originals are removed.
            load.Targets = [.. Newcomers.Select(id => cluster.Nodes[id])];
            var leader = await cluster.WaitForLeaderAsync(cluster.Nodes.Keys);
            if (!Originals.Contains(leader.Id))
            {
                await cluster.Nodes["d"].TransferLeadershipAsync("a", Deadline);
                leader = cluster.Nodes["a"];
            }

            long acknowledgedBeforeRemovals = load.AcknowledgedCount;
            string removedFollower;
            GaggleMembership final;
            if (leaderFirst)
            {
                await cluster.Nodes["e"].RemoveMemberAsync(leader.Id, timeout: Deadline);
                var successor = await cluster.WaitForLeaderAsync(cluster.Nodes.Keys.Where(id => id != leader.Id));
                removedFollower = Originals.First(id => id != leader.Id && id != successor.Id);
                final = await cluster.Nodes["d"].RemoveMemberAsync(removedFollower, timeout: Deadline);
            }
            else
            {
                removedFollower = Originals.First(id => id != leader.Id);
                await cluster.Nodes["d"].RemoveMemberAsync(removedFollower, timeout: Deadline);
                final = await cluster.Nodes["e"].RemoveMemberAsync(leader.Id, timeout: Deadline);
            }

            string keeper = Originals.Single(id => id != leader.Id && id != removedFollower);
            string[] remaining = [keeper, .. Newcomers];
            load.Targets = [.. remaining.Select(id => cluster.Nodes[id])];
            Assert.That(final.Voters, Is.EqualTo(remaining.Order(StringComparer.Ordinal)));
            Assert.That(final.Learners, Is.Empty);

            // The cluster goes on committing under load without the removed leader, still running.
            await Eventually.True(() => load.AcknowledgedCount >= acknowledgedBeforeRemovals + 1000, "appends after the removals", Deadline);
            var acknowledged = await load.StopAsync();
            TestContext.Progress.WriteLine($"{acknowledged.Count} appends acknowledged, {load.FailedCount} timed out and retried; removed {(leaderFirst ? $"leader {leader.Id} then {removedFollower}" : $"{removedFollower} then leader {leader.Id}")}.");

            await WaitForSameCommitAsync(cluster, remaining);
            var reference = cluster.CommittedUnion();
            AssertEveryAcknowledgedAppendCommittedOnce(acknowledged, reference);
            await AssertSameCommittedLogsAsync(cluster, remaining);

            // Every remaining member has the final configuration, and one of them leads.
            foreach (var id in remaining)
            {
                Assert.That(cluster.Nodes[id].Membership, Is.EqualTo(final).Using<GaggleMembership>(SameMembership), $"node {id}'s configuration");
            }

            var newLeader = await cluster.WaitForLeaderAsync(remaining);
            Assert.That(remaining, Does.Contain(newLeader.Id));
            TestContext.Progress.WriteLine($"Leader {newLeader.Id} in term {newLeader.Term}; d and e applied from index {cluster.FirstCommittedIndex("d")} and {cluster.FirstCommittedIndex("e")}.");
            Assert.That(cluster.Nodes[leader.Id].IsLeader, Is.False, "the removed leader stepped down");

            // Without the removed nodes, every remaining member still commits.
            await cluster.StopAsync(removedFollower);
            await cluster.StopAsync(leader.Id);
            var after = await Task.WhenAll(remaining.Select(id => cluster.Nodes[id].AppendAsync(Encoding.UTF8.GetBytes($"after-{id}"), Deadline)));
            await Eventually.True(() => remaining.All(id => cluster.Nodes[id].CommitIndex >= after.Max()), "the last appends committed on every remaining member", Deadline);
            await AssertSameCommittedLogsAsync(cluster, remaining);
            TestContext.Progress.WriteLine($"Took {total.Elapsed.TotalSeconds:0.0} s.");
        }
        catch
        {
            cluster.DumpLog();
            throw;
        }
    }

    private static bool SameMembership(GaggleMembership x, GaggleMembership y)
        => x.Index == y.Index && x.Voters.SequenceEqual(y.Voters) && x.Learners.SequenceEqual(y.Learners);

    private static async Task WaitForSameCommitAsync(MembershipCluster cluster, string[] ids)
    {
        var nodes = ids.Select(id => cluster.Nodes[id]).ToList();
        await Eventually.True(
            () => nodes.All(n => n.CommitIndex == nodes[0].CommitIndex && n.LastLogIndex == nodes[0].CommitIndex),
            $"{string.Join(", ", ids)} to commit and apply their whole logs, up to the same index",
            Deadline);
    }

    private static void AssertEveryAcknowledgedAppendCommittedOnce(IReadOnlyList<(string Value, long Index)> acknowledged, IReadOnlyDictionary<long, string> committed)
    {
        var indexesOf = committed.GroupBy(pair => pair.Value).ToDictionary(g => g.Key, g => g.Select(pair => pair.Key).ToList());
        foreach (var (value, index) in acknowledged)
        {
            Assert.That(committed.TryGetValue(index, out var at) ? at : null, Is.EqualTo(value), $"the entry committed at acknowledged index {index}");
            Assert.That(indexesOf[value], Is.EqualTo(new[] { index }), $"the indexes at which '{value}' committed");
        }
    }

    /// <summary>The committed entries every node still holds (those before a snapshot are gone) are the same on every node.</summary>
    private static async Task AssertSameCommittedLogsAsync(MembershipCluster cluster, string[] ids)
    {
        var logs = new Dictionary<string, IReadOnlyList<GaggleLogEntry>>();
        foreach (var id in ids)
        {
            var node = cluster.Nodes[id];
            long commit = node.CommitIndex;
            logs[id] = [.. (await node.GetLogAsync()).Where(entry => entry.Index <= commit)];
        }

        long from = logs.Values.Max(log => log[0].Index);
        long to = logs.Values.Min(log => log[^1].Index);
        Assert.That(to - from, Is.GreaterThan(100), "committed entries held by every node");
        var reference = logs[ids[0]].Where(entry => entry.Index >= from && entry.Index <= to).Select(Describe).ToList();
        foreach (var id in ids.Skip(1))
        {
            Assert.That(logs[id].Where(entry => entry.Index >= from && entry.Index <= to).Select(Describe), Is.EqualTo(reference), $"node {id}'s committed log from {from} to {to}");
        }
    }

    private static string Describe(GaggleLogEntry entry)
        => $"{entry.Index}/{entry.Term}/{entry.Kind}/{entry.OriginNodeId}/{Encoding.UTF8.GetString(entry.Data.Span)}";

    /// <summary>Nodes over one Redis, each with storage that survives a restart, as membership changes need.</summary>
    private sealed class MembershipCluster(string configuration) : IAsyncDisposable
    {
        public const int SnapshotThreshold = 1000;

        private readonly string _name = "members-" + Guid.NewGuid().ToString("N")[..12];
        private readonly CapturingLoggerFactory _logging = new();

        public ConcurrentDictionary<string, GaggleNode> Nodes { get; } = new();

        /// <summary>What each node raised as committed: index to text.</summary>
        private ConcurrentDictionary<string, ConcurrentDictionary<long, string>> Committed { get; } = new();

        public async Task StartAsync(string id, bool join)
        {
            var options = new GaggleOptions
            {
                NodeId = id,
                Members = Originals,
                Join = join,
                HeartbeatInterval = TimeSpan.FromMilliseconds(20),
                ElectionTimeoutMin = TimeSpan.FromMilliseconds(150),
                ElectionTimeoutMax = TimeSpan.FromMilliseconds(300),
                SnapshotThresholdEntries = SnapshotThreshold,
                SnapshotRetainEntries = SnapshotThreshold / 4,
            };
            // The channel accepts every node that may ever join; the Raft layer decides who counts.
            var redis = new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = _name, Members = [.. Originals, .. Newcomers] };
            var node = new GaggleNode(options, new RedisPubSubChannel(id, redis), new InMemoryRaftStorage { SurvivesRestart = true }, loggerFactory: _logging);
            var committed = Committed.GetOrAdd(id, _ => new());
            node.Committed += (_, entry) => committed[entry.Index] = Encoding.UTF8.GetString(entry.Data.Span);
            Nodes[id] = node;
            await node.StartAsync();
        }

        public async Task StopAsync(string id)
        {
            if (Nodes.TryRemove(id, out var node))
            {
                await node.DisposeAsync();
            }
        }

        /// <summary>Waits until the nodes named agree on one leader among them and returns it.</summary>
        public async Task<GaggleNode> WaitForLeaderAsync(IEnumerable<string> ids)
        {
            var nodes = ids.Select(id => Nodes[id]).ToList();
            GaggleNode? leader = null;
            await Eventually.True(
                () =>
                {
                    var leaders = nodes.Where(n => n.IsLeader).ToList();
                    leader = leaders.Count == 1 && nodes.All(n => n.LeaderId == leaders[0].Id && n.Term == leaders[0].Term) ? leaders[0] : null;
                    return leader is not null;
                },
                $"{string.Join(", ", nodes.Select(n => n.Id))} to agree on one leader",
                Deadline);
            return leader!;
        }

        /// <summary>The lowest index <paramref name="id"/> raised as committed (entries before it came in a snapshot).</summary>
        public long FirstCommittedIndex(string id) => Committed.TryGetValue(id, out var entries) && !entries.IsEmpty ? entries.Keys.Min() : 0;

        /// <summary>
        /// Everything any node raised as committed, checked to agree wherever two nodes saw the same
        /// index (a node that installed a snapshot skipped the entries in it).
        /// </summary>
        public IReadOnlyDictionary<long, string> CommittedUnion()
        {
            var union = new Dictionary<long, string>();
            foreach (var (id, entries) in Committed)
            {
                foreach (var (index, text) in entries)
                {
                    if (union.TryGetValue(index, out var seen))
                    {
                        Assert.That(text, Is.EqualTo(seen), $"node {id}'s committed entry at {index}");
                    }
                    else
                    {
                        union[index] = text;
                    }
                }
            }

            return union;
        }

        public void DumpLog()
        {
            foreach (var (category, level, message) in _logging.Lines.Where(line => line.Level >= LogLevel.Information).TakeLast(300))
            {
                TestContext.Out.WriteLine($"{level} {category}: {message}");
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var id in Nodes.Keys.ToList())
            {
                await StopAsync(id);
            }
        }
    }

    /// <summary>
    /// Writers that each append numbered entries one at a time, through the target nodes in turn. An
    /// append that fails (a timeout while the leader changes) is not acknowledged; the writer goes on
    /// with a new value, so only values whose append returned an index are expected in the log.
    /// </summary>
    private sealed class AppendLoad : IAsyncDisposable
    {
        private static readonly TimeSpan AppendTimeout = TimeSpan.FromSeconds(2);
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<(string Value, long Index)> _acknowledged = new();
        private readonly List<Task> _writers = [];
        private int _failed;

        private AppendLoad(GaggleNode[] targets)
        {
            Targets = targets;
        }

        /// <summary>The nodes the writers append through (replaced while the load runs).</summary>
        public volatile GaggleNode[] Targets;

        public long AcknowledgedCount => _acknowledged.Count;

        public int FailedCount => Volatile.Read(ref _failed);

        public static AppendLoad Start(int writers, GaggleNode[] targets)
        {
            var load = new AppendLoad(targets);
            for (int writer = 0; writer < writers; writer++)
            {
                int w = writer;
                load._writers.Add(Task.Run(() => load.WriteAsync(w)));
            }

            return load;
        }

        private async Task WriteAsync(int writer)
        {
            for (int n = 0; !_stop.IsCancellationRequested; n++)
            {
                var targets = Targets;
                var node = targets[(writer + n) % targets.Length];
                string value = $"w{writer}-{n}";
                try
                {
                    long index = await node.AppendAsync(Encoding.UTF8.GetBytes(value), AppendTimeout, _stop.Token);
                    _acknowledged.Enqueue((value, index));
                }
                catch (TimeoutException)
                {
                    Interlocked.Increment(ref _failed);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
            }
        }

        /// <summary>Stops the writers and returns every acknowledged append.</summary>
        public async Task<IReadOnlyList<(string Value, long Index)>> StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_writers);
            return [.. _acknowledged];
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _stop.Dispose();
        }
    }
}
