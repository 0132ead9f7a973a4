using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>The leadership lease (thesis §6.4): what a leader may rely on, and what followers promise.</summary>
[TestFixture]
public sealed class LeaseTests
{
    private static RaftCore Node(string id, HardState? hardState = null) => new(
        new RaftConfig { Id = id, Members = ["a", "b", "c"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, Random = new Random(id[0]) },
        hardState ?? HardState.Empty,
        []);

    private static void Exchange(Dictionary<string, RaftCore> nodes, Func<RaftMessage, bool>? drop = null)
    {
        for (int round = 0; round < 20; round++)
        {
            bool any = false;
            foreach (var node in nodes.Values)
            {
                foreach (var message in node.TakeReady()?.Messages ?? [])
                {
                    any = true;
                    if (drop?.Invoke(message) != true && message.To is { } to)
                    {
                        nodes[to].Step(message);
                    }
                }
            }

            if (!any)
            {
                return;
            }
        }
    }

    [Test]
    public void TheQuorumAckedHeartbeatRoundFollowsTheMajoritysAnswers()
    {
        var nodes = new[] { "a", "b", "c" }.ToDictionary(id => id, id => Node(id));
        var a = nodes["a"];
        while (a.Role != RaftRole.Leader)
        {
            a.Tick();
            Exchange(nodes);
        }

        Assert.That(a.QuorumAckedHeartbeatRound, Is.Zero, "no heartbeat answered yet");
        a.Tick();
        a.Tick();
        Exchange(nodes);
        Assert.That(a.HeartbeatRound, Is.EqualTo(1));
        Assert.That(a.QuorumAckedHeartbeatRound, Is.EqualTo(1));

        // Only c answers the next round: a + c is still a majority.
        a.Tick();
        a.Tick();
        Exchange(nodes, drop: m => m.To == "b" || m.From == "b");
        Assert.That(a.QuorumAckedHeartbeatRound, Is.EqualTo(2));

        // Nobody answers: the acknowledged round stays behind the rounds sent.
        a.Tick();
        a.Tick();
        Exchange(nodes, drop: m => m.To != "a" && m.Type == MessageType.Heartbeat);
        Assert.That((a.HeartbeatRound, a.QuorumAckedHeartbeatRound), Is.EqualTo((3L, 2L)));

        var forged = new RaftMessage { Type = MessageType.HeartbeatResponse, From = "b", To = "a", Term = a.Term, Index = 1000 };
        a.Step(forged);
        Assert.That(a.QuorumAckedHeartbeatRound, Is.EqualTo(2), "an answer to a round never sent is dropped");
    }

    [Test]
    public void ARestartedNodeHonoursTheLeaseItMayHaveGivenForOneElectionTimeout()
    {
        var b = Node("b", new HardState(4, null, 0));
        var request = new RaftMessage { Type = MessageType.Vote, From = "c", To = "b", Term = 5, Index = 0, LogTerm = 0 };
        b.Step(request);
        Assert.That(b.TakeReady()?.Messages ?? [], Is.Empty, "ignored: b may have promised a leader not to vote before it crashed");
        for (int i = 0; i < 10; i++)
        {
            b.Tick();
        }

        b.TakeReady();
        b.Step(request);
        Assert.That(b.TakeReady()!.Messages.Single(m => m.Type == MessageType.VoteResponse).Reject, Is.False);
    }
}
