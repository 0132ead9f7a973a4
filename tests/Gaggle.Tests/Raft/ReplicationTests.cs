using System.Text;
using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Log replication (Raft §5.3): log matching, conflict repair, catch-up, batching and pipelining.</summary>
[TestFixture]
public sealed class ReplicationTests
{
    // Raft §5.3 Log Matching: after leader changes and partitions, every log holds the same entries.
    [Test]
    public void Replicated_logs_are_identical_after_leader_changes()
    {
        var cluster = new RaftTestCluster(5);
        cluster.Elect("a");
        cluster.Propose("a", "a1");
        cluster.Propose("a", "a2");
        cluster.Stabilize();

        cluster.Isolate("a");
        cluster.Propose("a", "lost"); // never reaches a majority
        cluster.AdvanceUntil(() => cluster.Leaders().Any(id => id != "a"));
        string second = cluster.Leaders().Single(id => id != "a");
        cluster.Propose(second, "b1");
        cluster.Stabilize();
        cluster.Heal();
        cluster.Advance(cluster.Options.ElectionTicksMax);
        cluster.Propose(cluster.Leaders().Single(), "last");
        cluster.Stabilize();

        var expected = Describe(cluster.Log(second));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(expected, Has.None.EndsWith(":lost"), "the isolated leader's entry was replaced");
            foreach (var id in cluster.Ids)
            {
                Assert.That(Describe(cluster.Log(id)), Is.EqualTo(expected), id);
                Assert.That(cluster.AppliedData(id), Is.EqualTo(new[] { "a1", "a2", "b1", "last" }), id);
            }
        }
    }

    // Raft §5.3 / Figure 2 receiver rule 2: reply false if the log has no entry at prevLogIndex whose term
    // matches prevLogTerm; the rejection carries the conflicting term and its first index as a hint.
    [Test]
    public void AppendEntries_with_a_mismatching_prevLogTerm_is_rejected()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Preload("b", new HardState(3, null, 1), 1, 2, 2);

        var mismatch = cluster.Send(Msg.Append("a", "b", term: 3, prevIndex: 3, prevTerm: 3, commit: 3, RaftTestCluster.Entries(4, 3))).Single();
        var beyond = cluster.Send(Msg.Append("a", "b", term: 3, prevIndex: 7, prevTerm: 3, commit: 3)).Single();

        using (Assert.EnterMultipleScope())
        {
            Assert.That((mismatch.Type, mismatch.Reject, mismatch.Index), Is.EqualTo((MessageType.AppendResponse, true, 3L)));
            Assert.That((mismatch.RejectHint, mismatch.LogTerm), Is.EqualTo((2L, 2L)), "term 2 starts at index 2");
            Assert.That((beyond.Reject, beyond.RejectHint), Is.EqualTo((true, 4L)), "a log too short hints its end");
            Assert.That(cluster.LogTerms("b"), Is.EqualTo(new long[] { 1, 2, 2 }), "a rejected append changes nothing");
            Assert.That(cluster["b"].CommitIndex, Is.EqualTo(1));
        }

        var accepted = cluster.Send(Msg.Append("a", "b", term: 3, prevIndex: 1, prevTerm: 1, commit: 3, RaftTestCluster.Entries(2, 3, 3))).Single();
        using (Assert.EnterMultipleScope())
        {
            Assert.That((accepted.Reject, accepted.Index), Is.EqualTo((false, 3L)));
            Assert.That(cluster.LogTerms("b"), Is.EqualTo(new long[] { 1, 3, 3 }), "Figure 2 rule 3: the conflicting suffix is replaced");
            Assert.That(cluster["b"].CommitIndex, Is.EqualTo(3));
        }
    }

    // Figure 2 receiver rule 3 at the very first entry: a stale uncommitted entry at index 1 is replaced.
    [Test]
    public void A_conflicting_entry_at_index_1_is_replaced()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Preload("b", new HardState(1, "b", 0), 1, 1);

        var reply = cluster.Send(Msg.Append("a", "b", term: 2, prevIndex: 0, prevTerm: 0, commit: 1, RaftTestCluster.Entries(1, 2))).Single();

        using (Assert.EnterMultipleScope())
        {
            Assert.That((reply.Reject, reply.Index), Is.EqualTo((false, 1L)));
            Assert.That(cluster.LogTerms("b"), Is.EqualTo(new long[] { 2 }));
            Assert.That(cluster.Persisted("b").Entries.Select(e => e.Term), Is.EqualTo(new long[] { 2 }), "storage is truncated too");
            Assert.That(cluster.AppliedIndex("b"), Is.EqualTo(1));
        }
    }

    // The same as a scenario: c led term 1 alone and wrote entries nobody else has; the leader of term 2
    // overwrites them from index 1 on.
    [Test]
    public void A_deposed_leaders_lone_entries_from_index_1_are_overwritten_by_the_next_leader()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Preload("a", new HardState(1, "c", 0));
        cluster.Preload("b", new HardState(1, "c", 0));
        cluster.Preload("c", new HardState(1, "c", 0), 1, 1);

        cluster.Elect("a");
        cluster.Propose("a", "after");
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.LogTerms("c"), Is.EqualTo(new long[] { 2, 2 }));
            Assert.That(Describe(cluster.Log("c")), Is.EqualTo(Describe(cluster.Log("a"))));
            Assert.That(cluster.AppliedData("c"), Is.EqualTo(new[] { "after" }));
        }
    }

    // Raft §5.3 (optimization at the end): the conflict hint lets the leader skip a whole conflicting
    // term per round trip rather than one entry.
    [Test]
    public void A_long_conflicting_suffix_is_repaired_in_a_few_round_trips()
    {
        var cluster = new RaftTestCluster(3);
        long[] shared = Enumerable.Repeat(1L, 10).ToArray();
        cluster.Preload("a", new HardState(3, "a", 10), [.. shared, .. Enumerable.Repeat(3L, 20)]);
        cluster.Preload("b", new HardState(3, "a", 10), [.. shared, .. Enumerable.Repeat(3L, 20)]);
        cluster.Preload("c", new HardState(3, "a", 10), [.. shared, .. Enumerable.Repeat(2L, 100)]); // led term 2 alone

        cluster.Elect("a");

        int appendsToC = cluster.CountSent(m => m.IsAppendTo("c"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Describe(cluster.Log("c")), Is.EqualTo(Describe(cluster.Log("a"))));
            Assert.That(cluster.LogTerms("c"), Has.Length.EqualTo(31));
            Assert.That(appendsToC, Is.LessThanOrEqualTo(3), "100 divergent entries, a handful of appends");
            Assert.That(cluster.CountSent(m => m.Type == MessageType.AppendResponse && m.From == "c" && m.Reject), Is.EqualTo(1));
        }
    }

    // Raft §5.3: "one AppendEntries RPC will be required for each term with conflicting entries, rather
    // than one RPC per entry": 100 divergent entries over 5 terms cost 5 rejections.
    [Test]
    public void A_conflicting_suffix_over_several_terms_costs_one_round_trip_per_term()
    {
        var cluster = new RaftTestCluster(3);
        long[] shared = Enumerable.Repeat(1L, 10).ToArray();
        long[] leaderSuffix = Enumerable.Repeat(7L, 100).ToArray();
        long[] staleSuffix = [.. new long[] { 2, 3, 4, 5, 6 }.SelectMany(term => Enumerable.Repeat(term, 20))];
        cluster.Preload("a", new HardState(7, null, 10), [.. shared, .. leaderSuffix]);
        cluster.Preload("b", new HardState(7, null, 10), [.. shared, .. leaderSuffix]);
        cluster.Preload("c", new HardState(7, null, 10), [.. shared, .. staleSuffix]);

        cluster.Elect("a");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.LogTerms("c"), Is.EqualTo(cluster.LogTerms("a")));
            Assert.That(cluster.CountSent(m => m.Type == MessageType.AppendResponse && m.From == "c" && m.Reject), Is.EqualTo(5));
            Assert.That(cluster.CountSent(m => m.IsAppendTo("c")), Is.LessThanOrEqualTo(7));
        }
    }

    // Raft §5.3: a follower far behind is found with one rejection and streamed in full batches.
    [Test]
    public void A_follower_far_behind_is_caught_up_with_one_probe_and_full_batches()
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { MaxEntriesPerMessage = 100 });
        cluster.Stop("c");
        cluster.Elect("a");
        for (int i = 0; i < 10; i++)
        {
            cluster.ProposeMany("a", 100, $"p{i}-");
            cluster.Stabilize();
        }

        cluster.Stop("a");
        cluster.Restart("c");
        cluster.Elect("b"); // a fresh leader starts with an optimistic guess: c's log is complete
        cluster.Advance(cluster.Options.HeartbeatTicks);

        var toC = cluster.Sent.Where(m => m.IsAppendWithEntriesTo("c") && m.From == "b").ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.LogTerms("c"), Has.Length.EqualTo(1002));
            Assert.That(cluster.AppliedData("c"), Has.Count.EqualTo(1000));
            Assert.That(cluster.CountSent(m => m.Type == MessageType.AppendResponse && m.From == "c" && m.Reject), Is.EqualTo(1));
            Assert.That(toC.Select(m => m.Entries.Count), Is.EqualTo(new[] { 1, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 2 }),
                "the optimistic no-op, then 1002 entries in batches of 100");
        }
    }

    // Raft §5.3: "if followers crash or run slowly ... the leader retries AppendEntries indefinitely".
    [Test]
    public void A_lagging_follower_catches_up_after_a_partition_heals()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.Isolate("c");
        for (int i = 0; i < 50; i++)
        {
            cluster.Propose("a", $"v{i}");
            cluster.Advance(1);
        }

        Assert.That(cluster.LogTerms("c"), Has.Length.EqualTo(1));
        cluster.Heal();
        int ticks = cluster.AdvanceUntil(() => cluster.AppliedData("c").Count == 50);

        Assert.That(ticks, Is.LessThanOrEqualTo(2 * cluster.Options.HeartbeatTicks), "resent on the first heartbeat round that shows no progress");

        Assert.That(cluster.AppliedData("c"), Is.EqualTo(Enumerable.Range(0, 50).Select(i => $"v{i}")));
    }

    // Batching: entries proposed together travel together, bounded by MaxEntriesPerMessage and MaxBytesPerMessage.
    [Test]
    public void Many_proposals_travel_in_few_append_messages()
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { MaxEntriesPerMessage = 64 });
        cluster.Elect("a");
        int before = cluster.CountSent(m => m.IsAppendWithEntriesTo("b"));

        for (int i = 0; i < 200; i++)
        {
            cluster.Propose("a", $"v{i}");
        }

        cluster.Stabilize();

        var appends = cluster.Sent.Where(m => m.IsAppendWithEntriesTo("b")).Skip(before).ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(appends.Select(m => m.Entries.Count), Is.EqualTo(new[] { 64, 64, 64, 8 }));
            Assert.That(cluster.AppliedData("b"), Has.Count.EqualTo(200));
        }
    }

    [Test]
    public void A_batch_is_cut_at_MaxBytesPerMessage_but_always_carries_one_entry()
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { MaxBytesPerMessage = 1000 });
        cluster.Elect("a");
        int before = cluster.CountSent(m => m.IsAppendWithEntriesTo("b"));

        cluster["a"].Propose([new byte[400], new byte[400], new byte[400], new byte[5000], new byte[10]]);
        cluster.Stabilize();

        var appends = cluster.Sent.Where(m => m.IsAppendWithEntriesTo("b")).Skip(before).Select(m => m.Entries.Count);
        Assert.That(appends, Is.EqualTo(new[] { 2, 1, 1, 1 }));
    }

    // Pipelining: in replicate state the leader streams several appends before any acknowledgement,
    // never more than MaxInflightMessages at once.
    [Test]
    public void Appends_are_pipelined_up_to_MaxInflightMessages()
    {
        var cluster = new RaftTestCluster(3, new ClusterOptions { MaxEntriesPerMessage = 1, MaxInflightMessages = 4 });
        cluster.Elect("a");

        cluster.ProposeMany("a", 10);
        cluster.Collect();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.InFlight.Count(m => m.IsAppendTo("b")), Is.EqualTo(4), "the window is full");
            Assert.That(cluster.InFlight.Where(m => m.IsAppendTo("b")).Select(m => m.Index), Is.EqualTo(new long[] { 1, 2, 3, 4 }),
                "sent back to back, each after the previous one");
            Assert.That(cluster.InFlight.Count(m => m.Type == MessageType.AppendResponse), Is.Zero, "before any acknowledgement");
        }

        int maxInFlight = 0;
        while (cluster.InFlight.Count > 0)
        {
            maxInFlight = Math.Max(maxInFlight, cluster.InFlight.Count(m => m.IsAppendTo("b")));
            cluster.Deliver();
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(maxInFlight, Is.EqualTo(4));
            Assert.That(cluster.AppliedData("b"), Has.Count.EqualTo(10));
        }
    }

    // Lost messages: an append that never arrives is resent once a heartbeat round shows no progress.
    [Test]
    public void A_lost_append_is_resent_after_a_heartbeat()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");

        bool dropped = false;
        using (cluster.Drop(m => m.IsAppendWithEntriesTo("c") && !dropped && (dropped = true)))
        {
            cluster.Propose("a", "v1");
            cluster.Propose("a", "v2");
            cluster.Stabilize();
            Assert.That(cluster.LogTerms("c"), Has.Length.EqualTo(1), "c missed the append");
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(3), "a and b commit without c");

            cluster.AdvanceUntil(() => cluster.AppliedData("c").Count == 2, maxTicks: 3 * cluster.Options.HeartbeatTicks);
        }

        Assert.That(cluster.AppliedData("c"), Is.EqualTo(new[] { "v1", "v2" }));
    }

    // A lost probe from a new leader is resent where it was, not from the start of the log: a follower
    // that is in sync must not be sent the whole log again.
    [Test]
    public void A_lost_probe_is_resent_at_the_same_index_not_from_the_start_of_the_log()
    {
        var cluster = new RaftTestCluster(3);
        long[] history = Enumerable.Repeat(1L, 1000).ToArray();
        foreach (var id in cluster.Ids)
        {
            cluster.Preload(id, new HardState(1, null, 1000), history);
        }

        using (cluster.Drop(m => m.IsAppendTo("c")))
        {
            cluster.Elect("a");
        }

        int before = cluster.Sent.Count;
        cluster.AdvanceUntil(() => cluster.LogTerms("c").Length == 1001, maxTicks: 3 * cluster.Options.HeartbeatTicks);

        int resent = cluster.Sent.Skip(before).Where(m => m.IsAppendTo("c")).Sum(m => m.Entries.Count);
        Assert.That(resent, Is.LessThanOrEqualTo(1), "only the no-op was missing");
    }

    // Duplicated and reordered appends: a stale append never truncates what a newer one wrote.
    [Test]
    public void A_delayed_duplicate_append_does_not_truncate_the_log()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.Propose("a", "v1");
        cluster.Collect();
        var old = cluster.InFlight.First(m => m.IsAppendWithEntriesTo("b"));
        cluster.Stabilize();
        cluster.Propose("a", "v2");
        cluster.Stabilize();

        var reply = cluster.Send(old).Single();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(reply.Reject, Is.False);
            Assert.That(cluster.LogTerms("b"), Is.EqualTo(new long[] { 1, 1, 1 }));
            Assert.That(cluster.AppliedData("b"), Is.EqualTo(new[] { "v1", "v2" }));
        }
    }

    private static string[] Describe(IEnumerable<LogEntry> log)
        => log.Select(e => $"{e.Index}@{e.Term}:{(e.Kind == EntryKind.NoOp ? "noop" : Encoding.UTF8.GetString(e.Data.Span))}").ToArray();
}
