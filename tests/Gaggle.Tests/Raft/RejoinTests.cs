using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>A node that lost its storage must not break Election Safety (§5.2) or Leader Completeness (§5.4) when it returns.</summary>
[TestFixture]
public sealed class RejoinTests
{
    private static RaftCore Node(string id, bool rejoining = false, HardState? hardState = null, LogEntry[]? entries = null) => new(
        new RaftConfig { Id = id, Members = ["a", "b", "c"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, StartRejoining = rejoining, Random = new Random(id[0]) },
        hardState ?? HardState.Empty,
        entries ?? []);

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
        Assert.That(c.Rejoining, Is.True, "an AppendEntries names no run of c: its commit index may predate what c's lost run acknowledged");
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 7, Commit = 3, Index = 1, RejectHint = 3 });
        Assert.That(c.Rejoining, Is.False, "heard from a and b (term 7) and holds everything the term-7 leader committed, as its heartbeat to this run of c names");
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
        Assert.That(c.Term, Is.EqualTo(6), "a rejoining node moves to the latest term it hears of");
    }

    /// <summary>
    /// Found by the simulation (5-node discovery seed 2851, FlushPolicy.None): c heard term 2 from
    /// b, which then lost that term with its unflushed writes. a kept leading term 1 and c, waiting for
    /// a leader of term 2 or later, stayed rejoining for good. Moving to the term it heard of, c tells
    /// a that it is stale; the election that follows gives c a leader it can rejoin under.
    /// </summary>
    [Test]
    public void ARejoiningNodeTellsALeaderOfAnEarlierTermThanItHeardOfThatItIsStale()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "b", To = "c", Term = 2 });
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 1, Commit = 0, Index = 3 });

        var reply = c.TakeReady()!.Messages.Single(m => m.To == "a");
        Assert.That((reply.Type, reply.Term), Is.EqualTo((MessageType.AppendResponse, 2L)), "a steps down on a reply of a later term (Raft §5.1)");
        Assert.That(c.Rejoining, Is.True);
    }

    [Test]
    public void AFreshClusterNeedsNoCatchingUp()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.PreVote, From = "a", To = "c", Term = 1 });
        c.Step(new RaftMessage { Type = MessageType.PreVote, From = "b", To = "c", Term = 1 });
        Assert.That(c.Rejoining, Is.False, "everyone is at term 0: no leader ever existed");
    }

    /// <summary>
    /// Found by the simulation (5-node seed 2936): c voted for e in term 1, lost that vote with its
    /// unflushed storage and came back rejoining. a, b and d, still at term 0, were enough members to
    /// vote again by the old rule ("all at term 0: no leader ever existed"), and c then voted for b in
    /// term 1, while e, whom it had not heard from, was still campaigning in term 1 with its lost vote:
    /// two leaders could be elected in term 1. Term 0 counts only when every other member reports it.
    /// </summary>
    [Test]
    public void TermZeroFromOnlySomeMembersDoesNotLetARejoiningNodeVoteAgain()
    {
        var c = new RaftCore(
            new RaftConfig { Id = "c", Members = ["a", "b", "c", "d", "e"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, StartRejoining = true, Random = new Random(3) },
            HardState.Empty,
            []);
        foreach (var member in new[] { "a", "b", "d" })
        {
            c.Step(new RaftMessage { Type = MessageType.TermReport, From = member, To = "c", Term = 0 });
        }

        Assert.That(c.Rejoining, Is.True, "e may be campaigning in the term of c's lost vote");

        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "e", To = "c", Term = 0 });
        Assert.That(c.Rejoining, Is.False, "every member is at term 0: no candidate ever asked for a vote");
    }

    /// <summary>
    /// Found by the simulation (5-node seed 948): among the reports that let d vote again was one from a
    /// member that was rejoining itself, whose term was only what it had left after its own loss. Toward
    /// the N - majority + 1 members a rejoining node must hear from, a rejoining member's word (its
    /// marked term reports and pre-vote requests) does not count.
    /// </summary>
    [Test]
    public void ARejoiningMembersTermDoesNotCount()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "a", To = "c", Term = 3, Reject = true });
        c.Step(new RaftMessage { Type = MessageType.PreVote, From = "a", To = "c", Term = 4, Reject = true });
        var entries = new[] { new LogEntry(1, 3, EntryKind.NoOp, default) };
        c.Step(new RaftMessage { Type = MessageType.Append, From = "b", To = "c", Term = 3, Index = 0, LogTerm = 0, Entries = entries, Commit = 1 });
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "b", To = "c", Term = 3, Commit = 1, Index = 1, RejectHint = 1 });
        Assert.That(c.Rejoining, Is.True, "caught up from b, the leader of term 3, but a is rejoining too: c has heard from one whole member only");

        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "a", To = "c", Term = 3 });
        Assert.That(c.Rejoining, Is.False, "a is whole again, at term 3: two members heard, and caught up from a leader of that term");
    }

    /// <summary>
    /// A fresh cluster whose members all start rejoining (in-memory storage with Rejoin set on every
    /// instance, or a restart after all of them lost their storage) must still elect a leader: every
    /// member is at term 0, so no lost vote can matter, even though none of them is whole yet.
    /// </summary>
    [TestCase(3, 3)]
    [TestCase(3, 2)]
    [TestCase(5, 3)]
    [TestCase(5, 5)]
    public void AFreshClusterWhoseMembersAllStartRejoiningElectsALeader(int size, int rejoining)
    {
        var ids = Enumerable.Range(0, size).Select(i => ((char)('a' + i)).ToString()).ToArray();
        var cores = ids.Select((id, i) => new RaftCore(
            new RaftConfig { Id = id, Members = ids, ElectionTicksMin = 10, ElectionTicksMax = 20, HeartbeatTicks = 2, StartRejoining = i < rejoining, PreVote = true, Random = new Random(i) },
            HardState.Empty,
            [])).ToDictionary(c => c.Id);
        for (int tick = 0; tick < 500 && !cores.Values.Any(c => c.Role == RaftRole.Leader); tick++)
        {
            foreach (var core in cores.Values)
            {
                core.Tick();
            }

            for (int round = 0; round < 5; round++)
            {
                var messages = cores.Values.SelectMany(c => c.TakeReady()?.Messages ?? []).ToList();
                foreach (var message in messages)
                {
                    foreach (var target in cores.Values.Where(c => c.Id != message.From && (message.To is null || message.To == c.Id)))
                    {
                        target.Step(message);
                    }
                }
            }
        }

        Assert.That(cores.Values.Count(c => c.Role == RaftRole.Leader), Is.EqualTo(1), string.Join(", ", cores.Values.Select(c => $"{c.Id}: {c.Role} t{c.Term}{(c.Rejoining ? " rejoining" : "")}")));
    }

    [Test]
    public void ARejoiningNodeMarksItsTermReportsAndPreVotes()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.TermQuery, From = "a", To = "c", Term = 0 });
        for (int i = 0; i < 30; i++)
        {
            c.Tick();
        }

        var sent = c.TakeReady()!.Messages.Where(m => m.Type is MessageType.TermReport or MessageType.PreVote).ToArray();
        Assert.That(sent.Select(m => m.Type).Distinct(), Is.EquivalentTo(new[] { MessageType.TermReport, MessageType.PreVote }));
        Assert.That(sent.All(m => m.Reject), Is.True, "every term report and pre-vote request of a rejoining node is marked");
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

    /// <summary>
    /// Found by the simulation (3-node seed 494, and a FlushPolicy.None variant in discovery seed 888):
    /// c acknowledged entry 5 of term 3 to a, which committed it, then lost its storage. Back and
    /// rejoining, it heard only from b, a stale leader of term 2 cut off from a, and acknowledged b's
    /// entry 5 of term 2: b counted that acknowledgement and committed its entry over a's. A rejoining
    /// node must not acknowledge entries any more than it may vote until it has heard from enough
    /// members and none of them is at a later term than the leader.
    /// </summary>
    [Test]
    public void ARejoiningNodeAcknowledgesNoEntriesUntilItKnowsTheLeaderIsCurrent()
    {
        var c = Node("c", rejoining: true);
        var entries = new[] { new LogEntry(1, 2, EntryKind.NoOp, default) };
        c.Step(new RaftMessage { Type = MessageType.Append, From = "b", To = "c", Term = 2, Index = 0, LogTerm = 0, Entries = entries, Commit = 0 });
        Assert.That(Acknowledgements(c), Is.Empty, "heard only from b: a may have moved on to a later term with c's help");

        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "a", To = "c", Term = 3 });
        c.Step(new RaftMessage { Type = MessageType.Append, From = "b", To = "c", Term = 2, Index = 0, LogTerm = 0, Entries = entries, Commit = 0 });
        Assert.That(Acknowledgements(c), Is.Empty, "a is at term 3: b is a stale leader");
        Assert.That(c.LastIndex, Is.EqualTo(1), "it still takes the entries in; it only does not vouch for them");

        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 3, Index = 1, LogTerm = 2, Entries = [new LogEntry(2, 3, EntryKind.NoOp, default)], Commit = 0 });
        Assert.That(Acknowledgements(c), Is.EqualTo(new[] { ("a", 2L) }), "a leads the latest term c heard of, from every other member");

        static IEnumerable<(string?, long)> Acknowledgements(RaftCore node)
            => node.TakeReady()?.Messages.Where(m => m.Type == MessageType.AppendResponse && !m.Reject).Select(m => (m.To, m.Index)) ?? [];
    }

    /// <summary>
    /// Found by the simulation (3-node seed 1250): c lost its storage after entries 2..4 of term 1 were
    /// committed with its help. b, newly elected in term 3, held them but had committed only entry 1
    /// so far (its no-op was not yet replicated); c, given entry 1 and commit index 1, counted as
    /// caught up and voted again, for a candidate that lacked entries 2..4. A leader's commit index
    /// may lag behind what earlier terms committed; an entry of the leader's own term does not.
    /// </summary>
    [Test]
    public void CatchingUpTakesAnEntryOfTheLeadersTermNotJustItsCommitIndex()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "a", To = "c", Term = 3 });
        var log = new[] { Entry(1, 1), Entry(2, 1), Entry(3, 1), Entry(4, 1), Entry(5, 3) };
        c.Step(new RaftMessage { Type = MessageType.Append, From = "b", To = "c", Term = 3, Index = 0, LogTerm = 0, Entries = log[..1], Commit = 1 });
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "b", To = "c", Term = 3, Commit = 1, Index = 1, RejectHint = 1 });
        Assert.That(c.Rejoining, Is.True, "c holds all that b has committed so far, but not what term 1 committed");

        c.Step(new RaftMessage { Type = MessageType.Append, From = "b", To = "c", Term = 3, Index = 1, LogTerm = 1, Entries = log[1..], Commit = 1 });
        Assert.That(c.Rejoining, Is.False, "c holds b's entry of term 3, so all of b's log before it");
    }

    /// <summary>
    /// Found by the simulation (5-node seed 1659, FlushPolicy.None): c had replaced its entry 2 of
    /// term 1 by the leader's entry 2 of term 3 and acknowledged it; the crash lost that write, so c
    /// came back with the old entry. The leader, whose match for c still counted the lost
    /// acknowledgement, sent commit min(match, commit) = 2 in a heartbeat and c committed and applied
    /// its stale entry. A rejoining node takes no commit index on the leader's word; it says how far
    /// its log is vouched for (its commit index), and the leader resends from there.
    /// </summary>
    [Test]
    public void ARejoiningNodeTakesNoCommitIndexFromHeartbeatsAndAsksToBeResentFromItsOwn()
    {
        var c = Node("c", rejoining: true, hardState: new HardState(3, null, 1), entries: [Entry(1, 1), Entry(2, 1)]);
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 3, Commit = 2, Index = 2 });
        c.Step(new RaftMessage { Type = MessageType.CommitNotice, From = "a", To = "c", Term = 3, Commit = 2 });
        Assert.That(c.CommitIndex, Is.EqualTo(1), "c's entry 2 may not be the one the leader means");
        var notice = c.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse);
        Assert.That((notice.Reject, notice.RejectHint, notice.LogTerm), Is.EqualTo((true, 2L, 0L)), "c's log is vouched for up to its commit index 1");

        var a = Leader("a", new HardState(3, null, 1), [Entry(1, 1), Entry(2, 3)]);
        a.Step(new RaftMessage { Type = MessageType.AppendResponse, From = "c", To = "a", Term = a.Term, Index = 2 });
        a.TakeReady();
        a.Step(new RaftMessage
        {
            Type = notice.Type, From = "c", To = "a", Term = a.Term, Index = notice.Index, Reject = true, RejectHint = notice.RejectHint, LogTerm = notice.LogTerm,
        });
        var resent = a.TakeReady()!.Messages.Single(m => m.Type == MessageType.Append && m.To == "c");
        Assert.That((resent.Index, resent.Entries[0].Index), Is.EqualTo((1L, 2L)), "the leader forgets the acknowledgement c lost and resends entry 2");
    }

    /// <summary>
    /// Found by the simulation (5-node seed 383): a rejoining node that caught up by installing the
    /// leader's snapshot stayed rejoining for good in an idle cluster: only an AppendEntries could
    /// prove it caught up, and with nothing new to replicate none came. The leader's heartbeat now
    /// carries the leader's commit index too.
    /// </summary>
    [Test]
    public void InAnIdleClusterTheLeadersHeartbeatLetsACaughtUpNodeFinishRejoining()
    {
        var c = Node("c", rejoining: true);
        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "b", To = "c", Term = 2 });
        c.Step(new RaftMessage { Type = MessageType.Snapshot, From = "a", To = "c", Term = 2, Index = 5, LogTerm = 2, Offset = 0, Data = new byte[] { 1, 2, 3 }, Done = true });
        Assert.That((c.CommitIndex, c.Rejoining), Is.EqualTo((5L, true)), "a snapshot does not tell the leader's commit index");

        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 2, Commit = 5, Index = 1, RejectHint = 5 });
        Assert.That(c.Rejoining, Is.False);
    }

    /// <summary>
    /// With followers committing on their own, c stored entries 2..3 of a's term 3 and, a and c being
    /// two of three voters, committed and applied them; its acknowledgement to a was lost, so a's
    /// commit index stayed at 1. Then c lost its storage. Rejoining, it hears from a and b; a resends
    /// its log in two messages. Holding entry 1 (of term 3) and a's commit index is not enough: voting
    /// then, c would help b (which lacks 2..3) win and overwrite what c had applied. It is caught up
    /// only once its log reaches a's last index, which a's heartbeat names.
    /// </summary>
    [Test]
    public void WithFollowerCommitARejoiningNodeCatchesUpToTheLeadersLastEntryNotItsCommitIndex()
    {
        var c = new RaftCore(
            new RaftConfig { Id = "c", Members = ["a", "b", "c"], ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, StartRejoining = true, FollowerCommit = true, Random = new Random(3) },
            HardState.Empty, []);
        c.Step(new RaftMessage { Type = MessageType.TermReport, From = "b", To = "c", Term = 3 });
        var log = new[] { Entry(1, 3), Entry(2, 3), Entry(3, 3) };
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 3, Index = 0, LogTerm = 0, Entries = log[..1], Commit = 1, RejectHint = 0 });
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 3, Commit = 1, Index = 1, RejectHint = 3 });
        Assert.That(c.Rejoining, Is.True, "c holds a's commit index and an entry of a's term, but not a's entries 2..3, which c may have committed before");
        c.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "c", Term = 3, Index = 1, LogTerm = 3, Entries = log[1..], Commit = 1, RejectHint = 0 });
        Assert.That(c.Rejoining, Is.True, "an AppendEntries does not tell whether it carries the leader's whole tail");
        c.Step(new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 3, Commit = 1, Index = 2, RejectHint = 3 });
        Assert.That(c.Rejoining, Is.False, "c holds a's log up to the last index its heartbeat named");
    }

    private static LogEntry Entry(long index, long term) => new(index, term, EntryKind.Normal, new byte[] { (byte)index });

    private static RaftCore Leader(string id, HardState hardState, LogEntry[] entries)
    {
        var node = Node(id, hardState: hardState, entries: entries);
        for (int i = 0; i < 20 && node.Role != RaftRole.PreCandidate; i++)
        {
            node.Tick();
        }

        node.Step(new RaftMessage { Type = MessageType.PreVoteResponse, From = "b", To = id, Term = node.Term + 1, Index = node.Term });
        node.Step(new RaftMessage { Type = MessageType.VoteResponse, From = "b", To = id, Term = node.Term });
        Assert.That(node.Role, Is.EqualTo(RaftRole.Leader));
        node.TakeReady();
        return node;
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
