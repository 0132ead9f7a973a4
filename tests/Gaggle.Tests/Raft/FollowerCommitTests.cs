using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// A voter of three commits the leader's current-term entries once it has stored them (it and the
/// leader are a majority), one commit notice sooner; never when that is not a majority of the leader's
/// own configuration, nor for an earlier term's entry, nor as a learner.
/// </summary>
[TestFixture]
public sealed class FollowerCommitTests
{
    private static RaftCore Follower(string[] members, bool followerCommit = true, bool joining = false) => new(
        new RaftConfig { Id = "b", Members = members, Joining = joining, FollowerCommit = followerCommit, BroadcastAcknowledgements = true, ElectionTicksMin = 10, ElectionTicksMax = 10, Random = new Random(1) },
        HardState.Empty,
        []);

    private static RaftMessage Append(long term, long prevIndex, long prevTerm, long commit, long configurationIndex, params long[] entryTerms)
    {
        var message = Msg.Append("a", "b", term, prevIndex, prevTerm, commit, RaftTestCluster.Entries(prevIndex + 1, entryTerms));
        return new RaftMessage
        {
            Type = message.Type, From = message.From, To = message.To, Term = message.Term, Index = message.Index, LogTerm = message.LogTerm,
            Commit = message.Commit, Entries = message.Entries, RejectHint = configurationIndex,
        };
    }

    [Test]
    public void A_voter_of_three_commits_the_leaders_entry_when_it_stores_it()
    {
        var b = Follower(["a", "b", "c"]);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1, 1));
        Assert.That(b.CommitIndex, Is.EqualTo(2), "b and the leader a are two of three voters");
        var ready = b.TakeReady()!;
        Assert.That(ready.EntriesToPersist.Select(e => e.Index), Is.EqualTo(new long[] { 1, 2 }), "stored in the same Ready that applies them (persisted first)");
        Assert.That(ready.CommittedEntries.Select(e => e.Index), Is.EqualTo(new long[] { 1, 2 }));
    }

    [Test]
    public void Without_the_option_it_waits_for_the_leaders_commit_index()
    {
        var b = Follower(["a", "b", "c"], followerCommit: false);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1, 1));
        Assert.That(b.CommitIndex, Is.Zero);
    }

    [Test]
    public void Two_of_five_voters_are_no_majority()
    {
        var b = Follower(["a", "b", "c", "d", "e"]);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1, 1));
        Assert.That(b.CommitIndex, Is.Zero);
    }

    [Test]
    public void An_earlier_terms_entry_is_not_committed_by_counting_replicas()
    {
        // Raft §5.4.2 (Figure 8): a term-2 leader replicating a term-1 entry before its own.
        var b = Follower(["a", "b", "c"]);
        b.Step(Append(term: 2, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1));
        Assert.That(b.CommitIndex, Is.Zero, "the last entry it stored is of term 1");
        b.Step(Append(term: 2, prevIndex: 1, prevTerm: 1, commit: 0, configurationIndex: 0, 2));
        Assert.That(b.CommitIndex, Is.EqualTo(2), "its own term's entry commits the earlier one with it");
    }

    [Test]
    public void A_leader_whose_configuration_this_node_has_not_stored_yet_is_not_counted_with_it()
    {
        // The leader's latest configuration is at index 7 (say it added a fourth voter): this node,
        // holding entries 1-2 only, cannot count against it.
        var b = Follower(["a", "b", "c"]);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 7, 1, 1));
        Assert.That(b.CommitIndex, Is.Zero);
    }

    [Test]
    public void A_configuration_in_this_nodes_log_after_what_the_leader_verified_is_not_the_leaders()
    {
        // b holds a stale term-1 configuration at index 3 (four voters, from a deposed leader); the
        // term-2 leader's configuration is the seed (index 0) and its Append verifies entries 1-2 only.
        var b = Follower(["a", "b", "c"]);
        var stale = new ClusterConfig(["a", "b", "c", "d"], []);
        b.Step(Msg.Append("x", "b", 1, 0, 0, 0, RaftTestCluster.Entries(1, 1, 1)[0], RaftTestCluster.Entries(1, 1, 1)[1], new LogEntry(3, 1, EntryKind.Configuration, stale.Encode())));
        b.TakeReady();
        Assert.That(b.ConfigurationIndex, Is.EqualTo(3));
        b.Step(Append(term: 2, prevIndex: 1, prevTerm: 1, commit: 0, configurationIndex: 3, 2));
        Assert.That(b.ConfigurationIndex, Is.Zero, "the conflicting entries were truncated with their configuration");
        Assert.That(b.CommitIndex, Is.Zero, "the leader named a configuration index this node no longer holds");
    }

    [Test]
    public void A_learner_never_counts_itself()
    {
        var b = Follower(["a", "c"], joining: true);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1, 1));
        Assert.That(b.CommitIndex, Is.Zero);
    }

    private static RaftMessage Ack(string from, long term, long index) => new() { Type = MessageType.AppendResponse, From = from, To = null, Term = term, Index = index };

    private static RaftCore LearnerOfThreeVoters()
    {
        var b = Follower(["a", "c", "d"], joining: true);
        var config = new ClusterConfig(["a", "c", "d"], ["b"]);
        var message = Msg.Append("a", "b", 1, 0, 0, 0, new LogEntry(1, 1, EntryKind.Configuration, config.Encode()));
        b.Step(new RaftMessage { Type = message.Type, From = "a", To = "b", Term = 1, Entries = message.Entries, RejectHint = 1 });
        b.TakeReady();
        return b;
    }

    [Test]
    public void A_learner_commits_when_a_voter_acknowledges_what_the_leader_sent_it()
    {
        var b = LearnerOfThreeVoters();
        Assert.That(b.Configuration.IsLearner("b"), Is.True);
        b.Step(Append(term: 1, prevIndex: 1, prevTerm: 1, commit: 0, configurationIndex: 1, 1, 1));
        Assert.That(b.CommitIndex, Is.Zero, "the leader alone is no majority of three");
        var acknowledgement = b.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse);
        Assert.That(acknowledgement.To, Is.EqualTo("a"), "a learner's acknowledgement counts for nobody but the leader");

        b.Step(Ack("c", term: 1, index: 3));
        Assert.That(b.CommitIndex, Is.EqualTo(3), "the leader and c are two of three voters");
    }

    [Test]
    public void A_learners_acknowledgement_is_counted_by_nobody_but_the_leader()
    {
        var b = Follower(["a", "b", "c", "d", "e"]);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1, 1));
        b.Step(Ack("x", term: 1, index: 2));
        Assert.That(b.CommitIndex, Is.Zero, "x is no voter");
        b.Step(Ack("c", term: 1, index: 2));
        Assert.That(b.CommitIndex, Is.EqualTo(2), "the leader, b and c are three of five voters");
    }

    [Test]
    public void A_voter_broadcasts_its_acknowledgements_only_where_others_can_count_them()
    {
        var ofThree = Follower(["a", "b", "c"]);
        ofThree.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1));
        Assert.That(ofThree.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse).To, Is.EqualTo("a"), "three voters: the leader and each follower are a majority already");

        var ofFive = Follower(["a", "b", "c", "d", "e"]);
        ofFive.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1));
        Assert.That(ofFive.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse).To, Is.Null, "five voters: the other followers count it");
    }

    [Test]
    public void An_acknowledgement_of_an_earlier_term_counts_for_nothing_in_the_next()
    {
        var b = Follower(["a", "b", "c", "d", "e"]);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1));
        b.Step(Ack("c", term: 1, index: 3)); // c holds a's entries 2 and 3 of term 1, b does not
        Assert.That(b.CommitIndex, Is.EqualTo(1), "a, b and c hold entry 1; b counts nothing past what it verified itself");

        // Term 2, leader e: its entries 2 and 3 are not the ones c acknowledged.
        var message = Append(term: 2, prevIndex: 1, prevTerm: 1, commit: 0, configurationIndex: 0, 2, 2);
        b.Step(new RaftMessage { Type = message.Type, From = "e", To = "b", Term = 2, Index = 1, LogTerm = 1, Entries = message.Entries, RejectHint = 0 });
        Assert.That(b.CommitIndex, Is.LessThan(3), "e and b are two of five; c's acknowledgement was of term 1");
    }

    [Test]
    public void Acknowledgements_of_entries_this_node_has_not_verified_commit_only_what_it_has()
    {
        var b = Follower(["a", "b", "c", "d", "e"]);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1));
        foreach (var voter in new[] { "c", "d", "e" })
        {
            b.Step(Ack(voter, term: 1, index: 3));
        }

        Assert.That(b.CommitIndex, Is.EqualTo(1), "entries 2 and 3 are committed, but b does not hold them");
    }

    [Test]
    public void A_rejoining_voter_never_counts_itself()
    {
        var b = new RaftCore(
            new RaftConfig { Id = "b", Members = ["a", "b", "c"], StartRejoining = true, FollowerCommit = true, ElectionTicksMin = 10, ElectionTicksMax = 10, Random = new Random(1) },
            HardState.Empty,
            []);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1, 1));
        Assert.That(b.Log.LastIndex, Is.EqualTo(2), "it stores the entries");
        Assert.That(b.CommitIndex, Is.Zero, "but a node that lost its storage may not acknowledge yet, so it does not count itself either");
    }

    [Test]
    public void A_voter_that_started_over_does_not_count_itself_through_its_earlier_lifes_configurations()
    {
        // Started over with no log while still listed (see RaftCore.NoVoterThrough): replaying its
        // earlier life's configuration at index 1, it is no voter by its own rules, so it is not one
        // to count either.
        var b = Follower(["a", "b", "c"]);
        b.NoVoterThrough(1);
        var config = new ClusterConfig(["a", "b", "c"], []);
        var message = Msg.Append("a", "b", 1, 0, 0, 0, new LogEntry(1, 1, EntryKind.Configuration, config.Encode()), new LogEntry(2, 1, EntryKind.Normal, new byte[] { 1 }));
        b.Step(new RaftMessage { Type = message.Type, From = "a", To = "b", Term = 1, Entries = message.Entries, RejectHint = 1 });
        Assert.That(b.IsVoter, Is.False);
        Assert.That(b.CommitIndex, Is.Zero);
    }

    [TestCase(3, 0)]
    [TestCase(5, 4)]
    public void The_leader_sends_commit_notices_only_to_followers_that_cannot_know_on_their_own(int voters, int notices)
    {
        var cluster = new RaftTestCluster(voters, new ClusterOptions { BroadcastAppends = false, FollowerCommit = true });
        cluster.Elect("a");
        cluster.Stabilize();
        int before = cluster.Sent.Count;
        long index = cluster.Propose("a", "x");
        cluster.Stabilize();
        Assert.That(cluster.Sent.Skip(before).Count(m => m.Type == MessageType.CommitNotice), Is.EqualTo(notices));
        Assert.That(cluster.Ids.Select(id => cluster[id].CommitIndex), Is.All.EqualTo(index), "every node knows the entry committed");
    }

    [Test]
    public void Static_and_elastic_clusters_both_commit_on_followers()
    {
        // A static member that comes back with less than it acknowledged rejoins and catches up to the
        // leader's last entry, which covers a commit only a follower decided (RejoinTests,
        // WithFollowerCommitARejoiningNodeCatchesUpToTheLeadersLastEntryNotItsCommitIndex).
        var tick = TimeSpan.FromMilliseconds(10);
        var elastic = new GaggleOptions { NodeId = "web" };
        var fixedMembers = new GaggleOptions { NodeId = "a", Members = ["a", "b", "c"] };
        Assert.That(Gaggle.Runtime.NodeDriverSettings.From(elastic, 1, tick).Raft.FollowerCommit, Is.True);
        Assert.That(Gaggle.Runtime.NodeDriverSettings.From(fixedMembers, 1, tick).Raft.FollowerCommit, Is.True);
    }

    [Test]
    public void Acknowledgements_go_to_the_leader_alone_unless_broadcasting_is_on()
    {
        var b = new RaftCore(
            new RaftConfig { Id = "b", Members = ["a", "b", "c", "d", "e"], FollowerCommit = true, ElectionTicksMin = 10, ElectionTicksMax = 10, Random = new Random(1) },
            HardState.Empty,
            []);
        b.Step(Append(term: 1, prevIndex: 0, prevTerm: 0, commit: 0, configurationIndex: 0, 1));
        Assert.That(b.TakeReady()!.Messages.Single(m => m.Type == MessageType.AppendResponse).To, Is.EqualTo("a"));
    }
}
