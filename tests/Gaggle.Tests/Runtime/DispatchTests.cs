using System.Text;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>Leader RPC, as the original's dispatchOnLeader tests checked it.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class DispatchTests
{
    private static void Configure(GaggleOptions options)
    {
        string self = options.NodeId;
        options.AddRpcHandler<int[], RpcAnswer>("add", (args, _) => ValueTask.FromResult(new RpcAnswer(args!.Sum(), self)));
        options.RpcHandlers["fail"] = (_, _) => throw new InvalidOperationException("handler says no");
    }

    public sealed record RpcAnswer(int Sum, string RanOn);

    [Test]
    public async Task DispatchFromTheLeaderRunsOnTheLeader()
    {
        await using var cluster = new NodeCluster(3, Configure);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var answer = await leader.DispatchOnLeaderAsync<int[], RpcAnswer>("add", [1, 2, 3], TimeSpan.FromSeconds(10));
        Assert.That(answer, Is.EqualTo(new RpcAnswer(6, leader.Id)));
    }

    [Test]
    public async Task DispatchFromAFollowerRunsOnTheLeaderAndAnswersTheCaller()
    {
        await using var cluster = new NodeCluster(3, Configure);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        var answer = await follower.DispatchOnLeaderAsync<int[], RpcAnswer>("add", [40, 2], TimeSpan.FromSeconds(10));
        Assert.That(answer, Is.EqualTo(new RpcAnswer(42, leader.Id)));
    }

    [Test]
    public async Task HandlerErrorsReachTheCaller()
    {
        await using var cluster = new NodeCluster(3, Configure);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        var error = await Assert.ThrowsAsync<GaggleRpcException>(() => follower.DispatchOnLeaderAsync("fail", ReadOnlyMemory<byte>.Empty, TimeSpan.FromSeconds(10)));
        Assert.That(error!.Message, Does.Contain("handler says no").And.Contain("InvalidOperationException"));
        Assert.That(error.Method, Is.EqualTo("fail"));
    }

    [Test]
    public async Task UnknownMethodIsAClearError()
    {
        await using var cluster = new NodeCluster(3, Configure);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        foreach (var node in new[] { leader, cluster.AnyFollower(leader) })
        {
            var error = await Assert.ThrowsAsync<GaggleRpcException>(() => node.DispatchOnLeaderAsync("nope", Encoding.UTF8.GetBytes("x"), TimeSpan.FromSeconds(10)));
            Assert.That(error!.Message, Does.Contain("'nope' is not registered"));
        }
    }

    [Test]
    public async Task DispatchTimesOutWithoutALeader()
    {
        await using var cluster = new NodeCluster(3, Configure);
        var lonely = await cluster.StartAsync("a");
        var error = await Assert.ThrowsAsync<TimeoutException>(() => lonely.DispatchOnLeaderAsync("add", Encoding.UTF8.GetBytes("[1]"), TimeSpan.FromMilliseconds(200)));
        Assert.That(error!.Message, Does.Contain("'add'").And.Contain("200 ms"));
    }

    [Test]
    public async Task DispatchWaitsForALeader()
    {
        await using var cluster = new NodeCluster(3, Configure);
        var first = await cluster.StartAsync("a");
        var call = first.DispatchOnLeaderAsync<int[], RpcAnswer>("add", [1, 1], TimeSpan.FromSeconds(20));
        await cluster.StartAsync("b");
        await cluster.StartAsync("c");
        var answer = await call;
        Assert.That(answer!.Sum, Is.EqualTo(2));
    }
}
