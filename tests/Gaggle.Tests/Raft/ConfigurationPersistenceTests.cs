using System.Text;
using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// Where a node finds its configuration again: in the snapshots it takes and installs (Raft thesis
/// §7: a snapshot carries the latest configuration it covers) and in its persisted log after a
/// restart (§4.1: the latest configuration entry in the log, committed or not).
/// </summary>
[TestFixture]
public sealed class ConfigurationPersistenceTests
{
    private static readonly ClusterConfig ThreeVotersAndLearnerD = new(["a", "b", "c"], ["d"]);

    private static readonly ClusterConfig FourVoters = new(["a", "b", "c", "d"], []);

    private static void AssertConfiguration(RaftCore node, ClusterConfig expected, long index)
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(node.Configuration, Is.EqualTo(expected), node.Id);
            Assert.That(node.ConfigurationIndex, Is.EqualTo(index), node.Id);
            Assert.That(node.IsVoter, Is.EqualTo(expected.IsVoter(node.Id)), node.Id);
        }
    }

    private static long Change(RaftTestCluster cluster, ConfigChangeType type, string node)
    {
        Assert.That(cluster.ProposeChange("a", type, node, out long index), Is.EqualTo(ConfigChangeOutcome.Proposed), $"{type} {node}");
        cluster.Stabilize();
        return index;
    }

    // §7: the leader compacts its log after a change; the follower it left behind (c) and the new
    // learner (d) can only catch up from the snapshot, and take the configuration it carries, which
    // they also find again when restarted from it (d's seed configuration does not even list it).
    [Test]
    public void A_follower_that_installs_a_snapshot_takes_the_configuration_it_carries()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        cluster.Isolate("c");
        cluster.Isolate("d");
        long learnerIndex = Change(cluster, ConfigChangeType.AddLearner, "d");
        cluster.ProposeMany("a", 3);
        cluster.Stabilize();

        var snapshot = cluster.Compact("a");
        var (framed, framedIndex, _) = SnapshotFrame.Unwrap(snapshot.Data);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(snapshot.Index, Is.GreaterThan(learnerIndex));
            Assert.That(cluster["a"].Log.FirstIndex, Is.EqualTo(snapshot.Index + 1), "the configuration entry was compacted away");
            Assert.That(framed, Is.EqualTo(ThreeVotersAndLearnerD));
            Assert.That(framedIndex, Is.EqualTo(learnerIndex));
        }

        AssertConfiguration(cluster["a"], ThreeVotersAndLearnerD, learnerIndex);
        AssertConfiguration(cluster["c"], new ClusterConfig(["a", "b", "c"], []), 0);

        cluster.Heal();
        long after = cluster.Propose("a", "after");
        cluster.AdvanceUntil(() => cluster["c"].CommitIndex >= after && cluster["d"].CommitIndex >= after, maxTicks: 10 * cluster.Options.HeartbeatTicks);

        foreach (var id in new[] { "c", "d" })
        {
            Assert.That(cluster.InstalledSnapshots(id).Select(s => s.Index), Is.EqualTo(new[] { snapshot.Index }), id);
            AssertConfiguration(cluster[id], ThreeVotersAndLearnerD, learnerIndex);
            cluster.Stop(id);
            cluster.Restart(id);
            AssertConfiguration(cluster[id], ThreeVotersAndLearnerD, learnerIndex);
        }
    }

    // §7: a snapshot covers only applied, hence committed, entries; a configuration logged after its
    // index (here uncommitted) is not in it but stays in force on the node that compacted.
    [Test]
    public void A_snapshot_carries_the_configuration_as_of_its_index_not_a_later_one()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        var seedSnapshot = cluster["a"].CreateSnapshot(1, "machines"u8);
        Assert.That(SnapshotFrame.Unwrap(seedSnapshot.Data).Config, Is.Null, "before any change the seed configuration is implied");
        Assert.That(seedSnapshot.Data.ToArray(), Is.EqualTo("machines"u8.ToArray()), "and the bytes are left unframed");

        cluster.AddNode("d");
        long learnerIndex = Change(cluster, ConfigChangeType.AddLearner, "d");
        cluster.Propose("a", "v");
        cluster.Stabilize();
        cluster.Isolate("b");
        cluster.Isolate("c");
        long removeIndex = Change(cluster, ConfigChangeType.Remove, "d");
        Assert.That(cluster["a"].CommitIndex, Is.LessThan(removeIndex));

        var snapshot = cluster.Compact("a");
        var (framed, framedIndex, machines) = SnapshotFrame.Unwrap(snapshot.Data);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(snapshot.Index, Is.LessThan(removeIndex));
            Assert.That(framed, Is.EqualTo(ThreeVotersAndLearnerD));
            Assert.That(framedIndex, Is.EqualTo(learnerIndex));
            Assert.That(Encoding.UTF8.GetString(machines.Span), Is.EqualTo("v"));
        }

        var threeVoters = new ClusterConfig(["a", "b", "c"], []);
        AssertConfiguration(cluster["a"], threeVoters, removeIndex);

        cluster.Heal();
        cluster.AdvanceUntil(() => cluster["a"].CommitIndex >= removeIndex, maxTicks: 5 * cluster.Options.HeartbeatTicks);
        var later = cluster.Compact("a");
        Assert.That(SnapshotFrame.Unwrap(later.Data).ConfigIndex, Is.EqualTo(removeIndex));
        AssertConfiguration(cluster["a"], threeVoters, removeIndex);
    }

    // §7: a snapshot without the configuration would lose it once the entry is compacted away, so
    // CompactTo refuses one that does not carry the configuration in force at its index.
    [Test]
    public void CompactTo_refuses_a_snapshot_without_the_logged_configuration()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        long learnerIndex = Change(cluster, ConfigChangeType.AddLearner, "d");
        cluster.Propose("a", "v");
        cluster.Stabilize();

        var a = cluster["a"];
        long applied = a.AppliedIndex;
        var unframed = new RaftSnapshot(applied, a.TermAt(applied), "machines"u8.ToArray());
        var wrongConfig = new RaftSnapshot(applied, a.TermAt(applied), SnapshotFrame.Wrap(new ClusterConfig(["a", "b", "c"], []), learnerIndex, "machines"u8));
        var wrongIndex = new RaftSnapshot(applied, a.TermAt(applied), SnapshotFrame.Wrap(ThreeVotersAndLearnerD, learnerIndex + 1, "machines"u8));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => a.CompactTo(unframed), Throws.ArgumentException.With.Message.Contains($"logged at {learnerIndex}"));
            Assert.That(() => a.CompactTo(wrongConfig), Throws.ArgumentException);
            Assert.That(() => a.CompactTo(wrongIndex), Throws.ArgumentException);
            Assert.That(a.Snapshot, Is.Null);
            Assert.That(a.Log.FirstIndex, Is.EqualTo(1), "nothing was compacted");
        }

        // Before the configuration entry, nothing was logged: the unframed bytes are the whole truth there.
        a.CompactTo(new RaftSnapshot(learnerIndex - 1, a.TermAt(learnerIndex - 1), "machines"u8.ToArray()));
        a.CompactTo(a.CreateSnapshot(applied, "machines"u8));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(a.Log.FirstIndex, Is.EqualTo(applied + 1));
            Assert.That(a.Configuration, Is.EqualTo(ThreeVotersAndLearnerD));
        }
    }

    // §4.1: a restarted node takes the latest configuration entry of its persisted log, committed or
    // not (a's removal of b never committed); a node that joined (d) finds its promotion there too.
    [Test]
    public void A_restarted_node_recovers_its_configuration_from_its_log()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        long learnerIndex = Change(cluster, ConfigChangeType.AddLearner, "d");
        long promoteIndex = Change(cluster, ConfigChangeType.Promote, "d");
        cluster.Isolate("b");
        cluster.Isolate("c");
        cluster.Isolate("d");
        long removeIndex = Change(cluster, ConfigChangeType.Remove, "b");
        Assert.That(cluster["a"].CommitIndex, Is.LessThan(removeIndex), "a alone is not a majority of a, c, d");

        var logged = cluster.Persisted("a").Entries.Where(e => e.Kind == EntryKind.Configuration).Select(e => e.Index);
        Assert.That(logged, Is.EqualTo(new[] { learnerIndex, promoteIndex, removeIndex }));

        foreach (var id in new[] { "a", "b", "d" })
        {
            cluster.Stop(id);
            cluster.Restart(id);
        }

        AssertConfiguration(cluster["a"], new ClusterConfig(["a", "c", "d"], []), removeIndex);
        AssertConfiguration(cluster["b"], FourVoters, promoteIndex);
        AssertConfiguration(cluster["d"], FourVoters, promoteIndex);

        // The restarted cluster carries on: whoever leads, its members converge on its configuration.
        cluster.Heal();
        cluster.AdvanceUntil(() => cluster.Leaders().Count == 1);
        string leader = cluster.Leaders()[0];
        long index = cluster.Propose(leader, "after-restart");
        var members = cluster[leader].Configuration.Members.ToArray();
        cluster.AdvanceUntil(() => members.All(id => cluster[id].CommitIndex >= index), maxTicks: 10 * cluster.Options.HeartbeatTicks);
        Assert.That(members.Select(id => cluster[id].Configuration), Is.All.EqualTo(cluster[leader].Configuration));
    }

    // §7 + §4.1: restarted from a snapshot and the entries after it, a node takes the latest
    // configuration of the log, else the snapshot's.
    [Test]
    public void A_restarted_node_recovers_its_configuration_from_its_snapshot_and_log()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.AddNode("d");
        long learnerIndex = Change(cluster, ConfigChangeType.AddLearner, "d");
        cluster.Propose("a", "v1");
        cluster.Stabilize();
        var first = cluster.Compact("a");
        Assert.That(SnapshotFrame.Unwrap(first.Data).ConfigIndex, Is.EqualTo(learnerIndex));
        long promoteIndex = Change(cluster, ConfigChangeType.Promote, "d");
        Assert.That(cluster["a"].CommitIndex, Is.EqualTo(promoteIndex));

        cluster.Stop("a");
        cluster.Restart("a");
        Assert.That(cluster["a"].Snapshot, Is.EqualTo(first));
        AssertConfiguration(cluster["a"], FourVoters, promoteIndex);

        var second = cluster.Compact("a");
        Assert.That(cluster.Persisted("a").Entries.Where(e => e.Kind == EntryKind.Configuration), Is.Empty, "only the snapshot holds it now");
        cluster.Stop("a");
        cluster.Restart("a");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].Snapshot, Is.EqualTo(second));
            Assert.That(second.Index, Is.GreaterThanOrEqualTo(promoteIndex));
        }

        AssertConfiguration(cluster["a"], FourVoters, promoteIndex);
    }
}
