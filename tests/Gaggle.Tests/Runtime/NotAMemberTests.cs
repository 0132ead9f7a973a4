using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>An elastic member told by another node that it is not a member.</summary>
[TestFixture]
public sealed class NotAMemberTests
{
    private const long TickUs = 10_000;

    /// <summary>
    /// A voter removed while paused, then added again, can hear "not a member" from a deposed leader
    /// that committed its removal and never learned of its addition (a leader paused through both: the
    /// first message it handles on resuming is this voter's). Its own committed configuration, newer,
    /// says otherwise: it stays; starting over would throw a voter's log away. Told from a configuration
    /// newer than its own, it starts over.
    /// </summary>
    [TestCase(3, ExpectedResult = false, Description = "told from an older configuration than its committed one: it stays")]
    [TestCase(7, ExpectedResult = true, Description = "told from a newer configuration: it starts over")]
    public bool A_voter_starts_over_only_when_told_from_a_configuration_newer_than_its_committed_one(long toldIndex)
    {
        var added = new ClusterConfig(["x", "y", "z"], []);
        LogEntry[] log =
        [
            new(1, 1, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty),
            new(2, 1, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty),
            new(3, 1, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty),
            new(4, 2, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty),
            new(5, 2, EntryKind.Configuration, added.Encode()),
        ];
        var driver = Member(new HardState(2, null, 5), log);
        Assert.That(driver.Core.Configuration.IsVoter("x"), Is.True);
        return StartsOver(driver, atSecondTick: () => driver.Receive("w", new NotAMember(toldIndex), generation: 1));
    }

    /// <summary>
    /// Elastic seed 1620: a learner removed while paused was added back (the same process) while it
    /// was still catching up; the leader's "not a member", sent before that, arrived late. The leader's
    /// probes to it were still being rejected, so only its heartbeats, which now name the leader's
    /// configuration, told the learner that the leader counts it as a member again. Told from an older
    /// configuration than the one the heartbeat named, it stays; told from a newer one, it starts over.
    /// </summary>
    [TestCase(7, ExpectedResult = false, Description = "told before the configuration the leader's heartbeat named: it stays")]
    [TestCase(11, ExpectedResult = true, Description = "told after it: it starts over")]
    public bool A_learner_that_heard_its_leaders_heartbeat_name_a_later_configuration_ignores_an_older_not_a_member(long toldIndex)
    {
        LogEntry[] log =
        [
            new(1, 2, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty),
            new(2, 2, EntryKind.Configuration, new ClusterConfig(["y"], ["x"]).Encode()),
        ];
        var driver = Member(new HardState(2, null, 2), log);
        return StartsOver(
            driver,
            atFirstTick: () => driver.Receive("y", new RaftWireMessage(new RaftMessage { Type = MessageType.Heartbeat, From = "y", To = "x", Term = 2, LogTerm = 9, Index = 1, Commit = 0, RejectHint = 9 }), generation: 1),
            atSecondTick: () => driver.Receive("y", new NotAMember(toldIndex), generation: 1));
    }

    /// <summary>
    /// Under load a leader sends its AppendEntries as one broadcast, which reaches nodes outside its
    /// configuration too: a newcomer not added yet, or a node that left gracefully. They answer it, and
    /// the leader tells them that they are not members. Neither was removed while paused or cut off:
    /// neither reports a removal (the host would log a warning saying so) nor starts over. A member
    /// that was removed does both.
    /// </summary>
    [TestCase("newcomer", ExpectedResult = "no removal reported, no start over")]
    [TestCase("departing", ExpectedResult = "no removal reported, no start over")]
    [TestCase("member", ExpectedResult = "removal reported by w, start over")]
    public string Only_a_member_that_is_not_leaving_reports_its_removal(string node)
    {
        var added = new ClusterConfig(["x", "y", "z"], []);
        LogEntry[] log = node == "newcomer"
            ? []
            :
            [
                new(1, 1, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty),
                new(2, 1, EntryKind.Configuration, added.Encode()),
            ];
        var driver = Member(new HardState(1, null, log.Length), log);
        driver.Departing = node == "departing";
        string? reportedBy = null;
        bool removed = false;
        for (long now = TickUs; now <= 3 * TickUs; now += TickUs)
        {
            driver.Tick(now);
            if (now == 2 * TickUs)
            {
                driver.Receive("w", new NotAMember(7), generation: 1);
            }

            reportedBy ??= driver.Events.RemovedBy;
            removed |= driver.Events.Removed;
            driver.Events.Clear();
            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

        return $"{(reportedBy is null ? "no removal reported" : $"removal reported by {reportedBy}")}, {(removed ? "start over" : "no start over")}";
    }

    /// <summary>Elastic node "x" of generation 1 with <paramref name="log"/> (see <see cref="Options"/>).</summary>
    internal static NodeDriver Member(HardState hardState, LogEntry[] log, SequenceCounter? sequences = null)
    {
        var driver = new NodeDriver(NodeDriverSettings.From(Options(), 1, TimeSpan.FromMicroseconds(TickUs)), new PersistedState(hardState, log), sequences ?? new SequenceCounter());
        driver.StartGeneration(1, live: true);
        return driver;
    }

    /// <summary>Elastic node "x"'s options: ticks of 10 ms, election timeout 100..150 ms, member timeout 1 s.</summary>
    internal static GaggleOptions Options() => new()
    {
        NodeId = "x",
        HeartbeatInterval = TimeSpan.FromMilliseconds(20),
        ElectionTimeoutMin = TimeSpan.FromMilliseconds(100),
        ElectionTimeoutMax = TimeSpan.FromMilliseconds(150),
        MemberTimeout = TimeSpan.FromSeconds(1),
        RandomSeed = 5,
    };

    /// <summary>Three ticks, with what the test delivers after the first and the second; whether the node started over.</summary>
    private static bool StartsOver(NodeDriver driver, Action atSecondTick, Action? atFirstTick = null)
    {
        bool removed = false;
        for (long now = TickUs; now <= 3 * TickUs; now += TickUs)
        {
            driver.Tick(now);
            (now == TickUs ? atFirstTick : now == 2 * TickUs ? atSecondTick : null)?.Invoke();
            removed |= driver.Events.Removed;
            driver.Events.Clear();
            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

        return removed;
    }
}
