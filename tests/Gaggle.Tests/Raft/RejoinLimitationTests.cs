using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// What rejoining after lost storage does not survive: messages and acknowledgements from before the
/// loss that are still in flight when the node has restarted. An acknowledgement is not tied to the
/// storage that made it, so a leader cannot tell one the node's lost storage made from a current one.
/// The simulation assumes this away by default (Simulation.LossModel; GAGGLE_SIM_LOSS_RACES=1 drops the
/// assumption, and found it as 3-node seeds 692 and 2269 and 5-node seed 2904 before later core
/// changes rerouted those seeds). Closing it takes acknowledgements stamped with a storage incarnation
/// that the leader checks (a protocol change); until then this test fails, and runs only with
/// GAGGLE_SIM_LOSS_RACES=1.
/// </summary>
[TestFixture]
public sealed class RejoinLimitationTests
{
    /// <summary>
    /// c acknowledges entry 3 and loses that write. Back and rejoining, it hears from b and gets a
    /// heartbeat a sent before it saw the acknowledgement (commit 2): c holds an entry of a's term and
    /// everything a had committed, so it leaves rejoin mode. Then the old acknowledgement reaches a,
    /// which commits entry 3 on {a, c}, though only a holds it; c then helps b (without entry 3) win
    /// term 3, breaking Leader Completeness (Raft §5.4).
    /// </summary>
    [Test]
    public void AnAcknowledgementSentBeforeTheLossAndCountedAfterTheRejoinCommitsNothingUnsafe()
    {
        if (Environment.GetEnvironmentVariable("GAGGLE_SIM_LOSS_RACES") != "1")
        {
            Assert.Ignore("A known design limitation of rejoining after lost storage (see the fixture's remarks); GAGGLE_SIM_LOSS_RACES=1 runs it.");
        }

        var a = Node("a", new HardState(1, null, 1), [Entry(1, 1)]);
        for (int i = 0; i < 20 && a.Role != RaftRole.PreCandidate; i++)
        {
            a.Tick();
        }

        a.Step(new RaftMessage { Type = MessageType.PreVoteResponse, From = "b", To = "a", Term = a.Term + 1, Index = a.Term });
        a.Step(new RaftMessage { Type = MessageType.VoteResponse, From = "b", To = "a", Term = a.Term });
        Assert.That(a.Role, Is.EqualTo(RaftRole.Leader));
        a.TakeReady();

        var c = Node("c", new HardState(2, null, 1), [Entry(1, 1)]);
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 1, LogTerm = 1, Entries = [a.Log.Entry(2)], Commit = 1 });
        a.Step(c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse));
        a.TakeReady();
        a.Propose([new byte[] { 3 }]);
        a.TakeReady();
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 2, LogTerm = 2, Entries = [a.Log.Entry(3)], Commit = 2 });
        var lostAcknowledgement = c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse);

        // c loses the unflushed write of entry 3 and restarts rejoining.
        c = Node("c", new HardState(2, null, 2), [Entry(1, 1), a.Log.Entry(2)], rejoining: true);
        RaftMessage? heartbeat = null;
        for (int i = 0; i < 5 && heartbeat is null; i++)
        {
            a.Tick();
            heartbeat = a.TakeReady()?.Messages.FirstOrDefault(m => m.Type == MessageType.Heartbeat && m.To == "c");
        }

        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "b", To = "c", Term = 2 });
        c.Step(heartbeat!);
        a.Step(lostAcknowledgement);
        a.TakeReady();
        for (int i = 0; i < 12; i++)
        {
            c.Tick();
        }

        c.TakeReady();
        c.Step(new RaftMessage { Type = MessageType.Vote, From = "b", To = "c", Term = 3, Index = 2, LogTerm = 2 });
        var vote = c.TakeReady()!.Messages.Single(m => m.Type == MessageType.VoteResponse);

        Assert.That(
            a.CommitIndex < 3 || vote.Reject,
            $"a committed entry 3 (commit {a.CommitIndex}) that only it holds, and c (rejoining: {c.Rejoining}) voted for b, whose log ends at entry 2");
    }

    private static RaftCore Node(string id, HardState hardState, LogEntry[] entries, bool rejoining = false) => new(
        new RaftConfig { Id = id, Members = ["a", "b", "c"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, StartRejoining = rejoining, Random = new Random(id[0]) },
        hardState,
        entries);

    private static LogEntry Entry(long index, long term) => new(index, term, EntryKind.Normal, new byte[] { (byte)index });
}
