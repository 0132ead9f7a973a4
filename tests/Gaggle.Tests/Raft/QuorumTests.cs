using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>A quorum is a strict majority, n/2 + 1 (Raft §5.2 for votes, §5.3 for commitment).</summary>
[TestFixture]
public sealed class QuorumTests
{
    [TestCase(1, 1)]
    [TestCase(2, 2)]
    [TestCase(3, 2)]
    [TestCase(4, 3)]
    [TestCase(5, 3)]
    [TestCase(6, 4)]
    [TestCase(7, 4)]
    public void Majority_is_n_over_2_plus_1(int clusterSize, int majority)
        => Assert.That(Quorum.Majority(clusterSize), Is.EqualTo(majority));

    // The committed index is the highest index stored on a majority (the leader's own last index included).
    [TestCase(new long[] { 5, 3, 1 }, 3, 3)]
    [TestCase(new long[] { 5, 5, 1 }, 3, 5)]
    [TestCase(new long[] { 5, 0, 0 }, 3, 0)]
    [TestCase(new long[] { 9, 7, 5, 3, 1 }, 5, 5)]
    [TestCase(new long[] { 9, 7, 0, 0, 0 }, 5, 0)]
    [TestCase(new long[] { 9, 7, 5, 3 }, 4, 5, Description = "4 nodes: 3 must hold it")]
    [TestCase(new long[] { 9, 9, 0, 0 }, 4, 0, Description = "4 nodes: 2 of 4 is not a majority")]
    [TestCase(new long[] { 4 }, 1, 4)]
    [TestCase(new long[] { 6, 2 }, 3, 2, Description = "discovery: unknown members count as 0")]
    [TestCase(new long[] { 6 }, 3, 0, Description = "discovery: fewer known members than a majority")]
    public void CommittedIndex_is_the_highest_index_on_a_majority(long[] matches, int clusterSize, long expected)
        => Assert.That(Quorum.CommittedIndex(matches.AsSpan(), clusterSize), Is.EqualTo(expected));

    [TestCase(2, 0, 3, "Won")]
    [TestCase(1, 1, 3, "Pending")]
    [TestCase(1, 2, 3, "Lost")]
    [TestCase(3, 0, 5, "Won")]
    [TestCase(2, 0, 5, "Pending")]
    [TestCase(2, 3, 5, "Lost")]
    [TestCase(2, 2, 4, "Lost")]
    [TestCase(2, 1, 4, "Pending")]
    [TestCase(3, 1, 4, "Won")]
    [TestCase(1, 0, 1, "Won")]
    public void Tally_wins_only_with_a_strict_majority(int granted, int rejected, int clusterSize, string expected)
        => Assert.That(Quorum.Tally(granted, rejected, clusterSize).ToString(), Is.EqualTo(expected));

    // Raft §5.2: "a candidate wins an election if it receives votes from a majority of the servers".
    [TestCase(3, 1, true, true)]
    [TestCase(3, 1, false, true)]
    [TestCase(5, 2, true, true)]
    [TestCase(5, 2, false, true)]
    [TestCase(5, 3, true, false)]
    [TestCase(5, 3, false, false)]
    [TestCase(4, 2, true, false)]
    [TestCase(4, 2, false, false)]
    public void Election_needs_a_strict_majority_of_votes(int size, int stopped, bool preVote, bool wins)
    {
        var cluster = new RaftTestCluster(size, new ClusterOptions { PreVote = preVote });
        foreach (var id in cluster.Ids.Reverse().Take(stopped))
        {
            cluster.Stop(id);
        }

        cluster.Campaign("a");

        Assert.That(cluster.Leaders(), wins ? Is.EqualTo(new[] { "a" }) : Is.Empty,
            $"{size - stopped} of {size} votes");
    }

    // Raft §5.3: "the leader decides an entry is committed once it is replicated on a majority".
    [TestCase(3, 2, true)]
    [TestCase(3, 1, false)]
    [TestCase(4, 3, true)]
    [TestCase(4, 2, false)]
    [TestCase(5, 3, true)]
    [TestCase(5, 2, false)]
    public void Commit_needs_a_strict_majority_of_replicas(int size, int replicas, bool commits)
    {
        var cluster = new RaftTestCluster(size);
        cluster.Elect("a");
        var cut = cluster.Ids.Skip(replicas).ToHashSet(); // the leader "a" and the next replicas-1 nodes get the entry

        using (cluster.Drop(m => m.Type == MessageType.Append && cut.Contains(m.To!)))
        {
            long index = cluster.Propose("a", "v");
            cluster.Stabilize();

            Assert.That(cluster["a"].CommitIndex >= index, Is.EqualTo(commits), $"{replicas} of {size} replicas");
        }
    }
}
