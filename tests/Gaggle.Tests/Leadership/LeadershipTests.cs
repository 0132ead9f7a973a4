using System.Diagnostics;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Leadership;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class LeadershipTests
{
    [Test]
    public async Task TheLeaderGetsALeaseBackedTokenAndFollowersDoNot()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var token = await leader.Leadership.WaitForLeadershipAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(token.IsCancellationRequested, Is.False);
        Assert.That(leader.Leadership.IsLeader, Is.True);
        var follower = cluster.AnyFollower(leader);
        Assert.That(follower.Leadership.IsLeader, Is.False);
        Assert.That(follower.Leadership.LeadershipToken.IsCancellationRequested, Is.True);
    }

    [Test]
    public async Task ThePartitionedLeadersTokenFiresBeforeAnotherNodeBecomesLeader()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var old = await cluster.WaitForLeaderAsync();
        var oldToken = await old.Leadership.WaitForLeadershipAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var clock = Stopwatch.StartNew();
        long lostAt = -1;
        long newLeaderAt = -1;
        oldToken.Register(() => Interlocked.CompareExchange(ref lostAt, clock.ElapsedTicks, -1));
        foreach (var node in cluster.Nodes.Values.Where(n => n != old))
        {
            _ = node.Leadership.WaitForLeadershipAsync().ContinueWith(_ => Interlocked.CompareExchange(ref newLeaderAt, clock.ElapsedTicks, -1), TaskScheduler.Default);
        }

        cluster.Network.Isolate(old.Id);
        await Eventually.True(() => Interlocked.Read(ref lostAt) >= 0 && Interlocked.Read(ref newLeaderAt) >= 0, "the old token to fire and a new leader to hold a lease");
        Assert.That(lostAt, Is.LessThan(newLeaderAt), "the old leader stopped trusting itself before anyone else was elected");
        Assert.That(old.Leadership.IsLeader, Is.False);
    }

    [Test]
    public async Task ALeaderThatLeavesGivesUpItsLeadershipFirst()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var token = await leader.Leadership.WaitForLeadershipAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await cluster.StopAsync(leader.Id);
        await Eventually.True(() => token.IsCancellationRequested, "the token of a stopped leader");
    }
}
