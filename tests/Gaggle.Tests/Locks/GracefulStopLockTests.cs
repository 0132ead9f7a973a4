using System.Diagnostics;
using Gaggle.Channels;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>
/// A node stopped gracefully (<see cref="GaggleNode.DisposeAsync"/>) while it held locks: it releases
/// them first, so the next waiter gets each at once, not a lease later, as a closed ZooKeeper session
/// frees its ephemeral lock nodes; on a manual clock.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class GracefulStopLockTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(10);

    [TestCase(false, Description = "a follower holds")]
    [TestCase(true, Description = "the leader holds")]
    public async Task A_node_disposed_while_holding_locks_releases_them_so_the_next_waiter_gets_them_at_once(bool leaderHolds)
    {
        var (cluster, _, holder, waiter) = await ClusterAsync(leaderHolds);
        await using var _ = cluster;
        var held = holder.Locks.AcquireAsync("job", TimeSpan.FromSeconds(30));
        var rw = holder.Locks.AcquireWriteAsync("table", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => held.IsCompleted && rw.IsCompleted, "the holder holds both");
        var (job, table) = (await held, await rw);
        var next = waiter.Locks.AcquireAsync("job", TimeSpan.FromMinutes(1));
        var reader = waiter.Locks.AcquireReadAsync("table", TimeSpan.FromMinutes(1));
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(500));
        Assert.That((next.IsCompleted, reader.IsCompleted), Is.EqualTo((false, false)), "both wait for the holder");

        var stoppedAt = cluster.Time.GetUtcNow();
        await cluster.StopAsync(holder.Id);
        await cluster.AdvanceUntilAsync(() => next.IsCompleted && reader.IsCompleted, "the waiter gets both");
        var after = cluster.Time.GetUtcNow() - stoppedAt;

        Assert.That(after, Is.LessThan(Lease / 5), "released at the stop, not a lease later");
        Assert.That((await next).FencingToken, Is.GreaterThan(job.FencingToken));
        Assert.That((await reader).FencingToken, Is.GreaterThan(table.FencingToken));
        Assert.That((job.HandleLostToken.IsCancellationRequested, table.HandleLostToken.IsCancellationRequested), Is.EqualTo((true, true)), "the holder's handles are lost once it stopped");
    }

    /// <summary>A node stopping while it also waits for the lock it holds: its own request is withdrawn before the release, so the release passes the lock to the other node's waiter.</summary>
    [Test]
    [Repeat(20)]
    public async Task The_stopping_nodes_own_waiting_request_is_withdrawn_before_its_release([Values(false, true)] bool leaderHolds)
    {
        var (cluster, _, holder, waiter) = await ClusterAsync(leaderHolds);
        await using var _ = cluster;
        await HoldJobAsync(cluster, holder);
        var own = holder.Locks.AcquireAsync("job", TimeSpan.FromMinutes(1));
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(200));
        var next = waiter.Locks.AcquireAsync("job", TimeSpan.FromMinutes(1));
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(200));

        var stoppedAt = cluster.Time.GetUtcNow();
        await cluster.StopAsync(holder.Id);
        await cluster.AdvanceUntilAsync(() => next.IsCompleted, "the waiter gets it");
        Assert.That(async () => await own, Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(cluster.Time.GetUtcNow() - stoppedAt, Is.LessThan(Lease / 5), "released at the stop, not a lease later");
    }

    /// <summary>An acquire made while the node stops fails with ObjectDisposedException, and nothing of the stopped node holds the lock.</summary>
    [Test]
    public async Task An_acquire_made_while_the_node_stops_fails_and_holds_nothing([Values(false, true)] bool leaderHolds)
    {
        var (cluster, _, holder, waiter) = await ClusterAsync(leaderHolds);
        await using var _ = cluster;
        await HoldJobAsync(cluster, holder);

        var stopping = cluster.StopAsync(holder.Id);
        var late = holder.Locks.AcquireAsync("other", TimeSpan.FromSeconds(30));
        await stopping;
        Assert.That(async () => await late.WaitAsync(TimeSpan.FromSeconds(5)), Throws.InstanceOf<ObjectDisposedException>());

        var stoppedAt = cluster.Time.GetUtcNow();
        var next = waiter.Locks.AcquireAsync("other", TimeSpan.FromMinutes(1));
        await cluster.AdvanceUntilAsync(() => next.IsCompleted, "the waiter gets 'other'");
        Assert.That(cluster.Time.GetUtcNow() - stoppedAt, Is.LessThan(Lease / 5), "nothing of the stopped node holds 'other'");
    }

    /// <summary>Without a leader, a node stops at once, even on a clock that does not move: its holds are left to their leases.</summary>
    [Test]
    public async Task Without_a_leader_a_node_stops_at_once_on_a_clock_that_does_not_move()
    {
        var (cluster, leader, holder, waiter) = await ClusterAsync(leaderHolds: false);
        await using var _ = cluster;
        await HoldJobAsync(cluster, holder);
        await cluster.StopAsync(waiter.Id);
        await cluster.StopAsync(leader.Id);
        await cluster.AdvanceUntilAsync(() => holder.LeaderId is null, "the holder knows no leader");

        var stopping = holder.DisposeAsync().AsTask();
        var watch = Stopwatch.StartNew();
        bool finished = await Task.WhenAny(stopping, Task.Delay(TimeSpan.FromSeconds(10))) == stopping;
        Assert.That(finished, Is.True, $"stopped within {watch.ElapsedMilliseconds} ms of real time without the clock moving");
    }

    /// <summary>A second DisposeAsync returns only once the node is stopped (the first is still releasing).</summary>
    [Test]
    public async Task A_second_dispose_returns_only_once_the_node_is_stopped()
    {
        var (cluster, _, holder, _) = await ClusterAsync(leaderHolds: false);
        await using var _ = cluster;
        await HoldJobAsync(cluster, holder);

        cluster.Nodes.Remove(holder.Id);
        var first = holder.DisposeAsync().AsTask();
        var second = holder.DisposeAsync().AsTask();
        while (!second.IsCompleted)
        {
            await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(4));
        }

        Assert.That(first.IsCompleted, Is.True, "the second returned before the first stopped the node");
        Assert.That(async () => await holder.AppendAsync(new byte[] { 1 }), Throws.InstanceOf<ObjectDisposedException>());
    }

    /// <summary>
    /// An acquire that waited more than a third of the lease confirms its grant with a renewal before
    /// it makes a handle. The node begins to stop during that renewal (its link to the leader stalls it):
    /// the acquire fails with ObjectDisposedException, and the lock goes to the next waiter.
    /// </summary>
    [Test]
    public async Task An_acquire_confirming_a_long_waited_grant_while_the_node_stops_fails_with_ObjectDisposedException()
    {
        var (cluster, leader, holder, waiter) = await ClusterAsync(leaderHolds: false);
        await using var _ = cluster;
        var job = holder.Locks.AcquireAsync("job", TimeSpan.FromSeconds(30));
        var other = waiter.Locks.AcquireAsync("other", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => job.IsCompleted && other.IsCompleted, "holds");
        var jobHandle = await job;

        var late = waiter.Locks.AcquireAsync("job", TimeSpan.FromMinutes(1));
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(4)); // > lease / 3: the grant will be confirmed by a Renew
        var next = leader.Locks.AcquireAsync("job", TimeSpan.FromMinutes(1));
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100));

        // What the waiter sends to the leader is lost from now on (it still hears the leader): its Renew stalls.
        cluster.Network.SetLinkFaults(waiter.Id, leader.Id, new LinkFaults { DropRate = 1 });
        var release = jobHandle.DisposeAsync().AsTask();
        var watch = Stopwatch.StartNew();
        while ((await waiter.Locks.PeekAsync("job")).Holders.All(h => h.NodeId != waiter.Id))
        {
            Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)));
            await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(4));
        }

        // Lets the thread pool run the acquire's continuation into its renewal. Should it not have run
        // yet, the acquire fails at its first check instead; the outcome asserted is the same.
        await Task.Delay(200);
        Assert.That(late.IsCompleted, Is.False, "the acquire waits for its Renew");

        cluster.Nodes.Remove(waiter.Id);
        var stopping = waiter.DisposeAsync().AsTask();
        // Lets the stop give the grant up while the renewal is still stalled; then the renewal commits.
        await Task.Delay(100);
        cluster.Network.ClearFaults();
        while (!stopping.IsCompleted)
        {
            Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(40)));
            await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(4));
        }

        await cluster.AdvanceUntilAsync(() => next.IsCompleted && late.IsCompleted, "the leader gets 'job'");
        await release;
        Assert.That(async () => await late, Throws.InstanceOf<ObjectDisposedException>(), "granted while the node stopped: it fails, it returns no handle");
    }

    /// <summary>Moves the clock on until <paramref name="holder"/> holds "job".</summary>
    private static async Task HoldJobAsync(ManualTimeCluster cluster, GaggleNode holder)
    {
        var held = holder.Locks.AcquireAsync("job", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => held.IsCompleted, "the holder holds");
        await held;
    }

    private static async Task<(ManualTimeCluster Cluster, GaggleNode Leader, GaggleNode Holder, GaggleNode Waiter)> ClusterAsync(bool leaderHolds)
    {
        var cluster = new ManualTimeCluster(["a", "b", "c"], options => options.LockLeaseDuration = Lease);
        foreach (var id in new[] { "a", "b", "c" })
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Count(n => n.IsLeader) == 1 && cluster.Nodes.Values.All(n => n.LeaderId is not null), "a leader");
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var holder = leaderHolds ? leader : cluster.Nodes.Values.First(n => n != leader);
        var waiter = cluster.Nodes.Values.First(n => n != leader && n != holder);
        return (cluster, leader, holder, waiter);
    }
}
