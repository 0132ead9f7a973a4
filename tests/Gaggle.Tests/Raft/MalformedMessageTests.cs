using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// Messages that cannot come from a correct peer (forged, corrupted, from strangers) are dropped and
/// counted; they never throw into the consensus loop and never move the commit index.
/// </summary>
[TestFixture]
public sealed class MalformedMessageTests
{
    private static RaftTestCluster ClusterWithLeaderA()
    {
        var cluster = new RaftTestCluster(3);
        cluster.Elect("a");
        cluster.Propose("a", "v1");
        cluster.Stabilize();
        return cluster;
    }

    // An acknowledgement of entries the leader never had must not count towards a commit (Raft §5.3).
    [Test]
    public void An_AppendResponse_acknowledging_an_index_beyond_the_leaders_log_is_dropped()
    {
        var cluster = ClusterWithLeaderA();
        using (cluster.Drop(m => m.Type == MessageType.Append))
        {
            cluster.Propose("a", "v2"); // index 3, on a only
            cluster.Stabilize();
        }

        long dropped = cluster["a"].DroppedMessages;
        Assert.DoesNotThrow(() => cluster.Send(Msg.AppendResponse("b", "a", term: 1, index: 1000)));
        Assert.DoesNotThrow(() => cluster.Send(Msg.AppendResponse("b", "a", term: 1, index: 1000, reject: true, hint: 500, hintTerm: 7)));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].DroppedMessages, Is.EqualTo(dropped + 2));
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(2), "index 3 is on a only");
            Assert.That(cluster["a"].ProgressOf("b")!.Match, Is.EqualTo(2));
            Assert.That(cluster.Leaders(), Is.EqualTo(new[] { "a" }));
        }
    }

    [Test]
    public void Responses_with_negative_or_absurd_fields_do_not_move_the_leader()
    {
        var cluster = ClusterWithLeaderA();

        Assert.DoesNotThrow(() =>
        {
            cluster.Send(Msg.AppendResponse("b", "a", term: 1, index: -5));
            cluster.Send(Msg.AppendResponse("b", "a", term: 1, index: -5, reject: true, hint: -9, hintTerm: -1));
            cluster.Send(Msg.AppendResponse("b", "a", term: 1, index: 2, reject: true, hint: long.MaxValue, hintTerm: long.MaxValue));
            cluster.Send(Msg.HeartbeatResponse("b", "a", term: 1));
        });
        cluster.Stabilize();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(2));
            Assert.That(cluster["a"].ProgressOf("b")!.Match, Is.EqualTo(2));
            Assert.That(cluster.LogTerms("b"), Is.EqualTo(cluster.LogTerms("a")));
        }
    }

    [Test]
    public void Appends_with_non_contiguous_or_out_of_range_entries_are_dropped()
    {
        var cluster = ClusterWithLeaderA();
        var before = cluster.LogTerms("b");
        long dropped = cluster["b"].DroppedMessages;

        var bad = new[]
        {
            Msg.Append("a", "b", 1, prevIndex: 2, prevTerm: 1, commit: 2, RaftTestCluster.Entries(3, 1)[0], RaftTestCluster.Entries(5, 1)[0]),
            Msg.Append("a", "b", 1, prevIndex: 2, prevTerm: 1, commit: 2, RaftTestCluster.Entries(4, 1)),
            Msg.Append("a", "b", 1, prevIndex: -1, prevTerm: 0, commit: 2, RaftTestCluster.Entries(0, 1)),
            Msg.Append("a", "b", 1, prevIndex: 2, prevTerm: -3, commit: 2),
            Msg.Append("a", "b", 1, prevIndex: 2, prevTerm: 1, commit: 2, RaftTestCluster.Entries(3, 5)), // entry term beyond the message's
            Msg.Append("a", "b", 1, prevIndex: 2, prevTerm: 1, commit: 2, RaftTestCluster.Entries(3, 1, 0)), // terms going down
        };

        using (Assert.EnterMultipleScope())
        {
            foreach (var message in bad)
            {
                Assert.That(cluster.Send(message), Is.Empty, message.ToString());
            }

            Assert.That(cluster["b"].DroppedMessages, Is.EqualTo(dropped + bad.Length));
            Assert.That(cluster.LogTerms("b"), Is.EqualTo(before));
            Assert.That(cluster["b"].CommitIndex, Is.EqualTo(2));
        }
    }

    [Test]
    public void A_heartbeat_with_an_absurd_commit_index_commits_only_what_the_log_holds()
    {
        var cluster = ClusterWithLeaderA();

        Assert.DoesNotThrow(() => cluster.Send(Msg.Heartbeat("a", "b", term: 1, commit: long.MaxValue)));
        Assert.DoesNotThrow(() => cluster.Send(Msg.Heartbeat("a", "b", term: 1, commit: -7)));

        Assert.That(cluster["b"].CommitIndex, Is.EqualTo(2));
    }

    [Test]
    public void Messages_from_outside_the_configuration_follow_the_Raft_rules()
    {
        // Thesis §4.1: a node answers by the Raft rules whatever its configuration says (a leader may be
        // outside it, a candidate may count it before it knows); §4.2.3 holds off a disruptive one.
        var cluster = ClusterWithLeaderA();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Send(Msg.Vote("mallory", "b", term: 50, lastIndex: 99, lastTerm: 50)), Is.Empty, "b heard from its leader within the election timeout");
            Assert.That(cluster.Term("b"), Is.EqualTo(1));
            Assert.That(cluster.Send(Msg.AppendResponse("mallory", "a", term: 1, index: 2)), Is.Empty, "the leader tracks no progress for a non-member");
            Assert.That(cluster["a"].CommitIndex, Is.EqualTo(2));
        }

        cluster.Send(Msg.Append("mallory", "b", 50, prevIndex: 0, prevTerm: 0, commit: 0, RaftTestCluster.Entries(1, 50)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Term("b"), Is.EqualTo(50), "a leader of a later term is followed, member or not");
            Assert.That(cluster["b"].LeaderId, Is.EqualTo("mallory"));
            Assert.That(cluster.LogTerms("b"), Is.EqualTo(new long[] { 1, 1 }), "committed entries are never overwritten");
        }
    }

    // Messages addressed to another node, or claiming to come from the receiver itself, are ignored.
    [Test]
    public void Misaddressed_and_self_addressed_messages_are_ignored()
    {
        var cluster = ClusterWithLeaderA();
        var misaddressed = new RaftMessage { Type = MessageType.Heartbeat, From = "a", To = "c", Term = 7 };
        cluster["b"].Step(misaddressed);
        var fromSelf = Msg.Vote("b", "b", term: 7, lastIndex: 9, lastTerm: 7);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cluster.Send(fromSelf), Is.Empty);
            Assert.That(cluster.Term("b"), Is.EqualTo(1));
        }
    }

    // Messages of every type with zeroed fields, from a member, in the current term: nothing throws.
    [Test]
    public void Any_message_type_with_default_fields_is_survived_by_every_role()
    {
        var cluster = ClusterWithLeaderA();
        cluster.Isolate("c");
        cluster.StartCampaign("c");

        Assert.DoesNotThrow(() =>
        {
            foreach (var type in Enum.GetValues<MessageType>().Append((MessageType)200))
            {
                foreach (var (from, to) in new[] { ("b", "a"), ("a", "b"), ("a", "c"), ("b", "c") })
                {
                    cluster.Send(new RaftMessage { Type = type, From = from, To = to, Term = cluster.Term(to) });
                }
            }
        });
    }
}
