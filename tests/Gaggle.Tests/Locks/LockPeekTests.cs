using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>
/// <see cref="GaggleLocks.PeekAsync"/> reads a node's own applied copy of the lock table: it costs no
/// log entry, and it moves only with what the node applies (grants, releases, the leader's time entries).
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class LockPeekTests
{
    private static readonly string[] Ids = ["a", "b", "c"];

    [Test]
    public async Task APeekShowsWhatTheNodeAppliedAndAppendsNothing()
    {
        await using var cluster = await StartAsync(TimeSpan.FromSeconds(60));
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var followers = cluster.Nodes.Values.Where(n => !n.IsLeader).ToList();
        var (holder, reader) = (followers[0], followers[1]);
        var free = await reader.Locks.PeekAsync("orders");
        Assert.That((free.Holders, free.QueueLength, free.MaxCount), Is.EqualTo((Array.Empty<LockHolderInfo>(), 0, 0)), "a lock nobody used is free");

        var acquiring = holder.Locks.AcquireAsync("orders");
        await cluster.AdvanceUntilAsync(() => acquiring.IsCompleted, "the grant");
        var hold = await acquiring;
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100)); // a heartbeat brings the commit to the reader

        long lastIndex = leader.LastLogIndex;
        foreach (var node in cluster.Nodes.Values)
        {
            var seen = await node.Locks.PeekAsync("orders");
            Assert.That(seen.Holders.Select(h => (h.NodeId, h.FencingToken)), Is.EqualTo(new[] { (holder.Id, hold.FencingToken) }), $"{node.Id} sees the hold");
            Assert.That(seen.AsOfIndex, Is.EqualTo(lastIndex), $"{node.Id} read as of the last entry it applied");
        }

        Assert.That(leader.LastLogIndex, Is.EqualTo(lastIndex), "peeks append nothing");

        await hold.DisposeAsync();
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100));
        Assert.That((await reader.Locks.PeekAsync("orders")).Holders, Is.Empty, "the release reached the reader");
    }

    [Test]
    public async Task AHoldThatRanOutShowsUntilTheLeadersTimeEntryEndsIt()
    {
        await using var cluster = await StartAsync(TimeSpan.FromSeconds(60));
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var reader = cluster.Nodes.Values.First(n => !n.IsLeader);
        using var stop = new CancellationTokenSource();
        // A process that went away: nobody renews or releases its hold.
        ManualTimeCluster.AppendForeign(leader, "gone", 1, new LockCommand(LockCommandType.Acquire, "job", 1, LeaseMs: 500), stop.Token);
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100));
        Assert.That((await reader.Locks.PeekAsync("job")).Holders.Select(h => h.NodeId), Is.EqualTo(new[] { "gone" }));
        long before = leader.LastLogIndex;

        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(300));
        Assert.That((await reader.Locks.PeekAsync("job")).Holders, Has.Count.EqualTo(1), "the lease has not run out yet");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(300));
        Assert.That((await reader.Locks.PeekAsync("job")).Holders, Is.Empty, "the time entry ended the hold on the reader too");
        Assert.That(await LockCommandsAfter(leader, before), Is.EqualTo(new[] { LockCommandType.Time }), "one time entry, when the lease ran out");
        await stop.CancelAsync();
    }

    [Test]
    [NonParallelizable] // renewals run on the thread pool while the manual clock moves: a pool busy with other tests could starve them past their lease
    public async Task HoldsThatAreRenewedNeedNoTimeEntries()
    {
        await using var cluster = await StartAsync(TimeSpan.FromSeconds(1));
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var holds = new List<GaggleLockHandle>();
        foreach (var node in cluster.Nodes.Values)
        {
            var acquiring = node.Locks.AcquireAsync("presence:" + node.Id);
            await cluster.AdvanceUntilAsync(() => acquiring.IsCompleted, "the grant");
            holds.Add(await acquiring);
        }

        long before = leader.LastLogIndex;
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(5));
        var commands = await LockCommandsAfter(leader, before);
        Assert.That(holds.Select(h => h.HandleLostToken.IsCancellationRequested), Is.All.False, "every hold lived through five leases");
        Assert.That(commands, Has.None.EqualTo(LockCommandType.Time), "no lease ran out, so the leader stamped no time entry");
        Assert.That(commands, Is.All.EqualTo(LockCommandType.Renew), "renewals, nothing else");
        Assert.That(commands, Has.Length.InRange(3 * 12, 3 * 16), "each hold renewed about every lease / 3");
        foreach (var hold in holds)
        {
            await hold.DisposeAsync();
        }
    }

    private static async Task<ManualTimeCluster> StartAsync(TimeSpan lease)
    {
        var cluster = new ManualTimeCluster(Ids, options => options.LockLeaseDuration = lease);
        foreach (var id in Ids)
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Count(n => n.IsLeader) == 1, "a leader");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100)); // its no-op commits everywhere
        return cluster;
    }

    private static async Task<LockCommandType[]> LockCommandsAfter(GaggleNode node, long index)
        => (await node.GetLogAsync()).Where(e => e.Index > index && e.Kind == Gaggle.Raft.EntryKind.Normal)
            .Select(e => LockCommand.TryDecode(e.Data)!.Type).ToArray();
}
