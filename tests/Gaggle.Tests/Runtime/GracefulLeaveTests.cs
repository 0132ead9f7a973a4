using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>Elastic instances leaving gracefully (<see cref="GaggleNode.LeaveAsync"/>, what a host stopping does), on a manual clock.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class GracefulLeaveTests
{
    private static GaggleNode? Leader(ManualTimeCluster cluster) => cluster.Nodes.Values.SingleOrDefault(n => n.IsLeader);

    private static bool Settled(ManualTimeCluster cluster, int voters)
    {
        var leader = Leader(cluster);
        return leader is not null && leader.Membership.Voters.Count == voters
            && cluster.Nodes.Values.All(n => leader.Membership.Contains(n.Id) && n.Membership == leader.Membership);
    }

    private static async Task<ManualTimeCluster> StartedAsync(int instances)
    {
        var cluster = new ManualTimeCluster([]);
        for (int i = 0; i < instances; i++)
        {
            await cluster.StartElasticAsync("web");
            if (i == 0)
            {
                await cluster.AdvanceUntilAsync(() => Leader(cluster) is not null, "the first instance formed the cluster");
            }
        }

        await cluster.AdvanceUntilAsync(() => Settled(cluster, Math.Min(3, instances % 2 == 0 ? instances - 1 : instances)), $"{instances} instances settled");
        return cluster;
    }

    /// <summary>Leaves <paramref name="node"/> while the clock runs; returns the fewest voters the leader had meanwhile.</summary>
    private static async Task<int> LeaveAsync(ManualTimeCluster cluster, GaggleNode node)
    {
        int fewest = int.MaxValue;
        var leave = node.LeaveAsync(TimeSpan.FromSeconds(20));
        await cluster.AdvanceUntilAsync(() =>
        {
            if (Leader(cluster) is { } leader)
            {
                fewest = Math.Min(fewest, leader.Membership.Voters.Count);
            }

            return leave.IsCompleted;
        }, $"{node.Id} left");
        var membership = await leave;
        Assert.That(membership.Contains(node.Id), Is.False);
        await cluster.StopAsync(node.Id);
        return fewest;
    }

    [Test]
    public async Task A_leaving_voter_is_replaced_by_a_learner_before_it_is_removed()
    {
        await using var cluster = await StartedAsync(4);
        var leader = Leader(cluster)!;
        var voter = cluster.Nodes.Values.First(n => n != leader && leader.Membership.Voters.Contains(n.Id));
        int fewest = await LeaveAsync(cluster, voter);
        Assert.That(fewest, Is.EqualTo(3), "the learner was promoted before the leaving voter was removed: never two voters");
        await cluster.AdvanceUntilAsync(() => Settled(cluster, 3), "three voters again");
    }

    [Test]
    public async Task A_leaving_leader_hands_leadership_over_and_is_removed_by_its_successor()
    {
        await using var cluster = await StartedAsync(3);
        var leader = Leader(cluster)!;
        await LeaveAsync(cluster, leader);
        await cluster.AdvanceUntilAsync(() => Leader(cluster) is { } next && next != leader && Settled(cluster, 1), "two instances left, one voter");
        var append = Leader(cluster)!.AppendAsync("after the leader left"u8.ToArray());
        await cluster.AdvanceUntilAsync(() => append.IsCompleted, "appends go on");
        Assert.That(await append, Is.GreaterThan(0));
    }

    [Test]
    public async Task A_rolling_deploy_of_three_instances_keeps_a_leader_and_every_acknowledged_append()
    {
        await using var cluster = await StartedAsync(3);
        var acknowledged = new List<long>();
        for (int round = 0; round < 3; round++)
        {
            foreach (var old in cluster.Nodes.Values.ToList())
            {
                await LeaveAsync(cluster, old);
                await cluster.StartElasticAsync("web");
                await cluster.AdvanceUntilAsync(() => Settled(cluster, 3), $"round {round}: replacement of {old.Id} promoted");
                var append = Leader(cluster)!.AppendAsync(BitConverter.GetBytes(acknowledged.Count));
                await cluster.AdvanceUntilAsync(() => append.IsCompleted, "an append after the replacement");
                acknowledged.Add(await append);
            }
        }

        // Nine replacements later, every instance is new and every acknowledged append is still there.
        var log = await Leader(cluster)!.GetLogAsync();
        var indexes = log.Select(e => e.Index).ToHashSet();
        Assert.That(acknowledged, Is.All.Matches<long>(indexes.Contains));
        Assert.That(cluster.Nodes.Values.Select(n => n.Generation), Is.All.EqualTo(1L), "never a new generation");
    }

    [Test]
    public async Task Several_instances_leaving_at_once_are_removed_one_change_at_a_time()
    {
        await using var cluster = await StartedAsync(5);
        var leaving = cluster.Nodes.Values.Where(n => !n.IsLeader).Take(3).ToList();
        var leaves = leaving.Select(n => n.LeaveAsync(TimeSpan.FromSeconds(20))).ToList();
        await cluster.AdvanceUntilAsync(() => leaves.All(l => l.IsCompleted), "three leaves done");
        for (int i = 0; i < leaves.Count; i++)
        {
            Assert.That((await leaves[i]).Contains(leaving[i].Id), Is.False);
        }

        await cluster.AdvanceAsync(TimeSpan.FromSeconds(2));
        Assert.That(Leader(cluster)!.Membership.Voters.Concat(Leader(cluster)!.Membership.Learners).Intersect(leaving.Select(n => n.Id)), Is.Empty, "a node that left does not ask to join again");
        foreach (var node in leaving)
        {
            await cluster.StopAsync(node.Id);
        }

        await cluster.AdvanceUntilAsync(() => Settled(cluster, 1), "two instances left: one voter");
    }
}
