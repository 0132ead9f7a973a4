using System.Text;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// Admissions: a member removed and added again is a new admission; what it sent under the old one
/// is refused by the leader and given up by the sender, which is what lets every replica forget a
/// removed member's duplicate sessions at its removal. Two node drivers wired by hand, on ticks.
/// </summary>
[TestFixture]
public sealed class AdmissionTests
{
    private const long TickUs = 10_000;

    private SequenceCounter _leaderSequences = new();
    private SequenceCounter _memberSequences = new();
    private long _nowUs;
    private bool _toMember;
    private bool _toLeader;

    /// <summary>NUnit runs a fixture's tests on one instance: each starts from a fresh clock and healed links.</summary>
    [SetUp]
    public void Fresh()
    {
        _leaderSequences = new SequenceCounter();
        _memberSequences = new SequenceCounter();
        _nowUs = 1_000_000;
        _toMember = true;
        _toLeader = true;
    }

    /// <summary>
    /// Elastic seed 78, as it ran with removed members' sessions forgotten at their removal and no
    /// admissions: a member cut off from the leader's messages (its own still arrive) forwards an append,
    /// which commits; it never hears so and keeps retrying; the leader removes it, then adds it back —
    /// the same process, same id and incarnation, which never learned it had been removed. Its retry
    /// landing after the addition was applied a second time. Now the leader refuses the retry (sent
    /// under the old admission). Catching up through the log, the member applies the entry and its
    /// append completes at its one index; through a snapshot (which no longer remembers the member's
    /// old session), it learns its new admission and gives the append up, its outcome unknown to it,
    /// rather than retry it. What it appends afterwards commits.
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public void A_member_added_back_in_the_same_life_has_its_retry_refused_and_never_applied_twice(bool catchUpBySnapshot)
    {
        var leader = Driver("n1", joining: false, _leaderSequences, snapshotEvery: catchUpBySnapshot ? 1 : 0);
        var member = Driver("w", joining: true, _memberSequences, snapshotEvery: 0);
        var drivers = new[] { leader, member };
        for (int i = 0; i < 100 && leader.Core.Role != RaftRole.Leader; i++)
        {
            Tick(drivers);
        }

        long added = Change(drivers, ConfigChangeType.AddLearner);
        Tick(drivers, 3);
        Assert.That(member.Core.AdmissionOf("w"), Is.EqualTo(added), "the member knows its admission");

        _toMember = false;
        var append = Append(member, "p124");
        Pump(drivers);
        Assert.That(leader.Machines.Deduplicator.Contains("w", 1, append.Sequence), Is.True, "committed and applied on the leader");
        long appliedAt = catchUpBySnapshot ? -1 : leader.Log().Single(e => IsData(e, "p124")).Index;
        Assert.That(append.Admission, Is.EqualTo(added));

        long removed = Change(drivers, ConfigChangeType.Remove);
        Assert.That(leader.Machines.Deduplicator.Contains("w", 1, append.Sequence), Is.False, "the removed member's session is forgotten at its removal");
        long readded = Change(drivers, ConfigChangeType.AddLearner);
        Assert.That((removed, readded), Is.EqualTo((added + 2, added + 3)));
        Assert.That(leader.Core.AdmissionOf("w"), Is.EqualTo(readded));

        // The member, still hearing nothing, retries under its old admission: refused.
        int staleRefusals = 0;
        for (int i = 0; i < 10; i++)
        {
            Tick(drivers);
            staleRefusals += leader.Events.Dropped.Count(d => d.Kind == "stale-admission");
            leader.Events.Clear();
        }

        Assert.That(leader.Machines.Deduplicator.Contains("w", 1, append.Sequence), Is.False, "the retry was not applied (it would have opened a session again)");

        _toMember = true;
        var givenUp = new List<DriverAppend>();
        var completed = new List<(DriverAppend Append, long Index)>();
        for (int i = 0; i < 30; i++)
        {
            Tick(drivers);
            givenUp.AddRange(member.Events.TimedOut);
            completed.AddRange(member.Events.Committed);
            member.Events.Clear();
        }

        Assert.That(member.Core.AdmissionOf("w"), Is.EqualTo(readded), "caught up");
        if (catchUpBySnapshot)
        {
            Assert.That(member.Core.Snapshot, Is.Not.Null, "caught up through a snapshot");
            Assert.That((givenUp.Single(), completed), Is.EqualTo((append, Array.Empty<(DriverAppend, long)>())), "given up once the member learned its new admission");
            Assert.That(append.GivenUpBecause, Does.Contain("removed and added again"));
        }
        else
        {
            Assert.That((givenUp, completed.Single()), Is.EqualTo((Array.Empty<DriverAppend>(), (append, appliedAt))), "completed at the one index it was applied at");
            Assert.That(Applied(leader, "p124") + Applied(member, "p124"), Is.EqualTo(2), "applied once on each");
        }

        var next = Append(member, "after");
        Tick(drivers, 5);
        Assert.That(member.Events.Committed.Select(c => c.Append), Does.Contain(next), "what it appends as the new admission commits");
        Assert.That(staleRefusals, Is.GreaterThan(0), "the retry reached the leader and was refused");
    }

    /// <summary>
    /// A node that starts over under the same id (elastic mode, after it was removed) catches up through
    /// the log from its start, and passes its earlier life's configurations, which list its id under an
    /// admission that is not its own. It holds its appends until its configuration is its leader's: sent
    /// under the old admission, they would be refused, then given up as if it had been removed meanwhile.
    /// </summary>
    [Test]
    public void A_node_catching_up_through_its_earlier_lifes_configurations_holds_its_appends_until_it_has_its_own()
    {
        var leader = Driver("n1", joining: false, _leaderSequences, snapshotEvery: 0);
        var first = Driver("w", joining: true, _memberSequences, snapshotEvery: 0);
        var drivers = new[] { leader, first };
        for (int i = 0; i < 100 && leader.Core.Role != RaftRole.Leader; i++)
        {
            Tick(drivers);
        }

        Change(drivers, ConfigChangeType.AddLearner);
        Tick(drivers, 3);
        for (int i = 0; i < 5; i++)
        {
            Append(first, $"first life {i}");
        }

        Tick(drivers, 3);
        Change(drivers, ConfigChangeType.Remove);
        long readded = Change(drivers, ConfigChangeType.AddLearner);

        // The same id, a new life: empty log, its appends made before it heard anything.
        var again = Driver("w", joining: true, _memberSequences, snapshotEvery: 0, incarnation: 2);
        drivers = [leader, again];
        var early = Append(again, "second life");
        var givenUp = new List<DriverAppend>();
        var committed = new List<DriverAppend>();
        int refused = 0;
        for (int i = 0; i < 60 && committed.Count == 0; i++)
        {
            Tick(drivers);
            givenUp.AddRange(again.Events.TimedOut);
            committed.AddRange(again.Events.Committed.Select(c => c.Append));
            refused += leader.Events.Dropped.Count(d => d.Kind == "stale-admission");
            again.Events.Clear();
            leader.Events.Clear();
        }

        Assert.That((committed.SingleOrDefault(), givenUp.Count, refused), Is.EqualTo((early, 0, 0)), "held until it had its own admission, then committed");
        Assert.That(again.Core.AdmissionOf("w"), Is.EqualTo(readded));
    }

    /// <summary>
    /// With a fixed member list (no admissions), the leader still takes the appends of a node an operator
    /// removed, as it always did (the node, no longer replicated to, never learns they committed), and
    /// keeps its duplicate session.
    /// </summary>
    [Test]
    public void Without_admissions_the_leader_still_takes_a_removed_nodes_appends()
    {
        var leader = Driver("n1", joining: false, _leaderSequences, snapshotEvery: 0, admissions: false);
        var member = Driver("w", joining: true, _memberSequences, snapshotEvery: 0, admissions: false);
        var drivers = new[] { leader, member };
        for (int i = 0; i < 100 && leader.Core.Role != RaftRole.Leader; i++)
        {
            Tick(drivers);
        }

        Change(drivers, ConfigChangeType.AddLearner);
        Tick(drivers, 3);
        Change(drivers, ConfigChangeType.Remove);
        Tick(drivers, 3);
        Assert.That(leader.Core.AdmissionOf("w"), Is.EqualTo(-1), "removed");
        var append = Append(member, "from outside");
        Tick(drivers, 3);
        Assert.That(Applied(leader, "from outside"), Is.EqualTo(1), "the leader took it");
        Assert.That(leader.Machines.Deduplicator.Contains("w", 1, append.Sequence), Is.True, "and keeps the removed node's session");
        Assert.That(leader.Events.Dropped.Where(d => d.Kind == "stale-admission"), Is.Empty);
    }

    /// <summary>Instances come and go: every replica keeps duplicate sessions for the members only, however many were removed.</summary>
    [Test]
    public void The_duplicate_table_keeps_sessions_of_members_only()
    {
        var machines = new NodeStateMachines("leader", 1, new Dictionary<string, IGaggleStateMachine>(), new NodeEvents(), forgetRemovedMembers: true);
        long index = 0;
        machines.TryApply(UserEntry(++index, "leader", 1), out _);
        for (int i = 0; i < 200; i++)
        {
            string id = $"gone-{i}";
            machines.TryApply(ConfigEntry(++index, ["leader"], [id], index), out _);
            machines.TryApply(UserEntry(++index, id, 1), out _);
            Assert.That(machines.Deduplicator.Contains(id, 1, 1), Is.True, "a member's session is kept");
            machines.TryApply(ConfigEntry(++index, ["leader"], [], 0), out _);
            Assert.That(machines.Deduplicator.Contains(id, 1, 1), Is.False, "forgotten at its removal");
        }

        Assert.That(machines.Deduplicator.Origins, Is.EqualTo(1));
        Assert.That(machines.Deduplicator.Contains("leader", 1, 1), Is.True);
    }

    [Test]
    public void A_configuration_encodes_each_members_admission_and_reads_the_older_format_as_admitted_at_zero()
    {
        var config = new ClusterConfig(["a", "b"], ["c"], new Dictionary<string, long> { ["b"] = 7, ["c"] = 12 });
        Assert.That(ClusterConfig.TryDecode(config.Encode(), out var decoded), Is.True);
        Assert.That(new[] { "a", "b", "c", "d" }.Select(decoded.AdmissionOf), Is.EqualTo(new[] { 0L, 7, 12, -1 }));

        var next = decoded.Apply(new ConfigChange(ConfigChangeType.Remove, "c"), 20, out _)!.Apply(new ConfigChange(ConfigChangeType.AddLearner, "c"), 21, out _)!;
        Assert.That((next.AdmissionOf("b"), next.AdmissionOf("c")), Is.EqualTo((7L, 21L)), "added again: a new admission; the others keep theirs");
        Assert.That(next.Apply(new ConfigChange(ConfigChangeType.Promote, "c"), 22, out _)!.AdmissionOf("c"), Is.EqualTo(21), "a promotion keeps it");

        byte[] version1 = [1, 2, 1, (byte)'a', 1, (byte)'b', 1, 1, (byte)'c'];
        Assert.That(ClusterConfig.TryDecode(version1, out var old), Is.True);
        Assert.That((old.ToString(), old.AdmissionOf("c")), Is.EqualTo(("voters [a, b] learners [c]", 0L)));
    }

    private static bool IsData(LogEntry entry, string data)
        => entry.Kind == EntryKind.Normal && EntryEnvelope.TryDecode(entry.Data, out var envelope) && envelope.Kind == EntryPayloadKind.User
            && Encoding.UTF8.GetString(envelope.Payload.Span) == data;

    private static NodeDriver Driver(string id, bool joining, SequenceCounter sequences, int snapshotEvery, ulong incarnation = 1, bool admissions = true)
    {
        var settings = new NodeDriverSettings
        {
            Raft = new RaftConfig { Id = id, Members = ["n1"], Joining = joining, HeartbeatTicks = 1, ElectionTicksMin = 5, ElectionTicksMax = 10, MaxEntriesPerMessage = 1, MaxInflightMessages = 1, Random = new Random(7) },
            Incarnation = incarnation,
            RetryTicks = 5,
            LeadershipLeaseUs = 45_000,
            SnapshotThresholdEntries = snapshotEvery,
            SnapshotRetainEntries = 0,
            Admissions = admissions, // as in elastic mode; a fixed member list (these two start from one) has none
        };
        return new NodeDriver(settings, new PersistedState(HardState.Empty, []), sequences);
    }

    /// <summary>Proposes a change of member "w" on the leader and commits it (the leader is the sole voter).</summary>
    private long Change(NodeDriver[] drivers, ConfigChangeType type)
    {
        var outcome = drivers[0].Core.ProposeConfigChange(new ConfigChange(type, "w"), -1, out long index, out string? error);
        Assert.That(outcome, Is.EqualTo(ConfigChangeOutcome.Proposed), error);
        Pump(drivers);
        Assert.That(drivers[0].Core.CommitIndex, Is.GreaterThanOrEqualTo(index));
        return index;
    }

    private DriverAppend Append(NodeDriver driver, string data)
    {
        long sequence = _memberSequences.Next();
        var append = new DriverAppend(sequence, new EntryEnvelope(EntryPayloadKind.User, 0, driver.Id, driver.Incarnation, sequence, Encoding.UTF8.GetBytes(data)).Encode());
        driver.Append(append);
        return append;
    }

    /// <summary>How many times <paramref name="data"/> was applied on <paramref name="driver"/> (its applied log replayed through a fresh duplicate table, which decides as every replica's does).</summary>
    private static int Applied(NodeDriver driver, string data)
    {
        var replay = new NodeStateMachines(driver.Id, 1, new Dictionary<string, IGaggleStateMachine>(), new NodeEvents(), forgetRemovedMembers: true);
        int applied = 0;
        foreach (var entry in driver.Log().Where(e => e.Index <= driver.Core.AppliedIndex))
        {
            if (replay.TryApply(entry, out var envelope) && envelope.Kind == EntryPayloadKind.User && Encoding.UTF8.GetString(envelope.Payload.Span) == data)
            {
                applied++;
            }
        }

        return applied;
    }

    private void Tick(NodeDriver[] drivers, int ticks = 1)
    {
        for (int i = 0; i < ticks; i++)
        {
            _nowUs += TickUs;
            foreach (var driver in drivers)
            {
                driver.Tick(_nowUs);
            }

            Pump(drivers);
        }
    }

    /// <summary>Delivers what the drivers send (over the links that are up) until nothing is left to send.</summary>
    private void Pump(NodeDriver[] drivers)
    {
        for (bool sent = true; sent;)
        {
            sent = false;
            foreach (var driver in drivers)
            {
                while (driver.TakeReady(_nowUs) is { } ready)
                {
                    var messages = ready.Messages.ToList();
                    driver.Advance();
                    if (driver.Events.SnapshotToSave is { } snapshot)
                    {
                        driver.Events.SnapshotToSave = null;
                        driver.CompactTo(snapshot);
                    }

                    foreach (var (to, message) in messages)
                    {
                        foreach (var target in drivers.Where(d => d != driver && (to is null || to == d.Id)))
                        {
                            if (target.Id == "w" ? _toMember : _toLeader)
                            {
                                target.Receive(driver.Id, WireCodec.Decode(WireCodec.Encode(message), driver.Id, target.Id));
                                sent = true;
                            }
                        }
                    }
                }
            }
        }
    }

    private static LogEntry UserEntry(long index, string origin, long sequence)
        => new(index, 1, EntryKind.Normal, new EntryEnvelope(EntryPayloadKind.User, 0, origin, 1, sequence, "x"u8.ToArray()).Encode());

    private static LogEntry ConfigEntry(long index, string[] voters, string[] learners, long admission)
        => new(index, 1, EntryKind.Configuration, new ClusterConfig(voters, learners, learners.ToDictionary(l => l, _ => admission)).Encode());
}
