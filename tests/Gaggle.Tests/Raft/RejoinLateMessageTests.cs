using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// Rejoining after lost storage while messages of the node's lost run are still on their way: an
/// acknowledgement the lost run sent, counted by the leader after the new run caught up, and a heartbeat
/// the leader sent the lost run, whose catch-up target predates what that run acknowledged later. Both
/// are tied to the run they belong to (<see cref="RaftConfig.Incarnation"/>, see RaftCore.Rejoin.cs):
/// the simulation's full asynchronous adversary (Simulation.LossModel's races) found them as 3-node seeds 692
/// and 2269, 5-node seed 2904, and 3-node seeds 128 and 355.
/// </summary>
[TestFixture]
public sealed class RejoinLateMessageTests
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
        var a = LeaderOfTerm2(followerCommit: false);

        var c = Node("c", new HardState(2, null, 1), [Entry(1, 1)], run: 1);
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 1, LogTerm = 1, Entries = [a.Log.Entry(2)], Commit = 1 });
        a.Step(c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse));
        a.TakeReady();
        a.Propose([new byte[] { 3 }]);
        a.TakeReady();
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 2, LogTerm = 2, Entries = [a.Log.Entry(3)], Commit = 2 });
        var lostAcknowledgement = c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse);

        // c loses the unflushed write of entry 3 and restarts rejoining.
        c = Node("c", new HardState(2, null, 2), [Entry(1, 1), a.Log.Entry(2)], rejoining: true, run: 2);
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

    /// <summary>
    /// The same node's later run must not take a catch-up target from a heartbeat its lost run was sent:
    /// c (run 1) is sent a heartbeat while the leader has sent it entries up to 2; then it stores and
    /// acknowledges entries 3 and 4, which commit on {a, c}, and loses them. Back as run 2 with entries
    /// 1 and 2, it hears from b and then gets that old heartbeat (held in the leader's reconnect backlog,
    /// say), whose target is 2. Taking it, c would stop rejoining and vote for b, whose log ends at entry 2.
    /// </summary>
    [Test]
    public void AHeartbeatSentToTheLostRunEndsNoRejoining()
    {
        var a = LeaderOfTerm2(followerCommit: true);

        var c = Node("c", new HardState(2, null, 1), [Entry(1, 1)], followerCommit: true, run: 1);
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 1, LogTerm = 1, Entries = [a.Log.Entry(2)], Commit = 1, RejectHint = 0 });
        a.Step(c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse && !m.Reject));
        a.TakeReady();

        RaftMessage? oldHeartbeat = null;
        for (int i = 0; i < 5 && oldHeartbeat is null; i++)
        {
            a.Tick();
            oldHeartbeat = a.TakeReady()?.Messages.FirstOrDefault(m => m.Type == MessageType.Heartbeat && m.To == "c");
        }

        Assert.That(oldHeartbeat!.RejectHint, Is.EqualTo(2), "the old heartbeat's catch-up target: what the leader had sent c then");

        a.Propose([new byte[] { 3 }, new byte[] { 4 }]);
        a.TakeReady();
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 2, LogTerm = 2, Entries = [a.Log.Entry(3), a.Log.Entry(4)], Commit = 2 });
        a.Step(c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse && !m.Reject));
        a.TakeReady();
        Assert.That(a.CommitIndex, Is.EqualTo(4), "entries 3 and 4 committed on {a, c}");

        // c loses entries 3 and 4 and restarts as run 2, rejoining; b is at term 2 and its log ends at entry 2.
        c = Node("c", new HardState(2, null, 2), [Entry(1, 1), a.Log.Entry(2)], rejoining: true, followerCommit: true, run: 2);
        var vote = VoteForBAfterHearingLate(c, oldHeartbeat);

        Assert.That(vote.Reject, $"c (rejoining: {c.Rejoining}) voted for b, whose log ends at entry 2, though a committed entries 3 and 4 on a and c's lost run");
    }

    /// <summary>
    /// Once c's new run is heard from, the leader's heartbeats name it, and their catch-up target covers
    /// everything the lost run was sent: c catches up to it and rejoins.
    /// </summary>
    [Test]
    public void TheNewRunRejoinsOnceTheLeaderHeardFromIt()
    {
        var a = LeaderOfTerm2(followerCommit: true);
        var c = Node("c", new HardState(2, null, 1), [Entry(1, 1)], followerCommit: true, run: 1);
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 1, LogTerm = 1, Entries = [a.Log.Entry(2)], Commit = 1 });
        a.Step(c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse && !m.Reject));
        ProposeEntry3AndHaveCAcknowledgeIt(a, c);

        c = Node("c", new HardState(2, null, 2), [Entry(1, 1), a.Log.Entry(2)], rejoining: true, followerCommit: true, run: 2);
        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "b", To = "c", Term = 2 });
        for (int round = 0; round < 10 && c.Rejoining; round++)
        {
            a.Tick();
            var toC = a.TakeReady()?.Messages.Where(m => m.To == "c").ToList() ?? [];
            foreach (var message in toC)
            {
                c.Step(message);
            }

            foreach (var reply in c.TakeReady()?.Messages.Where(m => m.To is null or "a") ?? [])
            {
                a.Step(reply);
            }
        }

        Assert.That(c.Rejoining, Is.False, "c rejoined under a");
        Assert.That(c.Log.LastIndex, Is.GreaterThanOrEqualTo(3), "holding entry 3, which its lost run acknowledged");
    }

    /// <summary>
    /// An AppendEntries the leader sent the lost run, delivered again to the new run (a publish retried
    /// after its first copy arrived, or one held in the leader's reconnect backlog), carries the commit
    /// index of when it was sent. c's lost run stored and acknowledged entries 2 and 3, which a committed
    /// on {a, c}; c comes back with entry 1 only, rejoining, hears from b, and then gets the old
    /// AppendEntries of entry 2 (commit 1). Its log then ends in an entry of a's term and holds
    /// everything that message said a had committed, but not entry 3: taking that commit index as its
    /// catch-up target, c would stop rejoining and vote for b, whose log ends at entry 2.
    /// </summary>
    [Test]
    public void AnAppendSentToTheLostRunEndsNoRejoining()
    {
        var a = LeaderOfTerm2(followerCommit: false);

        var c = Node("c", new HardState(1, null, 1), [Entry(1, 1)], run: 1);
        var oldAppend = new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 1, LogTerm = 1, Entries = [a.Log.Entry(2)], Commit = 1 };
        c.Step(oldAppend);
        a.Step(c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse && !m.Reject));
        ProposeEntry3AndHaveCAcknowledgeIt(a, c);
        Assert.That(a.CommitIndex, Is.EqualTo(3), "entries 2 and 3 committed on {a, c}");

        // c loses entries 2 and 3 and restarts as run 2, rejoining; b is at term 2 and its log ends at entry 2.
        c = Node("c", new HardState(2, null, 1), [Entry(1, 1)], rejoining: true, run: 2);
        var vote = VoteForBAfterHearingLate(c, oldAppend);

        Assert.That(vote.Reject, $"c (rejoining: {c.Rejoining}) voted for b, whose log ends at entry 2, though a committed entry 3 on a and c's lost run");
    }

    /// <summary>
    /// c, rejoining, hears b's term (2) and then the late message of its lost run, waits out an election
    /// timeout, and is asked by b for its vote in term 3 (b's log ends at entry 2): its answer.
    /// </summary>
    private static RaftMessage VoteForBAfterHearingLate(RaftCore c, RaftMessage late)
    {
        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "b", To = "c", Term = 2 });
        c.Step(late);
        for (int i = 0; i < 12; i++)
        {
            c.Tick();
        }

        c.TakeReady();
        c.Step(new RaftMessage { Type = MessageType.Vote, From = "b", To = "c", Term = 3, Index = 2, LogTerm = 2 });
        return c.TakeReady()!.Messages.Single(m => m.Type == MessageType.VoteResponse);
    }

    /// <summary>a proposes entry 3, and c, holding entry 2, stores and acknowledges it.</summary>
    private static void ProposeEntry3AndHaveCAcknowledgeIt(RaftCore a, RaftCore c)
    {
        a.Propose([new byte[] { 3 }]);
        a.TakeReady();
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 2, LogTerm = 2, Entries = [a.Log.Entry(3)], Commit = 2 });
        a.Step(c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse && !m.Reject));
        a.TakeReady();
    }

    /// <summary>a, elected leader of term 2 with b's votes, its log entry 1 of term 1 and its no-op (entry 2).</summary>
    private static RaftCore LeaderOfTerm2(bool followerCommit)
    {
        var a = Node("a", new HardState(1, null, 1), [Entry(1, 1)], followerCommit: followerCommit);
        for (int i = 0; i < 20 && a.Role != RaftRole.PreCandidate; i++)
        {
            a.Tick();
        }

        a.Step(new RaftMessage { Type = MessageType.PreVoteResponse, From = "b", To = "a", Term = a.Term + 1, Index = a.Term });
        a.Step(new RaftMessage { Type = MessageType.VoteResponse, From = "b", To = "a", Term = a.Term });
        Assert.That(a.Role, Is.EqualTo(RaftRole.Leader));
        a.TakeReady();
        return a;
    }

    private static RaftCore Node(string id, HardState hardState, LogEntry[] entries, bool rejoining = false, bool followerCommit = false, ulong run = 0) => new(
        new RaftConfig
        {
            Id = id, Members = ["a", "b", "c"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, StartRejoining = rejoining,
            FollowerCommit = followerCommit, Incarnation = run, Random = new Random(id[0]),
        },
        hardState,
        entries);

    private static LogEntry Entry(long index, long term) => new(index, term, EntryKind.Normal, new byte[] { (byte)index });
}
