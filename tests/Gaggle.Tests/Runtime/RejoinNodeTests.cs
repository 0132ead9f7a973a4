using System.Text;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

[TestFixture]
public sealed class RejoinNodeTests
{
    [Test]
    public async Task ANodeRestartedWithoutItsStorageIsDetectedAndRejoinsSafely()
    {
        // Slow elections: detection relies on the same leader remembering the node's acknowledgements.
        await using var cluster = new NodeCluster(3, options =>
        {
            options.ElectionTimeoutMin = TimeSpan.FromSeconds(1);
            options.ElectionTimeoutMax = TimeSpan.FromSeconds(2);
        });
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
        long term = leader.Term;
        var amnesiac = await cluster.StartAsync(victim.Id);
        try
        {
            await Eventually.True(() => amnesiac.IsRejoining, "the leader's heartbeat to reveal the lost storage", TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException) when (leader.Term != term || !leader.IsLeader)
        {
            Assert.Inconclusive("The leader changed meanwhile (an overloaded machine); a new leader has no memory of the lost acknowledgements to reveal.");
        }

        await leader.AppendAsync("after"u8.ToArray(), TimeSpan.FromSeconds(10));
        await Eventually.True(() => !amnesiac.IsRejoining, "the node to catch up and vote again");
        await cluster.WaitForCommittedEverywhereAsync("after");
        Assert.That(cluster.CommittedTexts(victim.Id), Does.Contain("before-0"), "it re-replicated what it had lost");
    }
}
