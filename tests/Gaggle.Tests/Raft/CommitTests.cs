using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Commitment (Raft §5.3, §5.4.2, §8) and applying in log order.</summary>
[TestFixture]
public sealed class CommitTests
{
    /// <summary>
    /// Raft Figure 8, states (a)-(c), with five servers a..e and plain Raft (no pre-vote, no leader
    /// lease) as in the paper: a led term 2 and put entry 2 on a and b; e led term 3 and wrote its own
    /// entry 2 on itself only, then went down. a is elected for term 4 (votes of b, c, d) and
    /// replicates entry 2 to c, so entry 2 is on a majority (a, b, c); a's own no-op of term 4
    /// (index 3) reaches nobody.
    /// </summary>
    private static RaftTestCluster Figure8UpToC()
    {
        var cluster = new RaftTestCluster(5, new ClusterOptions { PreVote = false, CheckQuorum = false, MaxEntriesPerMessage = 1 });
        cluster.Preload("a", new HardState(3, null, 1), 1, 2);
        cluster.Preload("b", new HardState(3, null, 1), 1, 2);
        cluster.Preload("c", new HardState(3, "e", 1), 1);
        cluster.Preload("d", new HardState(3, "e", 1), 1);
        cluster.Preload("e", new HardState(3, "e", 1), 1, 3);
        cluster.Stop("e");

        // Entry 3 never arrives anywhere; c's first probe (prev 2) is let through so that c rejects it
        // and gets entry 2 next; d hears nothing.
        bool GivesEntry3(RaftMessage m) => m.Entries.Any(e => e.Index == 3) && (m.To != "c" || cluster.LogTerms("c").Length >= 2);
        using (cluster.Drop(m => m.Type == MessageType.Append && (GivesEntry3(m) || m.To == "d")))
        {
            cluster.Elect("a");
        }

        Assert.That(cluster.Term("a"), Is.EqualTo(4));
        return cluster;
    }

    // Raft §5.4.2, Figure 8 (c): an entry of an earlier term on a majority is NOT committed by counting replicas.
    [Test]
    public void A_leader_does_not_commit_an_earlier_terms_entry_by_counting_replicas()
    {
        var cluster = Figure8UpToC();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(new[] { "a", "b", "c" }.Select(id => cluster.Log(id)[1].Term), Is.All.EqualTo(2), "entry 2 is on a majority");
            Assert.That(cluster.LogTerms("a"), Is.EqualTo(new long[] { 1, 2, 4 }));
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(1), "but it is from term 2, and a leads term 4");
            Assert.That(cluster["a"].HasUncommittedEntriesInPreviousTerms(), Is.True);
        }

        // Figure 8 (d): why that matters: a crashes; e (last term 3) is elected by b, c and d and
        // overwrites entry 2 everywhere. Had a committed it, committed data would now be lost.
        cluster.Stop("a");
        cluster.Restart("e");
        cluster.Campaign("e"); // term 4: b, c and d already voted for a
        cluster.Elect("e");    // term 5
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            foreach (var id in new[] { "b", "c", "d", "e" })
            {
                Assert.That(cluster.LogTerms(id), Is.EqualTo(new long[] { 1, 3, 5 }), id);
                Assert.That(cluster[id].CommitIndex, Is.EqualTo(3), id);
            }
        }
    }

    // Raft §5.4.2, Figure 8 (e): once an entry of the leader's own term is committed, the earlier entries
    // before it are committed indirectly (Log Matching), and no other server can be elected without them.
    [Test]
    public void An_earlier_terms_entry_commits_indirectly_with_the_leaders_own_entry()
    {
        var cluster = Figure8UpToC();

        cluster.Advance(2 * cluster.Options.HeartbeatTicks); // lost appends are resent (e is still down)

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(3));
            Assert.That(cluster["a"].HasUncommittedEntriesInPreviousTerms(), Is.False);
            Assert.That(cluster.AppliedIndex("b"), Is.EqualTo(3));
        }

        // e cannot win any more: a majority holds an entry of term 4, newer than e's last term 3.
        cluster.Stop("a");
        cluster.Restart("e");
        cluster.Campaign("e"); // term 4
        cluster.Campaign("e"); // term 5
        Assert.That(cluster.Leaders(), Is.Empty, "b, c and d hold term 4 entries; e's log ends in term 3");
    }

    // Raft §8: a new leader does not wait for a client write to commit what earlier terms left behind:
    // its no-op does it.
    [Test]
    public void A_new_leader_commits_earlier_entries_through_its_noop()
    {
        var cluster = new RaftTestCluster(3);
        foreach (var id in cluster.Ids)
        {
            cluster.Preload(id, new HardState(1, "a", 1), 1, 1, 1); // entries 2 and 3 replicated but not known committed
        }

        using (cluster.Drop(m => m.Type == MessageType.Append))
        {
            cluster.Elect("b");
            Assert.That(cluster["b"].HasUncommittedEntriesInPreviousTerms(), Is.True);
            Assert.That(cluster["b"].CommitIndex, Is.EqualTo(1));
        }

        cluster.Advance(cluster.Options.HeartbeatTicks);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["b"].HasUncommittedEntriesInPreviousTerms(), Is.False);
            foreach (var id in cluster.Ids)
            {
                Assert.That(cluster.LogTerms(id), Is.EqualTo(new long[] { 1, 1, 1, 2 }), id);
                Assert.That(cluster.AppliedIndex(id), Is.EqualTo(4), id);
            }
        }
    }

    [Test]
    public void HasUncommittedEntriesInPreviousTerms_is_false_for_an_up_to_date_node_and_a_fresh_one()
    {
        var cluster = new RaftTestCluster(3);
        Assert.That(cluster["a"].HasUncommittedEntriesInPreviousTerms(), Is.False, "empty log");

        cluster.Elect("a");
        cluster.Propose("a", "v");
        cluster.Collect();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].HasUncommittedEntriesInPreviousTerms(), Is.False, "uncommitted, but of the current term");
            Assert.That(cluster["a"].CommitIndex, Is.LessThan(cluster["a"].LastIndex));
        }

        cluster.Stabilize();
        Assert.That(cluster.Ids.Select(id => cluster[id].HasUncommittedEntriesInPreviousTerms()), Is.All.False);
    }

    // Raft §5.3: followers learn the commit index from the leader; with AccelerateCommit at once,
    // otherwise with the next heartbeat or append (FollowerCommit off: a voter of three would know
    // on its own, see FollowerCommitTests).
    [TestCase(true, 0)]
    [TestCase(false, 2)]
    public void Followers_learn_the_commit_index_from_the_leader(bool accelerate, int ticksNeeded)
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { AccelerateCommit = accelerate, FollowerCommit = false, HeartbeatTicks = 2 });
        cluster.Elect("a");
        cluster.Advance(cluster.Options.HeartbeatTicks);

        long index = cluster.Propose("a", "v");
        cluster.Stabilize();
        Assert.That(cluster["a"].CommitIndex, Is.EqualTo(index));

        int ticks = cluster.AdvanceUntil(() => cluster["b"].CommitIndex == index && cluster["c"].CommitIndex == index);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ticks, Is.EqualTo(ticksNeeded));
            Assert.That(cluster.AppliedData("c"), Is.EqualTo(new[] { "v" }));
        }
    }

    // A single-node cluster is its own majority: it leads and commits alone.
    [Test]
    public void A_single_node_cluster_commits_on_its_own()
    {
        var cluster = new RaftTestCluster(1);
        cluster.Elect("a");
        cluster.Propose("a", "v1");
        cluster.Propose("a", "v2");
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(3));
            Assert.That(cluster.AppliedData("a"), Is.EqualTo(new[] { "v1", "v2" }));
            Assert.That(cluster.Sent, Is.Empty);
        }
    }

    // Raft Figure 2: entries are applied strictly in log order, after they are persisted, and a
    // restarted node does not apply again what it had applied (the harness checks the order).
    [Test]
    public void A_restarted_node_applies_each_entry_once_and_in_order()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.Propose("a", "v1");
        cluster.Stabilize();
        cluster.Stop("b");
        cluster.Propose("a", "v2");
        cluster.Stabilize();

        cluster.Restart("b");
        cluster.Advance(2 * cluster.Options.HeartbeatTicks);
        cluster.Propose("a", "v3");
        cluster.Stabilize();

        Assert.That(cluster.AppliedData("b"), Is.EqualTo(new[] { "v1", "v2", "v3" }));
    }

    // Proposals are refused by non-leaders (the runtime forwards them to the leader).
    [Test]
    public void Only_the_leader_accepts_proposals()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Propose("b", "v"), Is.EqualTo(-1));
            Assert.That(cluster["a"].Propose([]), Is.EqualTo(-1), "nothing to propose");
            Assert.That(cluster.Propose("a", "v"), Is.EqualTo(2));
            Assert.That(cluster.ProposeMany("a", 3), Is.EqualTo(3));
        }
    }
}
