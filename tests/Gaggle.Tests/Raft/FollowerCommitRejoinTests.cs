using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Followers that commit on their own (RaftConfig.FollowerCommit) and nodes that rejoin after losing their storage.</summary>
[TestFixture]
public sealed class FollowerCommitRejoinTests
{
    /// <summary>
    /// c self-commits and applies entry j (its acknowledgement to a is lost, b never gets j), loses its
    /// storage and rejoins; then a dies. b and c must not elect a leader without j (the harness throws
    /// on State Machine Safety). With compact: a snapshots first, so c catches up through a snapshot.
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public void ASelfCommittedEntrySurvivesTheFollowersLostStorage(bool compact)
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { FollowerCommit = true });
        long j = CommitOnlyOnC(cluster);

        if (compact)
        {
            cluster.Compact("a");
        }

        cluster.Preload("c", new HardState(0, null, 0, Rejoining: true));
        using (cluster.Drop(m => m.To == "b" && m.Type == MessageType.Append))
        {
            cluster.AdvanceUntil(() => !cluster["c"].Rejoining, 500);
        }

        Assert.That(cluster.Log("c").Count + (cluster.PersistedSnapshot("c")?.Index ?? 0), Is.GreaterThanOrEqualTo(j), "caught up past j");
        Assert.That(cluster.InstalledSnapshots("c").Count > 0, Is.EqualTo(compact), "c caught up through a snapshot exactly when a compacted");
        cluster.Stop("a");
        cluster.AdvanceUntil(() => cluster.Leaders().Count == 1 && cluster.Leaders()[0] != "a", 500);
        cluster.Propose(cluster.Leaders()[0], "after");
        cluster.Advance(20);
        Assert.That(cluster.AppliedData("b"), Does.Contain("j"));
    }

    /// <summary>
    /// As above, but the AppendEntries that would carry j to the rejoining c are lost, so c could catch
    /// up to a's commit index (below j) without j; then a dies. Had c counted as caught up then, b and c
    /// would elect b, which lacks j, and b would overwrite what c had applied (the harness throws on
    /// State Machine Safety). c stays rejoining until it holds what a sent it.
    /// </summary>
    [Test]
    public void ARejoiningNodeDoesNotVoteWithoutTheEntriesTheLeaderSentIt()
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { FollowerCommit = true, MaxEntriesPerMessage = 1 });
        long j = CommitOnlyOnC(cluster);

        cluster.Preload("c", new HardState(0, null, 0, Rejoining: true));
        using (cluster.Drop(m => (m.To == "b" && m.Type == MessageType.Append) || (m.To == "c" && m.Type == MessageType.Append && m.Entries.Any(e => e.Index >= j))))
        {
            cluster.Advance(60);
        }

        Assert.That(cluster["c"].Rejoining, Is.True, "c does not hold j, which a sent it");
        cluster.Stop("a");
        cluster.Advance(200);
        Assert.That(cluster.Leaders(), Is.Empty, "b lacks j and c does not vote: no leader until a returns");
    }

    /// <summary>
    /// c lost its storage and rejoins while the leader gets a proposal in every batch, before its tick
    /// (the driver proposes forwarded appends as they arrive, and a Tick input of the same loop batch
    /// comes after them). The heartbeat is put in the outbox by Tick, the AppendEntries carrying the new
    /// entry only by FlushLeader in TakeReady: every heartbeat names an index c does not hold yet.
    /// </summary>
    [TestCase(true, true)]
    [TestCase(false, true)]
    [TestCase(true, false)]
    public void ARejoiningNodeFinishesUnderSteadyLoad(bool followerCommit, bool proposeBeforeTick)
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { FollowerCommit = followerCommit });
        cluster.Elect("a");
        cluster.ProposeMany("a", 5);
        cluster.Stabilize();
        cluster.Preload("c", new HardState(0, null, 0, Rejoining: true));
        Assert.That(cluster["c"].Rejoining, Is.True);
        long regressionsBefore = cluster["a"].FollowerLogRegressions;
        int ticks;
        for (ticks = 0; ticks < 300 && cluster["c"].Rejoining; ticks++)
        {
            if (proposeBeforeTick)
            {
                cluster.Propose("a", $"p{ticks}");
            }

            cluster.Advance(1);
        }

        Assert.That(cluster["c"].Rejoining, Is.False, $"still rejoining after {ticks} ticks ({cluster["a"].FollowerLogRegressions - regressionsBefore} log regressions counted)");
    }

    /// <summary>
    /// A node that rejoined after losing its storage never counts itself again (it trusts only commits
    /// it verified), so the leader owes it the commit notices it spares the others: it learns a commit
    /// as soon as the leader does, not at the next heartbeat.
    /// </summary>
    [TestCase(true)]
    [TestCase(false)]
    public void AFollowerThatRejoinedLearnsCommitsAsFastAsBefore(bool followerCommit)
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { FollowerCommit = followerCommit });
        cluster.Elect("a");
        cluster.ProposeMany("a", 5);
        cluster.Stabilize();
        cluster.Preload("c", new HardState(0, null, 0, Rejoining: true));
        cluster.AdvanceUntil(() => !cluster["c"].Rejoining);
        cluster.Advance(5);
        long index = cluster.Propose("a", "after");
        cluster.Stabilize();
        Assert.That(cluster["c"].CommitIndex, Is.EqualTo(index), "no tick passed: c learned the commit from an AppendEntries or a commit notice");
    }

    /// <summary>
    /// a leads; c stores entry j and commits and applies it on its own (a and c are two of three), but its
    /// acknowledgement to a is lost and b never gets j: a's commit index stays below j. Returns j.
    /// </summary>
    private static long CommitOnlyOnC(RaftTestCluster cluster)
    {
        cluster.Elect("a");
        cluster.ProposeMany("a", 3);
        cluster.Stabilize();
        using (cluster.Drop(m => (m.From == "c" && m.To == "a" && m.Type == MessageType.AppendResponse) || (m.To == "b" && m.Type == MessageType.Append) || m.To is null))
        {
            long j = cluster.Propose("a", "j");
            cluster.Stabilize();
            Assert.That(cluster.AppliedData("c"), Does.Contain("j"), "c committed and applied j on its own");
            Assert.That(cluster["a"].CommitIndex, Is.LessThan(j));
            Assert.That(cluster.Log("b").Count, Is.LessThan(j));
            return j;
        }
    }
}
