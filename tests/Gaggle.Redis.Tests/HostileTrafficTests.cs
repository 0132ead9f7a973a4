using System.Text;
using Gaggle.Channels;
using Gaggle.Raft;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>Anyone who can PUBLISH into Redis can send anything; nodes must shrug it off.</summary>
[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class HostileTrafficTests
{
    private static byte[] Raft(RaftMessage message) => WireCodec.Encode(new RaftWireMessage(message));

    [Test]
    public async Task GarbageTruncatedOversizedAndForgedEnvelopesAreDroppedAndCounted()
    {
        var configuration = await RedisServer.RequireAsync();
        // "zed" may publish (the channel lets it through) but is no Raft member: its payloads reach the node.
        await using var cluster = new RedisCluster(configuration, 3, redis =>
        {
            redis.MaxEnvelopeBytes = 64 * 1024;
            redis.Members = ["a", "b", "c", "zed"];
        });
        await cluster.StartAllAsync();
        await cluster.WaitForLeaderAsync();
        await using var attacker = await ConnectionMultiplexer.ConnectAsync(configuration);
        var publisher = attacker.GetSubscriber();
        string prefix = $"gaggle:{{{cluster.Name}}}:";
        var targets = new[] { prefix + "all", prefix + "node:a", prefix + "node:b", prefix + "node:c" }.Select(RedisChannel.Literal).ToArray();
        var valid = new RedisEnvelope(cluster.Name, "zed", 1, 1, Raft(new RaftMessage { Type = MessageType.Heartbeat, From = "zed", Term = 1 })).Encode(null);
        var random = new Random(11);
        var attack = Task.Run(async () =>
        {
            for (int i = 0; i < 400; i++)
            {
                var garbage = new byte[random.Next(1, 200)];
                random.NextBytes(garbage);
                var target = targets[i % targets.Length];
                await publisher.PublishAsync(target, garbage);
                await publisher.PublishAsync(target, valid[..(valid.Length / 2)]);
                await publisher.PublishAsync(target, new byte[100 * 1024]);
                await publisher.PublishAsync(target, new RedisEnvelope("another-cluster", "b", 1, (ulong)i, new byte[] { 1 }).Encode(null));
                await publisher.PublishAsync(target, new RedisEnvelope(cluster.Name, "mallory", 1, (ulong)i, Raft(new RaftMessage { Type = MessageType.Vote, From = "mallory", Term = 999, Index = 999, LogTerm = 999 })).Encode(null));
                await publisher.PublishAsync(target, new RedisEnvelope(cluster.Name, "zed", 1, (ulong)(2 * i + 2), new byte[] { 1, 1, 99 }).Encode(null));
                // zed passes the channel, so its vote request is Raft's to judge: a node that heard its leader
                // within an election timeout ignores it, one that did not (a late heartbeat on a loaded
                // machine) takes its term, as it must for a voter its configuration does not list yet.
                // Only the term of mallory's forgeries, dropped at the envelope, must never be reached.
                await publisher.PublishAsync(target, new RedisEnvelope(cluster.Name, "zed", 1, (ulong)(2 * i + 3), Raft(new RaftMessage { Type = MessageType.Vote, From = "zed", Term = 500, Index = 999, LogTerm = 999 })).Encode(null));
            }
        });
        var appends = cluster.Nodes.Values.SelectMany(n => Enumerable.Range(0, 30).Select(i => n.AppendAsync(Encoding.UTF8.GetBytes($"{n.Id}-{i}"), TimeSpan.FromSeconds(30)))).ToList();
        await Task.WhenAll(appends);
        await attack;
        await Eventually.True(() => cluster.Ids.All(id => cluster.CommittedTexts(id).Count == 90), "90 entries everywhere");
        var stats = cluster.Channels.Values.Select(c => c.Statistics).ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(stats.Sum(s => s.DroppedFor(DropReason.Malformed)), Is.GreaterThan(0));
            Assert.That(stats.Sum(s => s.DroppedFor(DropReason.Oversized)), Is.GreaterThan(0));
            Assert.That(stats.Sum(s => s.DroppedFor(DropReason.OtherCluster)), Is.GreaterThan(0));
            Assert.That(stats.Sum(s => s.DroppedFor(DropReason.NonMember)), Is.GreaterThan(0));
            Assert.That(cluster.Nodes.Values.Sum(n => n.DroppedMessages), Is.GreaterThan(0), "payloads that pass the envelope but are malformed or from a non-member");
            Assert.That(cluster.Nodes.Values.Max(n => n.Term), Is.LessThan(999), "mallory's forged votes never reached Raft");
        }
    }

    /// <summary>
    /// The attack is real: without a cluster key, forged votes "from" b and c make the lone node a
    /// leader; with a key, the same forgeries are rejected and nobody is elected.
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public async Task ForgedVotesElectNobodyWhenAClusterKeyIsSet(bool withKey)
    {
        var configuration = await RedisServer.RequireAsync();
        await using var cluster = new RedisCluster(configuration, 3, redis => redis.ClusterKey = withKey ? "correct horse battery staple" : null);
        var lonely = await cluster.StartAsync("a");
        await using var attacker = await ConnectionMultiplexer.ConnectAsync(configuration);
        var publisher = attacker.GetSubscriber();
        var target = RedisChannel.Literal($"gaggle:{{{cluster.Name}}}:node:a");
        long sequence = 0;
        byte[] forgedKey = Encoding.UTF8.GetBytes("not the cluster's key at all");
        async Task ForgeRound()
        {
            // An attacker learns the current term by subscribing to the cluster's channels; here the test reads it.
            long current = lonely.Term;
            foreach (var from in new[] { "b", "c" })
            {
                // Grant the pre-vote a asks for (term + 1) and the vote of the term it campaigns in.
                foreach (var (type, term) in new[] { (MessageType.PreVoteResponse, current + 1), (MessageType.VoteResponse, current) })
                {
                    var payload = Raft(new RaftMessage { Type = type, From = from, Term = term });
                    var envelope = new RedisEnvelope(cluster.Name, from, ulong.MaxValue - 1, (ulong)Interlocked.Increment(ref sequence), payload);
                    await publisher.PublishAsync(target, envelope.Encode(null));
                    await publisher.PublishAsync(target, new RedisEnvelope(cluster.Name, from, ulong.MaxValue - 1, (ulong)Interlocked.Increment(ref sequence), payload).Encode(forgedKey));
                }
            }
        }

        var channel = cluster.Channels["a"];
        if (!withKey)
        {
            await Eventually.True(() => { _ = ForgeRound(); return lonely.IsLeader; }, "the forged votes to elect a (no key)");
            Assert.That(lonely.IsLeader, Is.True);
            return;
        }

        // Forge for several election timeouts (at least 8 campaigns at 150-300 ms).
        long termBefore = lonely.Term;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(2.5);
        while (DateTime.UtcNow < until)
        {
            await ForgeRound();
            Assert.That(lonely.IsLeader, Is.False, "a forged vote elected a");
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(lonely.IsLeader, Is.False);
            Assert.That(channel.Statistics.DroppedFor(DropReason.Unsigned), Is.GreaterThan(0));
            Assert.That(channel.Statistics.DroppedFor(DropReason.BadSignature), Is.GreaterThan(0));
            Assert.That(channel.Statistics.Received, Is.Zero);
            Assert.That(lonely.Term, Is.EqualTo(termBefore), "pre-vote keeps a lone node's term still");
        }
    }
}
