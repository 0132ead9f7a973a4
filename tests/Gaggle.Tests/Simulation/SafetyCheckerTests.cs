using System.Text;
using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The checker must fail loudly on each broken property; otherwise a green simulation would prove
/// nothing. Each test feeds it a deliberately broken history.
/// </summary>
[TestFixture]
[Category("Simulation")]
public sealed class SafetyCheckerTests
{
    private static LogEntry Entry(long index, long term, string payload)
        => new(index, term, EntryKind.Normal, Encoding.UTF8.GetBytes(payload));

    [Test]
    public void TwoDifferentEntriesAppliedAtOneIndexBreakStateMachineSafety()
    {
        var checker = new SafetyChecker();
        checker.ObserveApplied("a", 0, Entry(1, 1, "x"));

        Assert.That(
            () => checker.ObserveApplied("b", 0, Entry(1, 1, "y")),
            Throws.TypeOf<SafetyViolationException>().With.Message.Contains("state machine safety: at index 1 a applied 1/t1 'x' but b applied 1/t1 'y'"));
    }

    [Test]
    public void ApplyingOutOfOrderIsCaught()
    {
        var checker = new SafetyChecker();

        Assert.That(() => checker.ObserveApplied("a", 0, Entry(2, 1, "x")), Throws.TypeOf<SafetyViolationException>().With.Message.Contains("contiguous"));
    }

    [Test]
    public void TwoLeadersInOneTermBreakElectionSafety()
    {
        var checker = new SafetyChecker();
        checker.ObserveLeader("a", 7);
        checker.ObserveLeader("a", 7);
        checker.ObserveLeader("c", 8);

        Assert.That(
            () => checker.ObserveLeader("c", 7),
            Throws.TypeOf<SafetyViolationException>().With.Message.EqualTo("election safety: two leaders in term 7: a, c"));
    }

    [Test]
    public void TwoEntriesWithOneIndexAndTermBreakLogMatching()
    {
        var checker = new SafetyChecker();
        checker.ObserveLogged("a", Entry(1, 1, "x"), previousTerm: 0);

        Assert.That(
            () => checker.ObserveLogged("b", Entry(1, 1, "y"), previousTerm: 0),
            Throws.TypeOf<SafetyViolationException>().With.Message.StartsWith("log matching: two different entries at index 1 of term 1"));
    }

    [Test]
    public void EqualEntriesAfterDifferentPrefixesBreakLogMatching()
    {
        var checker = new SafetyChecker();
        checker.ObserveLogged("a", Entry(2, 3, "x"), previousTerm: 1);

        Assert.That(
            () => checker.ObserveLogged("b", Entry(2, 3, "x"), previousTerm: 2),
            Throws.TypeOf<SafetyViolationException>().With.Message.Contains("follows an entry of term 1 on a but of term 2 on b"));
    }

    [Test]
    public void ALeaderMissingAnEarlierCommittedEntryBreaksLeaderCompleteness()
    {
        var checker = new SafetyChecker();
        long[] terms = [0, 1, 2];
        checker.ObserveCommitted("a", nodeTerm: 2, from: 1, to: 2, index => terms[index]);

        // A leader of term 2 need not hold what was committed in term 2; one of term 3 must.
        Assert.That(checker.CheckLeaderCompleteness("b", 2, 0, _ => -1), Is.EqualTo(2));
        Assert.That(
            () => checker.CheckLeaderCompleteness("b", 3, 0, index => index == 1 ? 1 : 3),
            Throws.TypeOf<SafetyViolationException>().With.Message.Contains("leader completeness: b, leader of term 3, holds an entry of term 3 at index 2"));
    }

    [Test]
    public void ACommittedEntryThatChangesIsCaught()
    {
        var checker = new SafetyChecker();
        checker.ObserveCommitted("a", 2, 1, 1, _ => 1);

        Assert.That(
            () => checker.ObserveCommitted("b", 3, 1, 1, _ => 2),
            Throws.TypeOf<SafetyViolationException>().With.Message.Contains("committed entry changed"));
    }

    [Test]
    public void StorageRefusesToOverwriteCommittedEntries()
    {
        var checker = new SafetyChecker();
        var node = new SimulatedNode(null!, "a", default);
        node.Persist(new Ready { EntriesToPersist = [Entry(1, 1, "x"), Entry(2, 1, "y")], HardState = new HardState(1, null, 1) }, checker);

        Assert.That(
            () => node.Persist(new Ready { EntriesToPersist = [Entry(1, 2, "z")] }, checker),
            Throws.TypeOf<SafetyViolationException>().With.Message.Contains("at or below its persisted commit index 1"));
    }

    [Test]
    public void ASnapshotWhoseContentDiffersFromWhatWasAppliedBreaksStateMachineSafety()
    {
        var checker = new SafetyChecker();
        checker.ObserveApplied("a", 0, Entry(1, 1, "x"));
        checker.ObserveApplied("a", 1, Entry(2, 1, "y"));
        var snapshot = new RaftSnapshot(2, 1, SnapshotCodec.Encode([Entry(1, 1, "x"), Entry(2, 1, "z")]));

        Assert.That(
            () => checker.ObserveRestored("b", SnapshotCodec.Decode(snapshot)),
            Throws.TypeOf<SafetyViolationException>().With.Message.Contains("at index 2 a applied 2/t1 'y' but b restored 2/t1 'z' from a snapshot"));
    }

    [Test]
    public void ASnapshotCutShortOrMislabelledIsCaught()
    {
        byte[] data = SnapshotCodec.Encode([Entry(1, 1, "x"), Entry(2, 3, "y")]);

        Assert.That(SnapshotCodec.Decode(new RaftSnapshot(2, 3, data)), Has.Count.EqualTo(2));
        Assert.That(() => SnapshotCodec.Decode(new RaftSnapshot(2, 3, data.AsMemory(0, data.Length - 1))), Throws.TypeOf<SafetyViolationException>().With.Message.Contains("cut short"));
        Assert.That(() => SnapshotCodec.Decode(new RaftSnapshot(2, 2, data)), Throws.TypeOf<SafetyViolationException>().With.Message.Contains("applied up to 2/t3"));
    }

    [Test]
    public void TwoVotesInOneTermBreakVoteSafety()
    {
        var checker = new SafetyChecker();
        checker.ObserveVote("a", 4, "b");
        checker.ObserveVote("a", 4, "b");
        checker.ObserveVote("a", 5, "c");

        Assert.That(
            () => checker.ObserveVote("a", 4, "c"),
            Throws.TypeOf<SafetyViolationException>().With.Message.EqualTo("vote safety: a granted its vote in term 4 to b and then to c"));
    }

    /// <summary>
    /// Discovery and 5-node seed 2609: a voter that lost its vote for a candidate which then lost its
    /// own term with its storage voted again in that term (the rejoin procedure's term-0 rule). The
    /// first vote counts for nobody; election safety still checks the leaders.
    /// </summary>
    [Test]
    public void A_second_vote_in_a_term_whose_first_candidate_forgot_its_candidacy_is_no_violation()
    {
        var checker = new SafetyChecker();
        checker.ObserveVote("a", 1, "b");
        checker.ObserveForgottenTerms("b", keptTerm: 0, lostTerm: 1);
        checker.ObserveVote("a", 1, "c");
        checker.ObserveForgottenTerms("c", keptTerm: 1, lostTerm: 2);

        Assert.That(
            () => checker.ObserveVote("a", 1, "d"),
            Throws.TypeOf<SafetyViolationException>().With.Message.EqualTo("vote safety: a granted its vote in term 1 to c and then to d"),
            "c still remembers its candidacy in term 1");
    }

    [TestCase(1, "1/t1 'x', 2/t1 'y', 3/t2 'w', 4/t2 'v'", 2, TestName = "A crash that loses the newest unflushed batch (a snapshot) keeps the one before it")]
    [TestCase(2, "1/t1 'x', 2/t1 'y', 3/t1 'z'", 1, TestName = "A crash that loses both unflushed batches leaves what was flushed")]
    public void UnflushedBatchesLostInACrashLeaveTheStorageAsBeforeThem(int lost, string entries, long term)
    {
        var checker = new SafetyChecker();
        var node = new SimulatedNode(null!, "a", default);
        node.Storage.Buffered = true;
        node.Persist(new Ready { EntriesToPersist = [Entry(1, 1, "x"), Entry(2, 1, "y"), Entry(3, 1, "z")], HardState = new HardState(1, "a", 2) }, checker);
        node.Storage.Flush();
        node.Persist(new Ready { EntriesToPersist = [Entry(3, 2, "w"), Entry(4, 2, "v")], HardState = new HardState(2, null, 3) }, checker);
        node.Storage.BeginBatch();
        node.Storage.SaveSnapshot(new RaftSnapshot(3, 2, SnapshotCodec.Encode([Entry(1, 1, "x"), Entry(2, 1, "y"), Entry(3, 2, "w")])));
        node.Storage.EndBatch();
        Assert.That((node.Storage.SnapshotIndex, node.Storage.LastIndex, node.Storage.UnflushedBatches), Is.EqualTo((3L, 4L, 2)));

        node.Storage.LoseNewest(lost);

        Assert.That(node.Storage.Snapshot, Is.Null);
        Assert.That(node.HardState.Term, Is.EqualTo(term));
        Assert.That(string.Join(", ", node.Storage.Entries.Select(SafetyChecker.Describe)), Is.EqualTo(entries));
        Assert.That(node.Storage.UnflushedBatches, Is.Zero);
    }

    [Test]
    public void ARunIsDeterministicWithOrWithoutTracing()
    {
        var shape = new ClusterShape(5, Discovery: false);
        var first = Simulator.Run(17, shape);
        var again = Simulator.Run(17, shape);
        var traced = Simulator.Run(17, shape, trace: true);

        Assert.That(first.Failure, Is.Null);
        Assert.That(again.Stats, Is.EqualTo(first.Stats));
        Assert.That(traced.Stats, Is.EqualTo(first.Stats));
        Assert.That(first.Stats.Committed, Is.GreaterThan(0), "the run must make progress, or it checks nothing");
    }
}
