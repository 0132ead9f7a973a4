using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Tests.Runtime;
using NUnit.Framework;
using static Gaggle.Tests.Locks.GoneNodeLogs;

namespace Gaggle.Tests.Locks;

/// <summary>
/// An operator forcing a new generation on a survivor whose log holds a tail it cannot know committed
/// (entries after its commit index): the lost majority may have committed them, or others at the same
/// indexes, and granted there. The tail moves behind the new generation's start, so the lock table
/// applies it inside the hold-off, with the new generation's tokens (a driver on a scripted clock).
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
            Config(1, ["x"], [], new() { ["x"] = 1 }),
            Lock(2, "x", 1, 1, 1000, new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 1)),
            Config(3, ["x", "y", "z"], [], new() { ["x"] = 1, ["y"] = 3, ["z"] = 3 }),
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
        long now = 0;
        for (int i = 0; i < 20_000 && grants.Count == 0; i++)
        {
            now += TickUs;
            driver.Tick(now);
            if (driver.Events.ConfirmGeneration is { } confirm)
            {
                // The store holds the forced generation: the fence stays open.
                driver.Events.ConfirmGeneration = null;
                driver.GenerationConfirmed(confirm.SentAtUs, confirm.Generation, GenerationFenceTests.Answer(confirm.Generation, confirm.Generation));
            }

            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

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

    private static EntryEnvelope Envelope(LogEntry entry)
    {
        Assert.That(EntryEnvelope.TryDecode(entry.Data, out var envelope), Is.True);
        return envelope;
    }
}
