using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using Gaggle.Tests.Runtime;
using NUnit.Framework;
using static Gaggle.Tests.Locks.GoneNodeLogs;

namespace Gaggle.Tests.Locks;

/// <summary>
/// An operator forcing a new generation on a survivor whose log holds a tail it cannot know committed
/// (entries after its commit index): the lost majority may have committed them, or others at the same
/// indexes, and granted there. The tail moves behind the new generation's start, so the lock table
/// applies it inside the hold-off, with the new generation's tokens; every entry of it is applied
/// once, the survivor's own appends there complete, and the forced log survives a restart (a driver
/// on a scripted clock).
/// </summary>
[TestFixture]
public sealed class ForcedTailTests
{
    private const long TickUs = 10_000;
    private const long TailStamp = 60_000;
    private static readonly long Forced = GenerationIds.Next(1, new Random(3));

    /// <summary>The fixture's hold-off: a settle time (three election timeouts of 150 ms), then a hold limit (the default 10 s lease and an election timeout).</summary>
    private const long HoldOffMs = 450 + 10_000 + 150;

    /// <summary>
    /// Generation 1 (x founded it, then added y and z) commits up to index 3. The tail, sent by a
    /// leader whose commits x never heard: y's acquire of "n", x's acquire of "m" (both locks free),
    /// a user entry of y, and a configuration. Unchanged, the survivor applied the tail as committed
    /// entries of generation 1, and granted "m" at once, with a token of generation 1 at an index the
    /// lost majority may have used for another grant.
    /// </summary>
    private static NodeDriver Survivor()
    {
        LogEntry[] log =
        [
            .. GenerationOne(),
            Lock(4, "y", 1, 1, 2000, new LockCommand(LockCommandType.Acquire, "n", 1, 5_000, 600_000)),
            Lock(5, "x", 1, 2, 3000, new LockCommand(LockCommandType.Acquire, "m", 1, 5_000, 600_000)),
            new(6, 1, EntryKind.Normal, new EntryEnvelope(EntryPayloadKind.User, TailStamp, "y", 1, 2, "kept"u8.ToArray()).Encode()),
            Config(7, ["x", "y"], [], new() { ["x"] = 1, ["y"] = 3 }),
        ];
        // The process's sequence numbers went past those of its entries.
        var sequences = new SequenceCounter();
        while (sequences.Next() < 2)
        {
        }

        return NotAMemberTests.Member(new HardState(1, null, 3), log, sequences);
    }

    [Test]
    public void The_tail_moves_behind_the_generation_start_and_keeps_every_entry_but_other_nodes_lock_commands()
    {
        var driver = Survivor();
        driver.ForceNewGeneration(Forced);
        var log = driver.Core.Log;

        Assert.That(log.LastIndex, Is.EqualTo(8), "the tail, the configuration, the generation start, and the sole voter's no-op");
        Assert.That(log.Entry(8).Kind, Is.EqualTo(EntryKind.NoOp));
        Assert.That(log.Entry(4).Kind, Is.EqualTo(EntryKind.Configuration));
        Assert.That(driver.Core.Configuration.Voters, Is.EqualTo(new[] { "x" }), "the tail's configuration is dropped");
        Assert.That(Envelope(log.Entry(5)).Stamp, Is.EqualTo(TailStamp), "the generation start carries the tail's latest stamp");
        Assert.That(LockCommand.TryDecode(Envelope(log.Entry(5)).Payload)!.Type, Is.EqualTo(LockCommandType.Generation));
        Assert.That(Envelope(log.Entry(6)).Origin, Is.EqualTo("x"), "x's own acquire is kept; y's is not");
        Assert.That(Envelope(log.Entry(7)).Payload.ToArray(), Is.EqualTo("kept"u8.ToArray()), "y's user entry is kept");
        Assert.That(Enumerable.Range(4, 4).Select(i => log.Term(i)), Is.All.EqualTo(2), "all in the forced term");
    }

    [Test]
    public void A_lock_acquired_in_the_tail_is_granted_only_after_the_hold_off_with_a_token_of_the_new_generation()
    {
        var driver = Survivor();
        var grants = new List<(long Index, long Now, long GrantsFrom, LockEvent Event)>();
        driver.Machines.Observer = (index, envelope, _) =>
        {
            if (envelope.Kind != EntryPayloadKind.Lock)
            {
                return;
            }


            var table = driver.Machines.Locks.Table;
            grants.AddRange(driver.Machines.Locks.LastEvents.Where(e => e.Type == LockEventType.Granted).Select(e => (index, table.Now, table.GrantsFrom, e)));
        };

        driver.ForceNewGeneration(Forced);
        Pump(driver, 0, () => grants.Count > 0, ticks: 20_000);

        Assert.That(driver.Core.Role, Is.EqualTo(RaftRole.Leader));
        Assert.That(grants, Has.Count.EqualTo(1), string.Join("; ", grants.Select(g => $"{g.Event.Name} at {g.Index} (now {g.Now}, grants from {g.GrantsFrom}) token generation {g.Event.Token >> 48}")));
        var grant = grants[0];
        Assert.That(grant.Event.Name, Is.EqualTo("m"));
        Assert.That(grant.Event.Token >> 48, Is.EqualTo(GenerationIds.NumberOf(Forced)),
            $"granted at index {grant.Index} with a token of generation {grant.Event.Token >> 48}");
        Assert.That(grant.Now, Is.GreaterThanOrEqualTo(grant.GrantsFrom), "not before the hold-off ended");
        Assert.That(grant.GrantsFrom, Is.GreaterThanOrEqualTo(TailStamp + (HoldOffMs)),
            "the hold-off counts from the tail's latest stamp");
        var n = driver.PeekLock("n");
        Assert.That((n.QueueLength, n.Holders.Count), Is.EqualTo((0, 0)), "y, not a member of the new generation, neither waits nor holds");
    }

    /// <summary>
    /// y's append (sequence 1) committed at index 4, which x knows; y's leader lost its answer and
    /// y retried it, so the same entry sits again at index 5, in the tail. Every replica drops the
    /// second copy as a duplicate. Forced, the moved copy comes after the founding configuration {x}:
    /// had that forgotten y's sessions, as configurations forget removed members', the copy was applied
    /// a second time.
    /// </summary>
    [Test]
    public void A_retried_append_of_another_node_in_the_tail_is_applied_once()
    {
        LogEntry[] log =
        [
            .. GenerationOne(),
            User(4, "y", 1, 2000, "once"),
            User(5, "y", 1, 3000, "once"),
        ];
        var driver = NotAMemberTests.Member(new HardState(1, null, 4), log);
        var applied = new List<long>();
        driver.Machines.Observer = (index, envelope, first) =>
        {
            if (first && envelope.Origin == "y" && envelope.Kind == EntryPayloadKind.User)
            {
                applied.Add(index);
            }
        };

        // Before forcing, the committed copy is applied.
        Pump(driver, 0, () => driver.Core.AppliedIndex >= 4);
        Assert.That(applied, Is.EqualTo(new long[] { 4 }));

        driver.ForceNewGeneration(Forced);
        Pump(driver, 1_000_000, () => driver.Core.Role == RaftRole.Leader && driver.Core.AppliedIndex >= driver.Core.LastIndex);

        Assert.That(driver.Core.AppliedIndex, Is.EqualTo(driver.Core.LastIndex));
        Assert.That(applied, Is.EqualTo(new long[] { 4 }), $"y's append (sequence 1) applied at indexes {string.Join(", ", applied)}");
    }

    /// <summary>
    /// x forwarded an append to leader y, which logged it at index 4 (x holds it; its commit x never
    /// heard). y is lost for good; x is forced into a new generation, and its entry moves behind the
    /// generation start, where it is applied. Its caller must be told it committed, not that it was
    /// given up with an unknown outcome (inviting a second append), as an append sent under its
    /// admission before the forced configuration gave it a new one would be.
    /// </summary>
    [Test]
    public void A_pending_append_of_the_survivor_whose_entry_moved_completes_when_it_is_applied()
    {
        var sequences = new SequenceCounter();
        long sequence = sequences.Next();
        var envelope = new EntryEnvelope(EntryPayloadKind.User, 0, "x", 1, sequence, "mine"u8.ToArray()).Encode();
        LogEntry[] log =
        [
            .. GenerationOne(startSequence: 1000),
            new(4, 1, EntryKind.Normal, EntryEnvelope.WithStamp(envelope, 2000)),
        ];
        var driver = NotAMemberTests.Member(new HardState(1, null, 3), log, sequences);
        // y leads term 1: x forwards its append to it.
        driver.Receive("y", new RaftWireMessage(new RaftMessage { Type = MessageType.Heartbeat, From = "y", To = "x", Term = 1, LogTerm = 3, Index = 1, Commit = 3 }), generation: 1);
        var append = new DriverAppend(sequence, envelope);
        driver.Append(append);
        while (driver.TakeReady(0) is not null)
        {
            driver.Advance();
        }

        Assert.That(driver.Core.LeaderId, Is.EqualTo("y"));
        Assert.That(append.SentTo, Is.EqualTo("y"));

        // y is gone: x loses its leader.
        long now = Pump(driver, 0, () => driver.Core.LeaderId is null);
        driver.ForceNewGeneration(Forced);
        Pump(driver, now + 1_000_000, () => driver.Core.Role == RaftRole.Leader && driver.Core.AppliedIndex >= driver.Core.LastIndex);

        Assert.That(driver.Core.Log.Entry(driver.Core.LastIndex - 1).Data.ToArray(), Is.EqualTo(log[3].Data.ToArray()), "the entry moved behind the generation start");
        Assert.That(driver.Events.TimedOut.Select(a => a.GivenUpBecause), Is.Empty, "given up though its entry is applied");
        Assert.That(driver.Events.Committed.Select(c => c.Append.Sequence), Is.EqualTo(new[] { sequence }));
    }

    /// <summary>
    /// The survivor persists its forced log (the tail rewritten from the first index after its commit
    /// index) and crashes before applying anything. Restarted (another incarnation, in the forced
    /// generation), it leads alone and its lock table opens the same generation with the same hold-off.
    /// </summary>
    [Test]
    public void A_survivor_restarted_right_after_forcing_replays_the_same_generation_start()
    {
        LogEntry[] log =
        [
            .. GenerationOne(),
            .. AcquiresOfY(),
            Lock(7, "x", 1, 2, 3000, new LockCommand(LockCommandType.Acquire, "m", 1, 5_000, 600_000)),
        ];
        var sequences = new SequenceCounter();
        while (sequences.Next() < 2)
        {
        }

        var survivor = NotAMemberTests.Member(new HardState(1, null, 3), log, sequences);
        var stored = log.ToList();
        var hard = new HardState(1, null, 3);
        survivor.ForceNewGeneration(Forced);
        var ready = survivor.TakeReady(0)!.Raft!;
        foreach (var entry in ready.EntriesToPersist)
        {
            stored.RemoveAll(e => e.Index >= entry.Index);
        }

        stored.AddRange(ready.EntriesToPersist);
        hard = ready.HardState ?? hard;

        var restarted = new NodeDriver(NodeDriverSettings.From(NotAMemberTests.Options(), 2, TimeSpan.FromMicroseconds(TickUs)), new PersistedState(hard, stored), new SequenceCounter());
        restarted.StartGeneration(Forced, live: false);
        survivor.Advance();
        Pump(survivor, 0, () => survivor.Core.Role == RaftRole.Leader && survivor.Core.AppliedIndex >= 11);
        Pump(restarted, 0, () => restarted.Core.Role == RaftRole.Leader && restarted.Core.AppliedIndex >= 11);

        Assert.That(restarted.Core.Role, Is.EqualTo(RaftRole.Leader));
        var (a, b) = (survivor.Machines.Locks.Table, restarted.Machines.Locks.Table);
        Assert.That((b.Generation, b.GrantsFrom), Is.EqualTo((a.Generation, a.GrantsFrom)));
        Assert.That(b.Generation, Is.EqualTo(GenerationIds.NumberOf(Forced)));
        Assert.That(Enumerable.Range(1, 7).Select(i => restarted.Core.Log.Term(i)), Is.EqualTo(Enumerable.Range(1, 7).Select(i => survivor.Core.Log.Term(i))));
        Assert.That(restarted.PeekLock("n").Holders, Is.Empty);
    }

    /// <summary>The forced log, shorter than the stored one (every tail entry was another node's lock command), rewritten through the WAL and reopened.</summary>
    [Test]
    public async Task The_wal_keeps_the_forced_log_when_it_is_shorter_than_the_stored_one()
    {
        LogEntry[] log =
        [
            .. GenerationOne(),
            .. AcquiresOfY(),
            Lock(7, "y", 1, 4, 2700, new LockCommand(LockCommandType.Acquire, "q", 1, 5_000, 600_000)),
        ];
        string directory = Path.Combine(Path.GetTempPath(), "forced-wal-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var storage = await FileRaftStorage.OpenAsync(new FileRaftStorageOptions { Directory = directory, NodeId = "x" }))
            {
                await storage.SaveAsync(new HardState(1, null, 3), log);
                var survivor = NotAMemberTests.Member(new HardState(1, null, 3), log);
                survivor.ForceNewGeneration(Forced);
                var ready = survivor.TakeReady(0)!.Raft!;
                await storage.SaveAsync(ready.HardState, ready.EntriesToPersist);
                Assert.That(survivor.Core.LastIndex, Is.LessThan(7));
            }

            using var reopened = await FileRaftStorage.OpenAsync(new FileRaftStorageOptions { Directory = directory, NodeId = "x" });
            var state = await reopened.LoadAsync();
            Assert.That(state.Entries.Select(e => (e.Index, e.Term, e.Kind)), Is.EqualTo(new[]
            {
                (1L, 1L, EntryKind.Configuration), (2L, 1L, EntryKind.Normal), (3L, 1L, EntryKind.Configuration),
                (4L, 2L, EntryKind.Configuration), (5L, 2L, EntryKind.Normal), (6L, 3L, EntryKind.NoOp),
            }));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Indexes 1 to 3 of generation 1: x founded it (its start entry of sequence <paramref name="startSequence"/>), then added y and z.</summary>
    private static LogEntry[] GenerationOne(long startSequence = 1) =>
    [
        Config(1, ["x"], [], new() { ["x"] = 1 }),
        Lock(2, "x", 1, startSequence, 1000, new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 1)),
        Config(3, ["x", "y", "z"], [], new() { ["x"] = 1, ["y"] = 3, ["z"] = 3 }),
    ];

    /// <summary>Indexes 4 to 6: y's acquires of "n", "o" and "p", in the tail a survivor x cannot know committed.</summary>
    private static LogEntry[] AcquiresOfY() =>
    [
        Lock(4, "y", 1, 1, 2000, new LockCommand(LockCommandType.Acquire, "n", 1, 5_000, 600_000)),
        Lock(5, "y", 1, 2, 2500, new LockCommand(LockCommandType.Acquire, "o", 1, 5_000, 600_000)),
        Lock(6, "y", 1, 3, 2600, new LockCommand(LockCommandType.Acquire, "p", 1, 5_000, 600_000)),
    ];

    private static LogEntry User(long index, string origin, long sequence, long stamp, string text)
        => new(index, 1, EntryKind.Normal, new EntryEnvelope(EntryPayloadKind.User, stamp, origin, 1, sequence, System.Text.Encoding.UTF8.GetBytes(text)).Encode());

    /// <summary>Ticks, answers generation confirmations (the store holds the forced generation: the fence stays open) and pumps readies until <paramref name="done"/> (or <paramref name="ticks"/> ticks).</summary>
    private static long Pump(NodeDriver driver, long now, Func<bool> done, int ticks = 5000)
    {
        for (int i = 0; i < ticks && !done(); i++)
        {
            now += TickUs;
            driver.Tick(now);
            if (driver.Events.ConfirmGeneration is { } confirm)
            {
                driver.Events.ConfirmGeneration = null;
                driver.GenerationConfirmed(confirm.SentAtUs, confirm.Generation, GenerationFenceTests.Answer(confirm.Generation, confirm.Generation));
            }

            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

        return now;
    }

    private static EntryEnvelope Envelope(LogEntry entry)
    {
        Assert.That(EntryEnvelope.TryDecode(entry.Data, out var envelope), Is.True);
        return envelope;
    }
}
