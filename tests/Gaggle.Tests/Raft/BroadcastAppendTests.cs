using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// With <see cref="RaftConfig.BroadcastAppends"/>, a leader whose followers all replicate from the
/// same index sends new entries as one broadcast AppendEntries (one PUBLISH over Redis) and falls
/// back to one message per follower as soon as they differ.
/// </summary>
[TestFixture]
public sealed class BroadcastAppendTests
{
    /// <param name="size">Voters.</param>
    /// <param name="followerCommit">Off for the commit notice tests: voters of three that count themselves need no notices (FollowerCommitTests).</param>
    private static RaftTestCluster SteadyCluster(int size = 3, bool followerCommit = true)
    {
        var cluster = new RaftTestCluster(size, new ClusterOptions { BroadcastAppends = true, FollowerCommit = followerCommit });
        cluster.Elect("a");
        cluster.Propose("a", "warm-up");
        cluster.Stabilize();
        return cluster;
    }

    [Test]
    public void UnderLoadNewEntriesGoOutAsOneBroadcastWhenEveryFollowerReplicatesFromTheSameIndex()
    {
        var cluster = SteadyCluster();
        cluster.Propose("a", "in flight");
        cluster.Collect(); // sent, not yet acknowledged: both followers have an append in flight
        int before = cluster.Sent.Count;
        cluster.ProposeMany("a", 3, "e");
        cluster.Collect();
        var appends = cluster.Sent.Skip(before).Where(m => m.Type == MessageType.Append).ToList();

        Assert.That(appends, Has.Count.EqualTo(1), "one message for both followers");
        Assert.That(appends[0].To, Is.Null, "a broadcast");
        Assert.That(appends[0].Entries, Has.Count.EqualTo(3));

        cluster.Stabilize();
        Assert.That(cluster.Log("b").Select(e => e.Index), Is.EqualTo(cluster.Log("a").Select(e => e.Index)));
        Assert.That(cluster.Log("c").Select(e => e.Index), Is.EqualTo(cluster.Log("a").Select(e => e.Index)));
        Assert.That(new[] { "a", "b", "c" }.Select(id => cluster[id].CommitIndex), Is.All.EqualTo(cluster["a"].Log.LastIndex), "both acknowledged the broadcast; the commit reached everyone");
    }

    [Test]
    public void ALoneAppendGoesPointToPoint()
    {
        var cluster = SteadyCluster();
        int before = cluster.Sent.Count;
        cluster.Propose("a", "alone");
        cluster.Stabilize();
        var sent = cluster.Sent.Skip(before).Where(m => m.Type is MessageType.Append or MessageType.CommitNotice).ToList();

        Assert.That(sent.Where(m => m.To is null), Is.Empty, "nothing in flight: one message per follower, the quicker path over Redis");
        Assert.That(sent.Where(m => m.Type == MessageType.Append).Select(m => m.To), Is.EquivalentTo(new[] { "b", "c" }));
    }

    [Test]
    public void WhileAFollowerThatMissedABroadcastProbesEachFollowerGetsItsOwnMessages()
    {
        var cluster = SteadyCluster();
        cluster.Isolate("b");
        cluster.Propose("a", "missed by b");
        cluster.Stabilize();
        cluster.Heal();

        // The next broadcast does not match b's log: b rejects it and the leader probes b (the probes are lost).
        // Entries go out as a broadcast only under load: an append in flight to each follower first.
        using (cluster.Drop(m => m.Type == MessageType.Append && m.To == "b"))
        {
            cluster.Propose("a", "in flight");
            cluster.Collect();
            cluster.ProposeMany("a", 2, "rejected by b");
            cluster.Stabilize();
            Assert.That(cluster.Sent.Any(m => m.Type == MessageType.AppendResponse && m.From == "b" && m.Reject), Is.True, "b rejected");

            int before = cluster.Sent.Count;
            cluster.Propose("a", "in flight while b probes");
            cluster.Collect();
            cluster.ProposeMany("a", 2, "while b probes");
            cluster.Collect();
            var appends = cluster.Sent.Skip(before).Where(m => m.Type == MessageType.Append).ToList();
            Assert.That(appends.Where(m => m.To is null), Is.Empty, "no broadcast while b probes");
            Assert.That(appends.Select(m => m.To), Does.Contain("c"));
        }

        cluster.Advance(cluster.Options.ElectionTicksMax);
        cluster.Stabilize();
        Assert.That(cluster.Log("b").Select(e => e.Index), Is.EqualTo(cluster.Log("a").Select(e => e.Index)), "b caught up by its own messages");
        Assert.That(cluster.Log("c").Select(e => e.Index), Is.EqualTo(cluster.Log("a").Select(e => e.Index)));
    }

    [Test]
    public void ABroadcastIsNotSentWhileSomeMemberHasNoProgressYet()
    {
        // Five members, one down from the start: its follower probes and the others replicate.
        var cluster = new RaftTestCluster(5, new ClusterOptions { BroadcastAppends = true });
        cluster.Stop("e");
        cluster.Elect("a");
        cluster.Propose("a", "warm-up");
        cluster.Stabilize();
        int before = cluster.Sent.Count;
        cluster.Propose("a", "x");
        cluster.Collect();
        var appends = cluster.Sent.Skip(before).Where(m => m.Type == MessageType.Append).ToList();

        Assert.That(appends.Where(m => m.To is null), Is.Empty, "e would get a broadcast its progress does not expect; per-follower messages instead");
        Assert.That(appends.Select(m => m.To), Is.SupersetOf(new[] { "b", "c", "d" }));
    }

    [Test]
    public void UnderLoadACommitNoticeOwedToEveryFollowerAlikeIsOneBroadcast()
    {
        var cluster = SteadyCluster(followerCommit: false);
        cluster.Propose("a", "x");
        cluster.Collect();
        cluster.Propose("a", "y"); // broadcast: x is in flight to both
        cluster.Collect();

        // Both acknowledge x only (y is lost): the leader commits x while y is still in flight to both.
        long y = cluster["a"].Log.LastIndex;
        int before = cluster.Sent.Count;
        using (cluster.Drop(m => m.Type == MessageType.Append && m.Entries.Any(e => e.Index == y)))
        {
            cluster.Deliver(); // x reaches both; their acknowledgements are collected
            cluster.Deliver(); // the acknowledgements reach the leader; it commits x and owes both a notice
            cluster.Deliver(); // the notice reaches both
        }

        var notices = cluster.Sent.Skip(before).Where(m => m.Type == MessageType.CommitNotice).ToList();
        Assert.That(notices, Has.Count.EqualTo(1), "both followers acknowledged x and are owed the same commit");
        Assert.That(notices[0].To, Is.Null);
        Assert.That(new[] { "b", "c" }.Select(id => cluster[id].CommitIndex), Is.All.EqualTo(y - 1), "both learned that x committed");
    }

    [Test]
    public void ACommitNoticeIsNotBroadcastPastWhatAFollowerHas()
    {
        var cluster = SteadyCluster(followerCommit: false);
        cluster.Isolate("c");
        cluster.Propose("a", "x"); // commits with b alone
        int before = cluster.Sent.Count;
        cluster.Stabilize();
        var notices = cluster.Sent.Skip(before).Where(m => m.Type == MessageType.CommitNotice).ToList();

        Assert.That(notices.Where(m => m.To is null), Is.Empty, "c lacks x: a broadcast commit would tell c to commit what it has not got");
        Assert.That(notices.Select(m => m.To), Does.Contain("b"));
        cluster.Heal();
        cluster.Advance(cluster.Options.ElectionTicksMax);
        cluster.Stabilize();
        Assert.That(cluster["c"].CommitIndex, Is.EqualTo(cluster["a"].CommitIndex));
    }
}
