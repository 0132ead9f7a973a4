using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Configurations and log compaction (Raft thesis §4 with §7).</summary>
[TestFixture]
public sealed class MembershipCompactionTests
{
    /// <summary>
    /// A follower compacts behind a snapshot but retains the entries before it; a duplicated, stale
    /// AppendEntries then brings an old configuration entry again. The snapshot's (later) configuration
    /// stays in force: entries up to the snapshot's index are covered by it.
    /// </summary>
    [Test]
    public void A_retained_configuration_entry_sent_again_does_not_bring_its_configuration_back()
    {
        var cluster = new RaftTestCluster(3);
        var a = cluster.Elect("a");
        cluster.Stabilize();
        Assert.That(a.ProposeConfigChange(new ConfigChange(ConfigChangeType.AddLearner, "d"), -1, out long first, out _), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();
        var stale = cluster.Log("b").Single(e => e.Index == first);
        Assert.That(a.ProposeConfigChange(new ConfigChange(ConfigChangeType.AddLearner, "e"), -1, out _, out _), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.Stabilize();

        var b = cluster["b"];
        b.CompactTo(b.CreateSnapshot(b.AppliedIndex, [7]), retainEntries: 100);
        Assert.That(b.Configuration.Learners, Is.EqualTo(new[] { "d", "e" }));

        cluster.Send(Msg.Append("a", "b", a.Term, prevIndex: first - 1, prevTerm: b.TermAt(first - 1), commit: 0, stale));
        Assert.That(b.Configuration.Learners, Is.EqualTo(new[] { "d", "e" }), "the configuration the snapshot carries stays in force");
    }
}
