using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>
/// The leader's lease clock (GaggleNode.LeaseClockNow) may lag real time but must never run ahead of
/// the clock that stamped the holds it expires: a leader starts it from the table's time when it
/// takes office, before its first stamp, whatever it stamped in an earlier term.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class LeaseClockTests
{
    [Test]
    public async Task ARestartedNodeResumesTheLeaseClockFromTheTableNotFromItsMachineClock()
    {
        await using var cluster = new ManualTimeCluster(["a"]);
        var node = await cluster.StartAsync("a");
        await cluster.AdvanceUntilAsync(() => node.IsLeader, "the single node to lead");
        using var stop = new CancellationTokenSource();
        ManualTimeCluster.AppendForeign(node, "gone", 1, new LockCommand(LockCommandType.Acquire, "x", 1, LeaseMs: 60_000), stop.Token);
        var before = await node.Locks.InspectAsync("x");
        Assert.That(before.Holders, Has.Count.EqualTo(1));

        await cluster.StopAsync("a");
        var restarted = await cluster.StartAsync("a");
        // It becomes leader in the very tick it campaigns, with an overdue-looking deadline in its table.
        await cluster.AdvanceUntilAsync(() => restarted.IsLeader, "the restarted node to lead");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(200));

        var after = await restarted.Locks.InspectAsync("x");
        Assert.That(after.Holders.Select(h => h.FencingToken), Is.EqualTo(before.Holders.Select(h => h.FencingToken)),
            "a 60 s lease survives a restart that took well under a second");
        await stop.CancelAsync();
    }

    [Test]
    public async Task ALeaderReelectedAfterADeposedTermDoesNotBringBackTheClockItRanAlone()
    {
        // a campaigns first whenever it can, b next; c never campaigns and, without check-quorum, never ignores a candidate.
        await using var cluster = new ManualTimeCluster(["a", "b", "c"], options =>
        {
            options.LockLeaseDuration = TimeSpan.FromSeconds(1);
            (options.ElectionTimeoutMin, options.ElectionTimeoutMax) = options.NodeId switch
            {
                "a" => (TimeSpan.FromMilliseconds(150), TimeSpan.FromMilliseconds(160)),
                "b" => (TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(410)),
                _ => (TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(61)),
            };
            options.CheckQuorum = options.NodeId != "c";
        });
        var (a, b, c) = (await cluster.StartAsync("a"), await cluster.StartAsync("b"), await cluster.StartAsync("c"));
        await cluster.AdvanceUntilAsync(() => a.IsLeader && b.LeaderId == "a" && c.LeaderId == "a", "a to lead");

        // Idle: no lock entry moves the table's clock, while a's lease clock runs on.
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(5));
        cluster.Network.Isolate("a");
        // Cut off, a still stamps an entry with the time it ran alone; the entry never commits.
        var late = a.Locks.TryAcquireAsync("x", TimeSpan.FromSeconds(60));
        await cluster.AdvanceUntilAsync(() => b.IsLeader && c.LeaderId == "b", "b to lead without a");
        await using var holder = await c.Locks.AcquireAsync("x", TimeSpan.FromSeconds(10));

        cluster.Network.Heal();
        await cluster.AdvanceUntilAsync(() => a.LeaderId == "b", "a to follow b");
        while ((await b.Locks.InspectAsync("x")).QueueLength == 0)
        {
            await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(20));
        }

        await cluster.AdvanceUntilAsync(() => a.LastLogIndex == b.LastLogIndex && a.CommitIndex == b.CommitIndex, "a to catch up");
        cluster.Network.Isolate("b");
        await cluster.AdvanceUntilAsync(() => a.IsLeader && c.LeaderId == "a", "a to lead again");

        // c renews through a all along: its hold must outlive several leases, and a's request keep waiting.
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(3));
        Assert.That(holder.HandleLostToken.IsCancellationRequested, Is.False, "c's renewed hold was not lost");
        Assert.That(late.IsCompleted, Is.False, "a's request still waits behind c");
        var info = await a.Locks.InspectAsync("x");
        Assert.That(info.Holders.Select(h => h.FencingToken), Is.EqualTo(new[] { holder.FencingToken }));
    }
}
