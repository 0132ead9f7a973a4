using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// The 2015 correction to the single-server membership changes of the Raft thesis §4.1 (Ongaro,
/// raft-dev, "bug in single-server membership changes"): a leader may change the configuration only
/// once an entry of its own term has committed. Without it, a change left uncommitted by a deposed
/// leader and a change of its successor can each be committed by majorities that do not overlap.
/// </summary>
[TestFixture]
public sealed class NewLeaderChangeTests
{
    // Ongaro's counter-example, scripted. Voters {a, b, c, d} and the learner e, led by a in term T.
    //   1. a promotes e: C1 = {a, b, c, d, e} reaches e only (2 of 5: uncommitted). a crashes.
    //   2. b is elected in T+1 by b, c, d (they lack C1, so b's configuration is still {a, b, c, d});
    //      its no-op reaches c only (2 of 4: uncommitted). b proposes removing a: C2 = {b, c, d}.
    //      Were it logged, b and c (2 of 3) would commit it at once. The rule refuses it.
    //   3. b crashes, c is cut off, a restarts with C1 in its log. Under C1 it needs 3 of 5: d (which
    //      never saw an entry of T+1, so a's log is as up to date as its own) and e grant them, and a
    //      leads a later term, whose entries replace b's at the same indexes on every node.
    // With the rule nothing of b's term had committed, so nothing committed is lost; without it, C2
    // committed on b and c is overwritten.
    [Test]
    public void A_new_leaders_change_and_a_deposed_leaders_uncommitted_change_cannot_both_commit()
    {
        var cluster = new RaftTestCluster(4);
        var history = new CommittedHistory();
        cluster.Elect("a");
        long deposedTerm = cluster.Term("a");
        cluster.AddNode("e");
        Assert.That(cluster.ProposeChange("a", ConfigChangeType.AddLearner, "e", out long learnerIndex), Is.EqualTo(ConfigChangeOutcome.Proposed));
        cluster.AdvanceUntil(() => cluster.Ids.All(id => cluster[id].CommitIndex == learnerIndex), maxTicks: 3 * cluster.Options.HeartbeatTicks);
        history.Observe(cluster);

        // 1. C1 reaches e only; a crashes with it in its log.
        long c1Index;
        using (cluster.Drop(m => m.From == "a" && m.Type == MessageType.Append && m.To is "b" or "c" or "d"))
        {
            Assert.That(cluster.ProposeChange("a", ConfigChangeType.Promote, "e", out c1Index), Is.EqualTo(ConfigChangeOutcome.Proposed));
            cluster.Stabilize();
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["e"].ConfigurationIndex, Is.EqualTo(c1Index), "e holds C1");
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(learnerIndex), "a and e are 2 of 5");
            Assert.That(new[] { "b", "c", "d" }.Select(id => cluster[id].LastIndex), Is.All.EqualTo(learnerIndex), "b, c and d lack C1");
        }

        cluster.Stop("a");

        // 2. b leads T+1 with the votes of c and d; its appends reach c only.
        ForgetTheLeader(cluster, "c", "d");
        ConfigChangeOutcome removal;
        using (cluster.Drop(m => m.From == "b" && m.Type == MessageType.Append && m.To != "c"))
        {
            cluster.Elect("b");
            cluster.Stabilize();
            using (Assert.EnterMultipleScope())
            {
                Assert.That(cluster.Term("b"), Is.EqualTo(deposedTerm + 1));
                Assert.That(cluster["b"].Configuration.Voters, Is.EqualTo(new[] { "a", "b", "c", "d" }));
                Assert.That(cluster["c"].TermAt(c1Index), Is.EqualTo(deposedTerm + 1), "b's no-op, at C1's index, reached c");
                Assert.That(cluster["d"].LastIndex, Is.EqualTo(learnerIndex), "d saw no entry of b's term");
                Assert.That(cluster["b"].CommitIndex, Is.EqualTo(learnerIndex), "b and c are 2 of {a, b, c, d}: the no-op is not committed");
            }

            // The rule: the no-op has not committed, so the change is refused (the caller retries).
            // Without it C2 = {b, c, d} would be logged here and committed by b and c.
            removal = cluster["b"].ProposeConfigChange(new ConfigChange(ConfigChangeType.Remove, "a"), -1, out _, out _);
            cluster.Stabilize();
            history.Observe(cluster);
        }

        cluster.Stop("b");

        // 3. a, back with C1, is elected by d and e; then everyone meets again.
        cluster.Isolate("c");
        cluster.Restart("a");
        Assert.That(cluster["a"].ConfigurationIndex, Is.EqualTo(c1Index), "a restarts with C1 in force");
        ForgetTheLeader(cluster, "d", "e");
        string? violation = RunUntilViolation(() =>
        {
            // d voted for b in T+1 and refuses a first: a learns that term, then wins the next.
            cluster.Campaign("a");
            cluster.Elect("a");
            history.Observe(cluster);

            cluster.Heal();
            cluster.Restart("b");
            cluster.AdvanceUntil(
                () => cluster.Ids.All(id => cluster[id].CommitIndex == cluster["a"].LastIndex),
                maxTicks: 5 * cluster.Options.ElectionTicksMax);
            history.Observe(cluster);
        });

        using (Assert.EnterMultipleScope())
        {
            Assert.That(violation, Is.Null, "a committed entry was overwritten");
            Assert.That(history.Conflicts, Is.Empty, "an index was committed with two different terms");
            Assert.That(removal, Is.EqualTo(ConfigChangeOutcome.InProgress), "b proposed a change before its no-op committed");
        }

        var committed = CommittedHistory.CommittedEntries(cluster, "a");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
            foreach (string id in cluster.Ids)
            {
                Assert.That(CommittedHistory.CommittedEntries(cluster, id), Is.EqualTo(committed), $"{id}'s committed entries");
            }

            Assert.That(committed, Is.SupersetOf(history.Entries), "every entry committed along the way is still committed");
            Assert.That(cluster["c"].Configuration.Voters, Is.EqualTo(new[] { "a", "b", "c", "d", "e" }), "C1 won, committed by a, d and e");
        }
    }

    /// <summary>
    /// The nodes stop hearing from their leader: cut off, each times out (its pre-votes are lost), so
    /// its lease on that leader (§4.2.3) no longer keeps it from answering a candidate.
    /// </summary>
    private static void ForgetTheLeader(RaftTestCluster cluster, params string[] ids)
    {
        using (cluster.Drop(m => ids.Contains(m.From) || (m.To is { } to && ids.Contains(to))))
        {
            foreach (string id in ids)
            {
                cluster.StartCampaign(id);
            }

            cluster.Stabilize();
        }
    }

    /// <summary>Runs the steps; returns the message of the safety check (the cluster's or the log's) that stopped them, or null.</summary>
    private static string? RunUntilViolation(Action steps)
    {
        try
        {
            steps();
            return null;
        }
        catch (InvalidOperationException e)
        {
            return e.Message;
        }
    }

    /// <summary>Every (index, term) any node has had committed when observed, and any index seen committed with two terms.</summary>
    private sealed class CommittedHistory
    {
        private readonly Dictionary<long, long> _termAt = [];

        public List<string> Conflicts { get; } = [];

        public IEnumerable<(long Index, long Term)> Entries => _termAt.Select(p => (p.Key, p.Value));

        public static (long Index, long Term)[] CommittedEntries(RaftTestCluster cluster, string id)
            => cluster.Log(id).Where(e => e.Index <= cluster[id].CommitIndex).Select(e => (e.Index, e.Term)).ToArray();

        public void Observe(RaftTestCluster cluster)
        {
            foreach (string id in cluster.Ids)
            {
                foreach (var (index, term) in CommittedEntries(cluster, id))
                {
                    if (!_termAt.TryAdd(index, term) && _termAt[index] != term)
                    {
                        Conflicts.Add($"{id} committed term {term} at index {index}, term {_termAt[index]} was committed there before");
                    }
                }
            }
        }
    }
}
