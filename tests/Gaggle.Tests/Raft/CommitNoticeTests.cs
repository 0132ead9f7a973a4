using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// With AccelerateCommit a follower learns of a commit without waiting for a heartbeat, even when
/// its acknowledgement arrives after another follower's already made the entry committed.
/// </summary>
[TestFixture]
public sealed class CommitNoticeTests
{
    private static RaftCore Node(string id) => new(
        new RaftConfig { Id = id, Members = ["a", "b", "c"], BroadcastAppends = false, FollowerCommit = false, ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 3, Random = new Random(1) },
        HardState.Empty,
        []);

    private static void Deliver(IEnumerable<RaftMessage> messages, Dictionary<string, RaftCore> nodes)
    {
        foreach (var message in messages)
        {
            nodes[message.To!].Step(message);
        }
    }

    [Test]
    public void ALateAcknowledgerIsToldTheCommitAtOnce()
    {
        var nodes = new[] { "a", "b", "c" }.ToDictionary(id => id, Node);
        var a = nodes["a"];
        for (int i = 0; i < 10 && a.Role != RaftRole.Leader; i++)
        {
            a.Tick();
            Deliver(a.TakeReady()?.Messages ?? [], nodes);
            foreach (var peer in new[] { nodes["b"], nodes["c"] })
            {
                Deliver(peer.TakeReady()?.Messages ?? [], nodes);
            }
        }

        // Stabilize the election and the no-op.
        for (int round = 0; round < 5; round++)
        {
            foreach (var node in nodes.Values)
            {
                Deliver(node.TakeReady()?.Messages ?? [], nodes);
            }
        }

        Assert.That(a.Role, Is.EqualTo(RaftRole.Leader));
        long index = a.Propose([new byte[] { 42 }]);
        var appends = a.TakeReady()!.Messages;
        Deliver(appends, nodes);
        var fromB = nodes["b"].TakeReady()!.Messages;
        var fromC = nodes["c"].TakeReady()!.Messages;

        Deliver(fromB, nodes); // b's ack commits the entry (a + b is a majority)
        Assert.That(a.CommitIndex, Is.EqualTo(index));
        a.TakeReady();

        Deliver(fromC, nodes); // c's ack arrives after the commit
        var afterC = a.TakeReady()!.Messages;
        Assert.That(afterC.Where(m => m.To == "c" && m.Commit >= index), Is.Not.Empty, "c must learn the commit now, not at the next heartbeat");
        Deliver(afterC, nodes);
        Assert.That(nodes["c"].CommitIndex, Is.EqualTo(index));
    }
}

/// <summary>Discovery mode never gives a seat to an empty sender id.</summary>
[TestFixture]
public sealed class DiscoverySenderIdTests
{
    [Test]
    public void AnEmptySenderIdIsNotAdmitted()
    {
        var core = new RaftCore(new RaftConfig { Id = "a", ClusterSize = 3, Random = new Random(1) }, HardState.Empty, []);
        core.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "", Term = 1 });
        Assert.That(core.Members.Peers, Is.Empty);
        Assert.That(core.DroppedMessages, Is.EqualTo(1));
        Assert.That(core.Term, Is.Zero);
    }
}
