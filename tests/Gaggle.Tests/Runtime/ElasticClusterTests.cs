using Gaggle.Channels;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>Elastic mode (no member list): instances form one cluster by themselves, on a manual clock.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class ElasticClusterTests
{
    private static GaggleNode Leader(ManualTimeCluster cluster) => cluster.Nodes.Values.Single(n => n.IsLeader);

    private static bool OneClusterOf(ManualTimeCluster cluster, int voters)
    {
        var leaders = cluster.Nodes.Values.Where(n => n.IsLeader).ToList();
        if (leaders.Count != 1)
        {
            return false;
        }

        var membership = leaders[0].Membership;
        return membership.Voters.Count == voters
            && cluster.Nodes.Values.All(n => membership.Contains(n.Id) && n.Membership == membership && n.LeaderId == leaders[0].Id);
    }

    [Test]
    public async Task Instances_started_one_after_another_form_one_cluster_with_three_voters()
    {
        await using var cluster = new ManualTimeCluster([]);
        var first = await cluster.StartElasticAsync("web");
        await cluster.AdvanceUntilAsync(() => first.IsLeader, "the first instance forms the cluster");
        Assert.That(first.Generation, Is.EqualTo(1));
        Assert.That(cluster.Network.Generation, Is.EqualTo(1), "the generation is recorded in the store");
        Assert.That(first.Membership.Voters, Is.EqualTo(new[] { first.Id }));

        for (int i = 0; i < 4; i++)
        {
            await cluster.StartElasticAsync("web");
        }

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3), "five instances: one cluster, three voters, two learners");
        Assert.That(cluster.Nodes.Values.Select(n => n.Generation), Is.All.EqualTo(1L));
        Assert.That(Leader(cluster).Membership.Learners, Has.Count.EqualTo(2));

        // Any instance appends, learners included.
        var learner = cluster.Nodes.Values.First(n => Leader(cluster).Membership.Learners.Contains(n.Id));
        var append = learner.AppendAsync("from a learner"u8.ToArray());
        await cluster.AdvanceUntilAsync(() => append.IsCompleted, "the learner's append committed");
        Assert.That(await append, Is.GreaterThan(0));
    }

    [Test]
    public async Task Eight_instances_started_at_the_same_moment_form_exactly_one_cluster()
    {
        await using var cluster = new ManualTimeCluster([]);
        for (int i = 0; i < 8; i++)
        {
            await cluster.StartElasticAsync($"pod-{i}");
        }

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3), "one cluster of eight, three voters");
        Assert.That(cluster.Network.Generation, Is.EqualTo(1), "one claim won; the others joined it");
        Assert.That(cluster.Nodes.Values.Select(n => n.Generation), Is.All.EqualTo(1L));
    }

    [Test]
    public async Task A_new_instance_joins_a_live_cluster_even_when_the_store_lost_the_generation_and_the_leader_restores_it()
    {
        await using var cluster = new ManualTimeCluster([]);
        for (int i = 0; i < 3; i++)
        {
            await cluster.StartElasticAsync("web");
        }

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3), "three instances, three voters");
        cluster.Network.LoseGeneration();
        var late = await cluster.StartElasticAsync("late");
        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3) && late.Membership.Contains(late.Id), "the newcomer joined the live cluster");
        Assert.That(late.Generation, Is.EqualTo(1), "it joined the live generation, not a new one");
        await cluster.AdvanceUntilAsync(() => cluster.Network.Generation == 1, "the leader restored the lost value");
    }

    [Test]
    public async Task After_every_instance_died_new_ones_form_the_next_generation_only_after_the_member_timeout()
    {
        await using var cluster = new ManualTimeCluster([]);
        var first = await cluster.StartElasticAsync("web");
        await cluster.AdvanceUntilAsync(() => first.IsLeader, "generation 1 formed");
        await cluster.StopAsync(first.Id);

        var next = await cluster.StartElasticAsync("web");
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(1000));
        Assert.That(next.IsLeader || next.Generation > 1, Is.False, "a recorded generation is not replaced before the member timeout (1200 ms) of silence");
        await cluster.AdvanceUntilAsync(() => next.IsLeader, "the next generation formed");
        Assert.That((next.Generation, cluster.Network.Generation), Is.EqualTo((2L, 2L)));
    }

    [Test]
    public async Task A_node_of_a_replaced_generation_drops_its_state_and_joins_the_newer_one()
    {
        await using var cluster = new ManualTimeCluster([]);
        var old = await cluster.StartElasticAsync("old");
        await cluster.AdvanceUntilAsync(() => old.IsLeader, "generation 1 formed");
        var append = old.AppendAsync("of generation 1"u8.ToArray());
        await cluster.AdvanceUntilAsync(() => append.IsCompleted, "an entry of generation 1");

        // Cut off past the member timeout, the old leader is taken for dead: a new instance forms generation 2.
        cluster.Network.Isolate(old.Id);
        var fresh = await cluster.StartElasticAsync("fresh");
        await cluster.AdvanceUntilAsync(() => fresh.IsLeader && fresh.Generation == 2, "generation 2 formed");

        cluster.Network.Heal();
        await cluster.AdvanceUntilAsync(() => old.Generation == 2 && fresh.Membership.Contains(old.Id) && OneClusterOf(cluster, 1), "the old node reset and joined generation 2");
        var log = await old.GetLogAsync();
        Assert.That(log.Any(e => e.Data.Span.SequenceEqual("of generation 1"u8)), Is.False, "generation 1's state is gone");
    }

    [Test]
    public async Task A_first_generation_grants_its_first_lock_only_after_the_hold_off_and_the_next_generation_tokens_are_larger()
    {
        await using var cluster = new ManualTimeCluster([], options => options.LockLeaseDuration = TimeSpan.FromSeconds(3));
        var first = await cluster.StartElasticAsync("web");
        await cluster.AdvanceUntilAsync(() => first.IsLeader, "generation 1 formed");
        var formedAt = cluster.Time.GetUtcNow();
        var acquire = first.Locks.AcquireAsync("job", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => acquire.IsCompleted, "the first lock granted");
        var waited = cluster.Time.GetUtcNow() - formedAt;
        // Hold-off: lease 3 s + election timeout max 300 ms - the silence before founding (the bootstrap wait, 4 x 300 ms) = 2.1 s.
        Assert.That(waited, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(2000)), "held off: an old generation's hold may still be believed valid");
        var handle = await acquire;
        Assert.That(handle.FencingToken >> 48, Is.EqualTo(1));

        // Every instance dies; the next generation's tokens are larger.
        await cluster.StopAsync(first.Id);
        var next = await cluster.StartElasticAsync("web");
        await cluster.AdvanceUntilAsync(() => next.IsLeader && next.Generation == 2, "generation 2 formed");
        var again = next.Locks.AcquireAsync("job", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => again.IsCompleted, "the lock granted in generation 2");
        Assert.That((await again).FencingToken, Is.GreaterThan(handle.FencingToken));
    }

    [Test]
    public async Task The_manual_clock_waits_for_a_generation_claim_answered_slowly_so_the_founder_holds_off_for_the_usual_time()
    {
        // The store answers claims on the thread pool, 300 ms of real time later (a starved pool on a
        // busy machine): the clock must not move meanwhile, or the founder counts a longer silence and
        // holds its first grant off for less (none at all past a lease), as a run in CI once showed.
        await using var cluster = new ManualTimeCluster([], options => options.LockLeaseDuration = TimeSpan.FromSeconds(3));
        cluster.WrapChannel = (_, channel) => new SlowClaims(channel, TimeSpan.FromMilliseconds(300));
        var first = await cluster.StartElasticAsync("web");
        var startedAt = cluster.Time.GetUtcNow();
        await cluster.AdvanceUntilAsync(() => first.IsLeader, "generation 1 formed");
        Assert.That(cluster.Time.GetUtcNow() - startedAt, Is.LessThan(TimeSpan.FromMilliseconds(2000)), "founded after the bootstrap wait (4 x 300 ms), not after the claim's real-time delay");
        var formedAt = cluster.Time.GetUtcNow();
        var acquire = first.Locks.AcquireAsync("job", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => acquire.IsCompleted, "the first lock granted");
        Assert.That(cluster.Time.GetUtcNow() - formedAt, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(2000)), "held off for lease + election timeout - bootstrap wait");
    }

    [Test]
    public async Task A_member_removed_while_cut_off_loses_its_holds_and_joins_again_as_a_new_incarnation()
    {
        await using var cluster = new ManualTimeCluster([], options => options.LockLeaseDuration = TimeSpan.FromSeconds(1));
        for (int i = 0; i < 4; i++)
        {
            await cluster.StartElasticAsync("web");
        }

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3), "four instances, three voters");
        var cut = cluster.Nodes.Values.First(n => !n.IsLeader && Leader(cluster).Membership.Voters.Contains(n.Id));
        var acquire = cut.Locks.AcquireAsync("resource", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => acquire.IsCompleted, "the lock granted (after the hold-off)");
        var handle = await acquire;
        ulong incarnation = cut.Incarnation;

        cluster.Network.Isolate(cut.Id);
        await cluster.AdvanceUntilAsync(() => !Leader(cluster).Membership.Contains(cut.Id) && Leader(cluster).Membership.Voters.Count == 3, "the cut-off voter removed and replaced");
        var pending = cut.AppendAsync("while cut off"u8.ToArray(), TimeSpan.FromSeconds(60));

        cluster.Network.Heal();
        await cluster.AdvanceUntilAsync(() => pending.IsCompleted && handle.HandleLostToken.IsCancellationRequested && Leader(cluster).Membership.Contains(cut.Id),
            "told it was removed, it started over and was added again");
        Assert.That(cut.Incarnation, Is.Not.EqualTo(incarnation), "a new incarnation");
        Assert.That(pending.IsFaulted && pending.Exception!.InnerException is InvalidOperationException, Is.True, "what it had pending fails: it may retry as the new incarnation");
        var append = cut.AppendAsync("as a new incarnation"u8.ToArray());
        await cluster.AdvanceUntilAsync(() => append.IsCompleted, "the new incarnation appends");
        Assert.That(await append, Is.GreaterThan(0));
        Assert.That(cut.Generation, Is.EqualTo(1));
    }

    [Test]
    public async Task When_the_founder_dies_before_its_first_promotion_its_learners_form_the_next_generation()
    {
        await using var cluster = new ManualTimeCluster([]);
        var founder = await cluster.StartElasticAsync("web");
        await cluster.AdvanceUntilAsync(() => founder.IsLeader, "generation 1 formed");
        await cluster.StartElasticAsync("web");
        await cluster.StartElasticAsync("web");
        await cluster.AdvanceUntilAsync(() => founder.Membership.Learners.Count == 2, "two learners added, none promoted yet");
        Assert.That(founder.Membership.Voters, Is.EqualTo(new[] { founder.Id }));
        await cluster.StopAsync(founder.Id);

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 1) && cluster.Nodes.Values.All(n => n.Generation == 2), "the learners started over and formed generation 2");
        Assert.That(cluster.Network.Generation, Is.EqualTo(2));
    }

    [Test]
    public async Task A_cluster_that_lost_its_majority_of_voters_stops_taking_writes_and_never_forms_a_new_generation_by_itself()
    {
        await using var cluster = new ManualTimeCluster([]);
        for (int i = 0; i < 5; i++)
        {
            await cluster.StartElasticAsync("web");
        }

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3), "five instances, three voters");
        var voters = Leader(cluster).Membership.Voters.ToList();
        foreach (var gone in voters.Take(2))
        {
            await cluster.StopAsync(gone);
        }

        var survivor = cluster.Nodes[voters[2]];
        var append = survivor.AppendAsync("no quorum"u8.ToArray(), TimeSpan.FromSeconds(60));
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(5));
        Assert.That(append.IsCompleted, Is.False, "two of three voters are gone: no write commits");
        Assert.That(cluster.Nodes.Values.Select(n => n.Generation), Is.All.EqualTo(1L), "a voter is alive: nobody guesses that the generation is over");
        Assert.That(cluster.Network.Generation, Is.EqualTo(1));
    }

    [Test]
    public async Task An_operator_forces_a_new_generation_from_a_survivor_and_tokens_keep_increasing()
    {
        await using var cluster = new ManualTimeCluster([], options => options.LockLeaseDuration = TimeSpan.FromSeconds(1));
        for (int i = 0; i < 4; i++)
        {
            await cluster.StartElasticAsync("web");
        }

        await cluster.AdvanceUntilAsync(() => OneClusterOf(cluster, 3), "four instances, three voters");
        var leader = Leader(cluster);
        var acquire = leader.Locks.AcquireAsync("resource", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => acquire.IsCompleted, "a lock granted in generation 1");
        var handle = await acquire;
        var append = leader.AppendAsync("committed in generation 1"u8.ToArray());
        await cluster.AdvanceUntilAsync(() => append.IsCompleted, "an entry of generation 1");
        long committed = await append;
        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.All(n => n.CommitIndex >= committed), "everyone has it");

        // Two of the three voters crash for good (the leader among them): no writes.
        var voters = leader.Membership.Voters;
        var survivor = cluster.Nodes.Values.First(n => voters.Contains(n.Id) && n != leader);
        var learner = cluster.Nodes.Values.First(n => !voters.Contains(n.Id));
        await cluster.StopAsync(leader.Id);
        await cluster.StopAsync(voters.First(v => v != leader.Id && v != survivor.Id));
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(3));
        Assert.That(survivor.LeaderId, Is.Null);

        var forced = survivor.ForceNewGenerationAsync();
        await cluster.AdvanceUntilAsync(() => forced.IsCompleted, "the survivor leads generation 2");
        Assert.That(await forced, Is.EqualTo(2));
        await cluster.AdvanceUntilAsync(() => learner.Generation == 2 && OneClusterOf(cluster, 1), "the other survivor dropped its state and joined generation 2");
        var log = await learner.GetLogAsync();
        Assert.That(log.Any(e => e.Data.Span.SequenceEqual("committed in generation 1"u8)), Is.True, "the survivor's state carried over");

        var again = survivor.Locks.AcquireAsync("resource", TimeSpan.FromSeconds(30));
        await cluster.AdvanceUntilAsync(() => again.IsCompleted, "the lock granted in generation 2, after the old holder's lease");
        Assert.That((await again).FencingToken, Is.GreaterThan(handle.FencingToken));
    }
}

/// <summary>A channel whose generation store answers claims after a real-time delay (the rest passes through).</summary>
internal sealed class SlowClaims(IChannel inner, TimeSpan delay) : IChannel, IClusterGenerationStore
{
    private readonly IClusterGenerationStore _store = (IClusterGenerationStore)inner;

    public string NodeId => inner.NodeId;

    public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default) => inner.ConnectAsync(receiver, cancellationToken);

    public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

    public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.SendAsync(to, payload, cancellationToken);

    public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.BroadcastAsync(payload, cancellationToken);

    public ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default) => _store.ReadGenerationAsync(cancellationToken);

    public async ValueTask<bool> TryClaimGenerationAsync(long expected, long claimed, CancellationToken cancellationToken = default)
    {
        await Task.Delay(delay, cancellationToken);
        return await _store.TryClaimGenerationAsync(expected, claimed, cancellationToken);
    }

    public ValueTask<bool> TryReleaseClaimAsync(long claimed, long expected, CancellationToken cancellationToken = default) => _store.TryReleaseClaimAsync(claimed, expected, cancellationToken);

    public ValueTask<GenerationConfirmation> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default) => _store.ConfirmGenerationAsync(generation, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
