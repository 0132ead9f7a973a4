using System.Text;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// The behaviours the original gaggle's test suite checked, on the .NET node over the in-memory
/// network, plus what the original could not do (re-elect and commit with a node down).
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class NodeTests
{
    private static ReadOnlyMemory<byte> Bytes(string text) => Encoding.UTF8.GetBytes(text);

    [Test]
    public async Task ElectsExactlyOneLeader()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        Assert.That(cluster.Nodes.Values.Count(n => n.IsLeader), Is.EqualTo(1));
        Assert.That(leader.Term, Is.GreaterThan(0));
    }

    [Test]
    public async Task ReElectsAfterTheLeaderLeaves()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var first = await cluster.WaitForLeaderAsync();

        // The term it led in: while it leaves, it hands leadership over and may hear the next term before it stops.
        long firstTerm = first.Term;
        await cluster.StopAsync(first.Id);
        var second = await cluster.WaitForLeaderAsync();
        Assert.That(second.Id, Is.Not.EqualTo(first.Id));
        Assert.That(second.Term, Is.GreaterThan(firstTerm));
    }

    [Test]
    public async Task ReElectsAndCommitsAfterTheLeaderCrashesWithoutLeaving()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var first = await cluster.WaitForLeaderAsync();
        cluster.Network.Isolate(first.Id);
        await cluster.StopAsync(first.Id);
        var second = await cluster.WaitForLeaderAsync();
        await cluster.AnyFollower(second).AppendAsync(Bytes("after-crash"), TimeSpan.FromSeconds(10));
        await cluster.WaitForCommittedEverywhereAsync("after-crash");
        Assert.That(second.Id, Is.Not.EqualTo(first.Id));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task AppendFromTheLeaderCommitsOnEveryNode(bool accelerate)
    {
        await using var cluster = new NodeCluster(3, o => o.AccelerateHeartbeats = accelerate);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        long index = await leader.AppendAsync(Bytes("from-leader"), TimeSpan.FromSeconds(10));
        await cluster.WaitForCommittedEverywhereAsync("from-leader");
        Assert.That(index, Is.GreaterThan(1), "index 1 is the first leader's no-op");
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task AppendFromAFollowerCommitsOnEveryNode(bool accelerate)
    {
        await using var cluster = new NodeCluster(3, o => o.AccelerateHeartbeats = accelerate);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        long index = await follower.AppendAsync(Bytes("from-follower"), TimeSpan.FromSeconds(10));
        await cluster.WaitForCommittedEverywhereAsync("from-follower");
        Assert.That(follower.CommitIndex, Is.GreaterThanOrEqualTo(index));
    }

    [Test]
    public async Task AppendsWaitUntilALeaderExists()
    {
        await using var cluster = new NodeCluster(3);
        var lonely = await cluster.StartAsync("a");
        var appends = Enumerable.Range(0, 5).Select(i => lonely.AppendAsync(Bytes($"early-{i}"), TimeSpan.FromSeconds(20))).ToList();
        Assert.That(appends.All(t => !t.IsCompleted), Is.True, "nothing can commit without a quorum");
        await cluster.StartAsync("b");
        await cluster.StartAsync("c");
        await Task.WhenAll(appends);
        for (int i = 0; i < 5; i++)
        {
            await cluster.WaitForCommittedEverywhereAsync($"early-{i}");
        }
    }

    [Test]
    public async Task AppendTimesOutWithoutAQuorum()
    {
        await using var cluster = new NodeCluster(3);
        var lonely = await cluster.StartAsync("a");
        var error = await Assert.ThrowsAsync<TimeoutException>(() => lonely.AppendAsync(Bytes("never"), TimeSpan.FromMilliseconds(200)));
        Assert.That(error!.Message, Does.Contain("was not committed within 200 ms"));
    }

    [Test]
    public async Task ThreeNodeClusterWithOneNodeDownElectsAndCommits()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAsync("a");
        await cluster.StartAsync("b");
        var leader = await cluster.WaitForLeaderAsync();
        await cluster.AnyFollower(leader).AppendAsync(Bytes("two-of-three"), TimeSpan.FromSeconds(10));
        await cluster.WaitForCommittedEverywhereAsync("two-of-three");
    }

    [Test]
    public async Task EveryNodeCommitsTheSameEntriesInTheSameOrder()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var appends = cluster.Nodes.Values.SelectMany(n => Enumerable.Range(0, 50).Select(i => n.AppendAsync(Bytes($"{n.Id}-{i}"), TimeSpan.FromSeconds(20)))).ToList();
        await Task.WhenAll(appends);
        await Eventually.True(() => cluster.Ids.All(id => cluster.CommittedTexts(id).Count == 150), "150 entries on every node");
        var reference = cluster.CommittedTexts("a");
        Assert.That(cluster.CommittedTexts("b"), Is.EqualTo(reference));
        Assert.That(cluster.CommittedTexts("c"), Is.EqualTo(reference));
        var log = await leader.GetLogAsync();
        Assert.That(log.Where(e => e.Kind == Gaggle.Raft.EntryKind.Normal).Select(e => Encoding.UTF8.GetString(e.Data.Span)), Is.EqualTo(reference));
        Assert.That(leader.HasUncommittedEntriesInPreviousTerms(), Is.False);
    }

    [Test]
    public async Task DisposingFailsPendingAppendsClearly()
    {
        await using var cluster = new NodeCluster(3);
        var lonely = await cluster.StartAsync("a");
        var pending = lonely.AppendAsync(Bytes("pending"));
        await cluster.StopAsync("a");
        var error = await Assert.ThrowsAsync<ObjectDisposedException>(() => pending);
        Assert.That(error!.Message, Does.Contain("'a' stopped before the operation completed"));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => lonely.AppendAsync(Bytes("after")));
    }

    [Test]
    public async Task RestartedNodeKeepsItsTermAndLog()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        await leader.AppendAsync(Bytes("before-restart"), TimeSpan.FromSeconds(10));
        await cluster.WaitForCommittedEverywhereAsync("before-restart");
        var follower = cluster.AnyFollower(leader);
        long term = follower.Term;
        await cluster.StopAsync(follower.Id);
        var restarted = await cluster.StartAsync(follower.Id);
        Assert.That(restarted.Term, Is.GreaterThanOrEqualTo(term));
        await cluster.WaitForCommittedEverywhereAsync("before-restart");
    }

    [Test]
    public async Task LossyNetworkStillCommitsEveryAppendExactlyOnce()
    {
        await using var cluster = new NodeCluster(3, seed: 7);
        cluster.Network.SetDefaultFaults(new Gaggle.Channels.LinkFaults { DropRate = 0.1, DuplicateRate = 0.1, ReorderRate = 0.2, MaxDelay = TimeSpan.FromMilliseconds(2) });
        await cluster.StartAllAsync();
        await cluster.WaitForLeaderAsync();
        var appends = cluster.Nodes.Values.SelectMany(n => Enumerable.Range(0, 30).Select(i => n.AppendAsync(Bytes($"{n.Id}-{i}"), TimeSpan.FromSeconds(30)))).ToList();
        await Task.WhenAll(appends);
        await Eventually.True(() => cluster.Ids.All(id => cluster.CommittedTexts(id).Count >= 90), "90 entries on every node");
        var reference = cluster.CommittedTexts("a");
        Assert.That(reference, Is.Unique);
        Assert.That(reference, Has.Count.EqualTo(90));
        Assert.That(cluster.CommittedTexts("b"), Is.EqualTo(reference));
        Assert.That(cluster.CommittedTexts("c"), Is.EqualTo(reference));
    }
}
