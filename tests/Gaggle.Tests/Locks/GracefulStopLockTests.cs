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
        await using var cluster = new ManualTimeCluster(["a", "b", "c"], options => options.LockLeaseDuration = Lease);
        foreach (var id in new[] { "a", "b", "c" })
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Count(n => n.IsLeader) == 1 && cluster.Nodes.Values.All(n => n.LeaderId is not null), "a leader");
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var holder = leaderHolds ? leader : cluster.Nodes.Values.First(n => n != leader);
        var waiter = cluster.Nodes.Values.First(n => n != leader && n != holder);

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
}
