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
        await using var cluster = new NodeCluster(3);
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
        var amnesiac = await cluster.StartAsync(victim.Id);
        await Eventually.True(() => amnesiac.IsRejoining, "the leader's heartbeat to reveal the lost storage");
        await leader.AppendAsync("after"u8.ToArray(), TimeSpan.FromSeconds(10));
        await Eventually.True(() => !amnesiac.IsRejoining, "the node to catch up and vote again");
        await cluster.WaitForCommittedEverywhereAsync("after");
        Assert.That(cluster.CommittedTexts(victim.Id), Does.Contain("before-0"), "it re-replicated what it had lost");
    }
}
