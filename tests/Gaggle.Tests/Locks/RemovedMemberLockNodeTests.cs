using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>Elastic instances killed while they waited for a lock: their waits end at their removal, on a manual clock.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class RemovedMemberLockNodeTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(5);

    private static GaggleNode Leader(ManualTimeCluster cluster) => cluster.Nodes.Values.Single(n => n.IsLeader);

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
    }
}
