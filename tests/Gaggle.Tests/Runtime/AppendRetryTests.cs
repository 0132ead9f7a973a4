using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

[TestFixture]
public sealed class AppendRetryTests
{
    /// <summary>
    /// Retries are for appends that were sent and got lost, never for appends still on their way to
    /// the first submission: on a stable leader every append lands in the log exactly once.
    /// </summary>
    [Test]
    public async Task AStableLeaderProposesEveryAppendOnce()
    {
        await using var cluster = new NodeCluster(3, options =>
        {
            options.HeartbeatInterval = TimeSpan.FromMilliseconds(5);
            options.ElectionTimeoutMin = TimeSpan.FromMilliseconds(100);
            options.ElectionTimeoutMax = TimeSpan.FromMilliseconds(200);
            options.SnapshotThresholdEntries = 0;
        });
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        long term = leader.Term;
        const int total = 40_000;
        var appends = new List<Task>(total);

        // Bursts keep the node's input queue full, so retry checks run while fresh appends still queue.
        for (int burst = 0; burst < total / 4000; burst++)
        {
            appends.AddRange(Enumerable.Range(0, 4000).Select(_ => leader.AppendAsync(new byte[] { 1 }, TimeSpan.FromSeconds(60))));
            await Task.Delay(20);
        }
        await Task.WhenAll(appends);
        var log = await leader.GetLogAsync();
        if (leader.Term != term)
        {
            Assert.Inconclusive("A leader change happened (the machine is overloaded); retries after it are legitimate.");
        }

        Assert.That(log.Count(e => e.Kind == Gaggle.Raft.EntryKind.Normal), Is.EqualTo(total), "no append was proposed twice");
    }

    [Test]
    public void AFreshAppendIsNeverRetriedOnlySubmittedOnesAre()
    {
        var fresh = new Gaggle.Runtime.PendingAppend(1, [1]);
        Assert.That(fresh.NeedsRetry("a", term: 2, isLeader: true, tick: 1000, retryTicks: 10), Is.False, "its own input submits it; a retry would propose it twice");
        Assert.That(fresh.NeedsResubmitFor("a", 2), Is.False);

        var waiting = new Gaggle.Runtime.PendingAppend(2, [1]) { Submitted = true };
        Assert.That(waiting.NeedsRetry("a", 2, isLeader: false, tick: 5, retryTicks: 10), Is.True, "left waiting for a leader");

        var proposed = new Gaggle.Runtime.PendingAppend(3, [1]) { Submitted = true, SentTo = "a", SentTerm = 2, SentAtTick = 0 };
        Assert.That(proposed.NeedsRetry("a", 2, isLeader: true, tick: 1000, retryTicks: 10), Is.False, "in this leader's log already");
        Assert.That(proposed.NeedsRetry("a", 3, isLeader: true, tick: 1, retryTicks: 10), Is.True, "the term changed");

        var forwarded = new Gaggle.Runtime.PendingAppend(4, [1]) { Submitted = true, SentTo = "b", SentTerm = 2, SentAtTick = 0 };
        Assert.That(forwarded.NeedsRetry("a", 2, isLeader: false, tick: 9, retryTicks: 10), Is.False);
        Assert.That(forwarded.NeedsRetry("a", 2, isLeader: false, tick: 10, retryTicks: 10), Is.True, "presumed lost after an election timeout");
        Assert.That(forwarded.NeedsResubmitFor("c", 2), Is.True);
    }

    [Test]
    public void TheDuplicateTableStaysCorrectPastItsWindow()
    {
        var table = new Gaggle.Runtime.ProposalDeduplicator();
        long window = Gaggle.Runtime.ProposalDeduplicator.Window;
        for (long sequence = 1; sequence <= 3 * window; sequence++)
        {
            Assert.That(table.FirstTime("a", 1, sequence, sequence), Is.True);
        }

        Assert.That(table.FirstTime("a", 1, 3 * window, 0), Is.False, "a recent duplicate");
        Assert.That(table.FirstTime("a", 1, 2 * window + 5, 0), Is.False, "a duplicate inside the window");
        Assert.That(table.FirstTime("a", 1, 3 * window + 1, 0), Is.True);
    }

    [Test]
    public void TheDuplicateTableFollowsContiguousSequencesAndRemembersWhatArrivedAboveAGap()
    {
        var table = new Gaggle.Runtime.ProposalDeduplicator();
        foreach (long sequence in new long[] { 1, 2, 4, 5, 7 })
        {
            Assert.That(table.FirstTime("a", 1, sequence, sequence), Is.True, $"sequence {sequence} first seen");
        }

        foreach (long sequence in new long[] { 1, 2, 4, 5, 7 })
        {
            Assert.That(table.FirstTime("a", 1, sequence, 10), Is.False, $"sequence {sequence} again");
        }

        Assert.That(table.Contains("a", 1, 3), Is.False, "3 is in the gap");
        Assert.That(table.Contains("a", 1, 6), Is.False, "6 is in the gap");

        // A snapshot taken with gaps restores the same decisions.
        var writer = new Gaggle.Channels.WireWriter();
        table.Write(writer);
        var reader = new Gaggle.Channels.WireReader(writer.ToArray());
        var restored = new Gaggle.Runtime.ProposalDeduplicator();
        restored.Read(ref reader);
        foreach (var copy in new[] { table, restored })
        {
            Assert.That(copy.FirstTime("a", 1, 3, 11), Is.True, "the gap fills");
            Assert.That(copy.FirstTime("a", 1, 6, 12), Is.True, "the second gap fills");
            foreach (long sequence in Enumerable.Range(1, 7))
            {
                Assert.That(copy.Contains("a", 1, sequence), Is.True, $"sequence {sequence} seen");
                Assert.That(copy.FirstTime("a", 1, sequence, 13), Is.False, $"sequence {sequence} is a duplicate now");
            }

            Assert.That(copy.FirstTime("a", 1, 8, 14), Is.True);
        }
    }

    [Test]
    public void TheDuplicateTableJumpsOverAGapThatNeverFills()
    {
        var table = new Gaggle.Runtime.ProposalDeduplicator();
        long window = Gaggle.Runtime.ProposalDeduplicator.Window;
        for (long sequence = 2; sequence <= 3 * window; sequence++)
        {
            Assert.That(table.FirstTime("a", 1, sequence, sequence), Is.True);
        }

        Assert.That(table.FirstTime("a", 1, 1, 0), Is.False, "a retry older than the window is taken for a duplicate");
        Assert.That(table.PendingAboveFloor("a", 1), Is.Zero, "after the jump the floor follows the contiguous sequences again");
        Assert.That(table.FirstTime("a", 1, 3 * window, 0), Is.False, "a recent duplicate");
        Assert.That(table.FirstTime("a", 1, 3 * window + 1, 0), Is.True);
    }
}
