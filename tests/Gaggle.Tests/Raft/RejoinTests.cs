using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>A node that lost its storage must not break Election Safety (§5.2) or Leader Completeness (§5.4) when it returns.</summary>
[TestFixture]
public sealed class RejoinTests
{
    private static RaftCore Node(string id, bool rejoining = false, HardState? hardState = null) => new(
        new RaftConfig { Id = id, Members = ["a", "b", "c"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, StartRejoining = rejoining, Random = new Random(id[0]) },
        hardState ?? HardState.Empty,
        []);

    private static RaftMessage VoteRequest(string from, long term) => new() { Type = MessageType.Vote, From = from, To = "c", Term = term, Index = 0, LogTerm = 0 };

    [TestCase(false, ExpectedResult = false, Description = "control: an amnesiac node grants a second vote in term 5")]
    [TestCase(true, ExpectedResult = true, Description = "rejoining: it refuses")]
    public bool ARejoiningNodeRefusesVotesItMightAlreadyHaveCast(bool rejoining)
    {
        // c voted for a in term 5, then lost its storage; now b asks for c's vote in term 5.
        var c = Node("c", rejoining);
        c.Step(VoteRequest("b", 5));
        var reply = c.TakeReady()!.Messages.Single(m => m.Type == MessageType.VoteResponse);
        return reply.Reject;
    }

    [Test]
    public void ARejoiningNodeNeverCampaigns()
    {
        var c = Node("c", rejoining: true);
        for (int i = 0; i < 100; i++)
        {
            c.Tick();
        }

        var sent = c.TakeReady()!.Messages;
        Assert.That(sent.Select(m => m.Type).Distinct(), Is.EquivalentTo(new[] { MessageType.TermQuery, MessageType.PreVote }), "it only asks for terms and pre-votes");
        Assert.That(c.Term, Is.Zero);
    }

    [Test]
    public void ItVotesAgainOnlyAfterHearingTheTermFromEnoughMembersAndCatchingUpFromACurrentLeader()
    {
        var c = Node("c", rejoining: true);

        // a leads term 7 and has committed 3 entries; b is at term 7 too.
        c.Step(new RaftMessage { Type = MessageType.PreVote, From = "b", To = "c", Term = 8, Index = 3, LogTerm = 7 });
        Assert.That(c.Rejoining, Is.True, "one other member is not enough in a cluster of 3");
        var entries = new[] { new LogEntry(1, 7, EntryKind.NoOp, default), new LogEntry(2, 7, EntryKind.Normal, new byte[] { 1 }), new LogEntry(3, 7, EntryKind.Normal, new byte[] { 2 }) };
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 7, Index = 0, LogTerm = 0, Entries = entries, Commit = 3 });
        Assert.That(c.Rejoining, Is.False, "heard from a and b (term 7) and holds everything the term-7 leader committed");
        Assert.That(c.TakeReady()!.HardState!.Value.Rejoining, Is.False, "the cleared flag is persisted");

        var forced = new RaftMessage { Type = MessageType.Vote, From = "b", To = "c", Term = 8, Index = 3, LogTerm = 7, Force = true };
        c.Step(forced);
        var reply = c.TakeReady()!.Messages.Last(m => m.Type == MessageType.VoteResponse);
        Assert.That(reply.Reject, Is.False, "c votes again, for an up-to-date candidate in a new term");
    }

    [Test]
    public void CatchingUpFromAStaleLeaderIsNotEnough()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.PreVote, From = "b", To = "c", Term = 10, Index = 0, LogTerm = 0 });
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 4, Commit = 0 });
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 4, Index = 0, LogTerm = 0, Commit = 0 });
        Assert.That(c.Rejoining, Is.True, "a leads term 4 but b is at term 9: c might have voted in terms up to 9");
    }

    [Test]
    public void ARejoiningNodeAsksForTheTermsItLacksAndEveryoneAnswers()
    {
        var c = Node("c", rejoining: true);
        c.Tick();
        var queries = c.TakeReady()!.Messages.Where(m => m.Type == MessageType.TermQuery).Select(m => m.To);
        Assert.That(queries, Is.EquivalentTo(new[] { "a", "b" }));
        var b = Node("b", hardState: new HardState(6, null, 0));
        b.Step(new RaftMessage { Type = MessageType.TermQuery, From = "c", To = "b", Term = 0 });
        var report = b.TakeReady()!.Messages.Single();
        Assert.That((report.Type, report.Term), Is.EqualTo((MessageType.TermReport, 6L)));
        c.Step(report);
        Assert.That(c.Term, Is.Zero, "a term report changes no term");
    }

    [Test]
    public void AFreshClusterNeedsNoCatchingUp()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.PreVote, From = "a", To = "c", Term = 1 });
        c.Step(new RaftMessage { Type = MessageType.PreVote, From = "b", To = "c", Term = 1 });
        Assert.That(c.Rejoining, Is.False, "everyone is at term 0: no leader ever existed");
    }

    [Test]
    public void AHeartbeatThatShowsAcknowledgedEntriesAreMissingStartsRejoining()
    {
        var c = Node("c");
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 3, Commit = 12 });
        Assert.That((c.Rejoining, c.LostStorageDetected), Is.EqualTo((true, true)));
        Assert.That(c.TakeReady()!.HardState!.Value.Rejoining, Is.True, "persisted, so a crash does not forget it");
        var restarted = Node("c", hardState: new HardState(3, null, 0, Rejoining: true));
        Assert.That(restarted.Rejoining, Is.True);
    }
}

/// <summary>Raft §5.4 / State Machine Safety for a node that lost an unflushed tail (found by the simulation, seed 205).</summary>
[TestFixture]
public sealed class LostTailCommitTests
{
    [Test]
    public void ARejoiningNodeDoesNotCommitAStaleEntryOnTheLeadersWord()
    {
        // c had replaced its entry 2 (term 1) by the term-2 entry and acknowledged it, then crashed and
        // lost that write: its log shows the old term-1 entry at index 2 again.
        var stale = new[] { new LogEntry(1, 1, EntryKind.Normal, new byte[] { 1 }), new LogEntry(2, 1, EntryKind.Normal, new byte[] { 9 }) };
        var c = new RaftCore(
            new RaftConfig { Id = "c", Members = ["a", "b", "c"], StartRejoining = true, Random = new Random(3) },
            new HardState(2, null, 1),
            stale);
        c.EndStartupLease();

        // The leader of term 2 remembers c acknowledging index 2 and tells it: commit 2.
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 2, Commit = 2, Index = 1 });
        Assert.That(c.CommitIndex, Is.EqualTo(1), "entry 2 here is not the committed one");
        c.Step(new RaftMessage { Type = MessageType.CommitNotice, From = "a", To = "c", Term = 2, Commit = 2 });
        Assert.That(c.CommitIndex, Is.EqualTo(1));

        // An AppendEntries verifies the log: the conflicting entry is replaced, then committed.
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 2, Index = 1, LogTerm = 1, Commit = 2, Entries = [new LogEntry(2, 2, EntryKind.Normal, new byte[] { 7 })] });
        Assert.That(c.CommitIndex, Is.EqualTo(2));
        Assert.That(c.Log.Entry(2).Term, Is.EqualTo(2));
    }
}
