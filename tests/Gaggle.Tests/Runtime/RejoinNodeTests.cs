using System.Text;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// The operator procedure for a node whose storage was lost: restart it with
/// <see cref="GaggleOptions.Rejoin"/>. (Automatic detection from a heartbeat is covered
/// deterministically in Raft/RejoinTests.)
/// </summary>
[TestFixture]
public sealed class RejoinNodeTests
{
    [Test]
    public async Task ANodeRestartedWithoutItsStorageRejoinsSafelyAndVotesAgainOnceCaughtUp()
    {
        string? rejoining = null;
        await using var cluster = new NodeCluster(3, options => options.Rejoin = options.NodeId == rejoining);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        for (int i = 0; i < 20; i++)
        {
            await leader.AppendAsync(Encoding.UTF8.GetBytes($"before-{i}"), TimeSpan.FromSeconds(10));
        }

        var victim = cluster.AnyFollower(leader);
        await cluster.WaitForCommittedEverywhereAsync("before-19");
        await cluster.StopAsync(victim.Id);
        cluster.ForgetStorage(victim.Id);
        rejoining = victim.Id;
        var amnesiac = await cluster.StartAsync(victim.Id);
        Assert.That(amnesiac.IsRejoining, Is.True, "started with Rejoin");
        await leader.AppendAsync("after"u8.ToArray(), TimeSpan.FromSeconds(10));
        await Eventually.True(() => !amnesiac.IsRejoining, "the node to catch up from the leader and vote again");
        await cluster.WaitForCommittedEverywhereAsync("after");
        Assert.That(cluster.CommittedTexts(victim.Id), Does.Contain("before-0"), "it re-replicated what it had lost");
    }
}
