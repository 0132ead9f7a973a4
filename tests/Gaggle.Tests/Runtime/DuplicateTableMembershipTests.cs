using Gaggle.Raft;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// The duplicate table forgets removed members' sessions as configurations are applied (instances come
/// and go for ever in elastic mode), keeping the most recently seen non-members, and decides alike on
/// every replica whether it applied the log or installed a snapshot.
/// </summary>
[TestFixture]
public sealed class DuplicateTableMembershipTests
{
    private static readonly ClusterConfig Members = new(["a", "b", "c"], ["d"]);

    [Test]
    public void Origins_outside_the_configuration_beyond_the_most_recent_ones_are_forgotten_and_members_never()
    {
        var table = new ProposalDeduplicator();
        long index = 0;
        foreach (var member in new[] { "a", "b", "c", "d" })
        {
            Assert.That(table.FirstTime(member, 1, 1, ++index), Is.True);
        }

        int removed = ProposalDeduplicator.NonMembersKept + 10;
        for (int i = 0; i < removed; i++)
        {
            Assert.That(table.FirstTime($"gone-{i:000}", 1, 1, ++index), Is.True);
        }

        Assert.That(table.ForgetNonMembers(Members), Is.EqualTo(10), "the 10 least recently seen non-members");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(table.Origins, Is.EqualTo(4 + ProposalDeduplicator.NonMembersKept));
            foreach (var member in new[] { "a", "b", "c", "d" })
            {
                Assert.That(table.Contains(member, 1, 1), Is.True, $"member {member} is kept however old");
            }

            Assert.That(table.Contains("gone-009", 1, 1), Is.False, "forgotten: among the least recently seen");
            Assert.That(table.Contains("gone-010", 1, 1), Is.True, "kept: among the most recently seen");
            Assert.That(table.FirstTime($"gone-{removed - 1:000}", 1, 1, ++index), Is.False, "a late retry of a kept non-member is still a duplicate");
        }

        Assert.That(table.ForgetNonMembers(Members), Is.Zero, "nothing more to forget");
    }

    [Test]
    public void A_retry_keeps_a_removed_origin_among_the_most_recent()
    {
        var table = new ProposalDeduplicator();
        long index = 0;
        table.FirstTime("busy", 1, 1, ++index);
        for (int i = 0; i < ProposalDeduplicator.NonMembersKept; i++)
        {
            table.FirstTime($"gone-{i:000}", 1, 1, ++index);
        }

        // Its retry lands in the log again (a duplicate): it counts as seen now.
        Assert.That(table.FirstTime("busy", 1, 1, ++index), Is.False);
        table.ForgetNonMembers(Members);
        Assert.That(table.Contains("busy", 1, 1), Is.True);
        Assert.That(table.Contains("gone-000", 1, 1), Is.False);
    }

    [Test]
    public void Replicas_that_apply_the_configurations_and_one_that_installs_a_snapshot_decide_alike()
    {
        var applied = new NodeStateMachines("x", 1, new Dictionary<string, IGaggleStateMachine>(), new NodeEvents());
        long index = 0;
        var entries = new List<LogEntry>();
        for (int i = 0; i < 3 * ProposalDeduplicator.NonMembersKept; i++)
        {
            string origin = $"n-{i:000}";
            entries.Add(Entry(++index, new EntryEnvelope(EntryPayloadKind.User, 0, origin, 1, 1, "x"u8.ToArray()).Encode()));
            if (i % 10 == 9)
            {
                // Only the last few joiners are members; the rest were removed.
                var voters = Enumerable.Range(Math.Max(0, i - 2), 3).Select(j => $"n-{j:000}");
                entries.Add(new LogEntry(++index, 1, EntryKind.Configuration, new ClusterConfig(voters, []).Encode()));
            }
        }

        int half = entries.Count / 2;
        foreach (var entry in entries.Take(half))
        {
            applied.TryApply(entry, out _);
        }

        var installed = new NodeStateMachines("y", 2, new Dictionary<string, IGaggleStateMachine>(), new NodeEvents());
        installed.ReadSnapshot(applied.WriteSnapshot());
        foreach (var entry in entries.Skip(half))
        {
            Assert.That(installed.TryApply(entry, out _), Is.EqualTo(applied.TryApply(entry, out _)), $"entry {entry.Index}");
        }

        Assert.That(installed.WriteSnapshot(), Is.EqualTo(applied.WriteSnapshot()), "the same tables");
        Assert.That(applied.Deduplicator.Origins, Is.LessThanOrEqualTo(3 + ProposalDeduplicator.NonMembersKept + 10), "removed members' sessions do not pile up");
    }

    private static LogEntry Entry(long index, byte[] envelope) => new(index, 1, EntryKind.Normal, envelope);
}
