using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>
/// Instances killed while they waited for a lock: their waits end at their removal (elastic mode), or
/// when their member id starts again (a fixed member list), not a lease after their grant; on a manual clock.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class GoneNodeWaitNodeTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(5);

    private static GaggleNode Leader(ManualTimeCluster cluster) => cluster.Nodes.Values.Single(n => n.IsLeader);

    private static bool OneLeaderKnownToAll(ManualTimeCluster cluster)
        => cluster.Nodes.Values.Count(n => n.IsLeader) == 1 && cluster.Nodes.Values.All(n => n.LeaderId == Leader(cluster).Id && n.CommitIndex == Leader(cluster).CommitIndex);

    private static bool OneClusterOf(ManualTimeCluster cluster, int voters)
    {
        var leaders = cluster.Nodes.Values.Where(n => n.IsLeader).ToList();
        return leaders.Count == 1 && leaders[0].Membership.Voters.Count == voters
            && cluster.Nodes.Values.All(n => leaders[0].Membership.Contains(n.Id) && n.Membership == leaders[0].Membership && n.LeaderId == leaders[0].Id);
    }

    private static async Task<ManualTimeCluster> StartedAsync(int instances)
    {
        var cluster = new ManualTimeCluster([], options => options.LockLeaseDuration = Lease);
        for (int i = 0; i < instances; i++)
        {
            await cluster.StartElasticAsync("web");
        }

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3), $"{instances} instances, three voters");
        return cluster;
    }

    /// <summary>Moves the clock on until the leader's lock table shows <paramref name="waiting"/> requests queued for <paramref name="name"/>.</summary>
    private static Task QueuedAsync(ManualTimeCluster cluster, string name, int waiting)
    {
        Task<LockInfo>? peek = null;
        return cluster.AdvanceUntilAsync(() =>
        {
            if (peek is { IsCompletedSuccessfully: true } && peek.Result.QueueLength == waiting)
            {
                return true;
            }

            if (peek is null || peek.IsCompleted)
            {
                peek = Leader(cluster).Locks.PeekAsync(name);
            }

            return false;
        }, $"{waiting} waiting for '{name}'");
    }

    [Test]
    public async Task A_killed_instances_queued_acquire_ends_at_its_removal_so_the_next_waiter_gets_the_lock_at_the_release_not_a_lease_later()
    {
        await using var cluster = await StartedAsync(4);
        var others = cluster.Nodes.Values.Where(n => !n.IsLeader).ToList();
        var (holder, killed, next) = (Leader(cluster), others[0], others[1]);
        var acquired = holder.Locks.AcquireAsync("job", TimeSpan.FromSeconds(60));
        await cluster.AdvanceUntilAsync(() => acquired.IsCompleted, "the holder granted (after the hold-off)");
        var hold = (await acquired)!;

        var ghost = killed.Locks.AcquireAsync("job");
        await QueuedAsync(cluster, "job", 1);
        var waiting = next.Locks.AcquireAsync("job");
        await QueuedAsync(cluster, "job", 2);

        // Killed without warning: it never withdraws its request nor leaves.
        cluster.Network.Isolate(killed.Id);
        await cluster.AdvanceUntilAsync(() => !Leader(cluster).Membership.Contains(killed.Id), "the killed instance removed after the member timeout");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(200));
        Assert.That(hold.HandleLostToken.IsCancellationRequested, Is.False, "the holder kept its lock meanwhile");

        var releasedAt = cluster.Time.GetUtcNow();
        var released = hold.DisposeAsync().AsTask();
        await cluster.AdvanceUntilAsync(() => released.IsCompleted && waiting.IsCompleted, "the next waiter granted");
        var handed = cluster.Time.GetUtcNow() - releasedAt;
        var granted = (await waiting)!;
        Assert.That(handed, Is.LessThan(Lease / 5), "handed over at the release: the removed instance's wait did not take the lock for a lease nobody renews");
        Assert.That(granted.FencingToken, Is.GreaterThan(hold.FencingToken));
        Assert.That(ghost.IsCompleted, Is.False, "the killed instance hears nothing (it is cut off)");

        // Had it been only cut off, it learns it was removed once it hears again, and its caller is told.
        cluster.Network.Heal();
        await cluster.AdvanceUntilAsync(() => ghost.IsCompleted, "the cut-off instance's acquire answered");
        Assert.That(ghost.IsFaulted && ghost.Exception!.InnerException is InvalidOperationException, Is.True, $"an acquire whose wait ended fails with the reason: {ghost.Status}");
    }

    [Test]
    public async Task A_killed_process_queued_acquire_ends_when_its_member_id_starts_again_so_the_next_waiter_gets_the_lock_at_the_release()
    {
        await using var cluster = new ManualTimeCluster(["a", "b", "c"], options => options.LockLeaseDuration = Lease);
        foreach (var id in new[] { "a", "b", "c" })
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => OneLeaderKnownToAll(cluster), "a leader known to all");
        var holder = Leader(cluster);
        var (killedId, next) = holder.Id == "b" ? ("c", cluster["a"]) : ("b", holder.Id == "a" ? cluster["c"] : cluster["a"]);
        var acquired = holder.Locks.AcquireAsync("job", TimeSpan.FromSeconds(60));
        await cluster.AdvanceUntilAsync(() => acquired.IsCompleted, "the holder granted");
        var hold = (await acquired)!;

        _ = cluster[killedId].Locks.AcquireAsync("job");
        await QueuedAsync(cluster, "job", 1);
        var waiting = next.Locks.AcquireAsync("job");
        await QueuedAsync(cluster, "job", 2);

        // Killed without warning (nothing it sends on the way out arrives), then started again with the same member id.
        cluster.Network.Isolate(killedId);
        await cluster.StopAsync(killedId);
        cluster.Network.Heal();
        await cluster.StartAsync(killedId);
        await cluster.AdvanceUntilAsync(() => OneLeaderKnownToAll(cluster), "the restarted process caught up");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(200));

        var releasedAt = cluster.Time.GetUtcNow();
        var released = hold.DisposeAsync().AsTask();
        await cluster.AdvanceUntilAsync(() => released.IsCompleted && waiting.IsCompleted, "the next waiter granted");
        var handed = cluster.Time.GetUtcNow() - releasedAt;
        Assert.That(handed, Is.LessThan(Lease / 5), "handed over at the release: the earlier process's wait did not take the lock for a lease nobody renews");
        Assert.That((await waiting)!.FencingToken, Is.GreaterThan(hold.FencingToken));
    }
}
