using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// An operator forcing a new generation on a survivor whose log holds entries it cannot know committed
/// (elastic instances on a manual clock): they count as committed, but in the new generation, after its
/// hold-off, with its tokens.
/// </summary>
[TestFixture]
public sealed class ForcedGenerationTailTests
{
    /// <summary>
    /// Five voters; three stop storing new entries, then crash for good. The leader, without a
    /// majority, still logs the survivor's acquire and sends it there, and crashes too. The survivor's
    /// log ends with an acquire it cannot know committed (the lost majority may have committed it, or
    /// other entries at its index, and granted there). Forced, the survivor grants it only after the
    /// hold-off (a lost holder's lease has run out by then), with a token of the new generation.
    /// Before, it was granted 0.9 s after forcing, with a token of the lost generation.
    /// </summary>
    [Test]
    public async Task An_acquire_the_survivor_cannot_know_committed_is_granted_after_the_hold_off_with_a_new_generation_token()
    {
        var lease = TimeSpan.FromSeconds(1);
        var starved = new HashSet<string>();
        await using var cluster = new ManualTimeCluster([], options =>
        {
            options.LockLeaseDuration = lease;
            options.Voters = 5;
        });
        cluster.WrapChannel = (id, channel) => new NoNewEntries(id, channel, starved);
        for (int i = 0; i < 5; i++)
        {
            await cluster.StartElasticAsync("web");
        }

        await cluster.AdvanceUntilAsync(
            () => cluster.Nodes.Values.Count(n => n.IsLeader) == 1 && cluster.Nodes.Values.All(n => n.Membership.Voters.Count == 5 && n.LeaderId is not null),
            "five voters and a leader");
        var leader = cluster.Nodes.Values.Single(n => n.IsLeader);
        var survivor = cluster.Nodes.Values.First(n => n != leader);
        var first = survivor.Locks.AcquireAsync("m", TimeSpan.FromMinutes(1));
        await cluster.AdvanceUntilAsync(() => first.IsCompleted, "a grant in generation 1 (its founding hold-off is over)");
        await (await first).DisposeAsync();
        var lost = cluster.Nodes.Values.Where(n => n != leader && n != survivor).Select(n => n.Id).ToList();
        lock (starved)
        {
            // They still answer the leader's heartbeats, so it keeps leading, but store no new entry.
            starved.UnionWith(lost);
        }

        var acquire = survivor.Locks.AcquireAsync("m", TimeSpan.FromMinutes(1));
        await cluster.AdvanceUntilAsync(() => survivor.LastLogIndex > survivor.CommitIndex, "the survivor holds the acquire, uncommitted");
        foreach (var id in lost.Append(leader.Id))
        {
            await cluster.StopAsync(id);
        }

        await cluster.AdvanceAsync(TimeSpan.FromSeconds(3));
        Assert.That((survivor.LeaderId, acquire.IsCompleted), Is.EqualTo(((string?)null, false)));

        var forcedAt = cluster.Time.GetUtcNow();
        var forced = survivor.ForceNewGenerationAsync();
        await cluster.AdvanceUntilAsync(() => forced.IsCompleted || acquire.IsCompleted, "the survivor leads the new generation");
        await cluster.AdvanceUntilAsync(() => acquire.IsCompleted, "the acquire is granted");
        var grantedAfter = cluster.Time.GetUtcNow() - forcedAt;
        long generation = await forced;
        var handle = await acquire;

        Assert.That(handle.FencingToken >> 48, Is.EqualTo(generation), $"token {handle.FencingToken:x}, granted {grantedAfter.TotalMilliseconds} ms after forcing");
        Assert.That(grantedAfter, Is.GreaterThanOrEqualTo(lease), "not before the hold-off, which outlasts a lost holder's lease");
    }

    /// <summary>An elastic node's channel that drops what it receives of entries while its id is in <paramref name="starved"/>.</summary>
    private sealed class NoNewEntries(string id, IChannel inner, HashSet<string> starved) : IChannel, IClusterGenerationStore
    {
        private readonly IClusterGenerationStore _store = (IClusterGenerationStore)inner;

        public string NodeId => inner.NodeId;

        public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default)
            => inner.ConnectAsync(message =>
            {
                bool drop;
                lock (starved)
                {
                    drop = starved.Contains(id) && WireCodec.Decode(message.Payload, message.From, id) is RaftWireMessage { Message: { Type: MessageType.Append, Entries.Count: > 0 } };
                }

                if (!drop)
                {
                    receiver(message);
                }
            }, cancellationToken);

        public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

        public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.SendAsync(to, payload, cancellationToken);

        public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.BroadcastAsync(payload, cancellationToken);

        public ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default) => _store.ReadGenerationAsync(cancellationToken);

        public ValueTask<bool> TryClaimGenerationAsync(long expected, long claimed, CancellationToken cancellationToken = default) => _store.TryClaimGenerationAsync(expected, claimed, cancellationToken);

        public ValueTask<bool> TryReleaseClaimAsync(long claimed, long expected, CancellationToken cancellationToken = default) => _store.TryReleaseClaimAsync(claimed, expected, cancellationToken);

        public ValueTask<GenerationConfirmation> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default) => _store.ConfirmGenerationAsync(generation, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
