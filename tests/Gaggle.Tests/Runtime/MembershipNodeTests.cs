using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// Membership changes through the node API, on a manual clock: requests from any node go to the
/// leader, complete once committed, and are refused with errors that say why.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class MembershipNodeTests
{
    private static readonly string[] Seed = ["a", "b", "c"];

    [Test]
    public async Task A_newcomer_is_added_as_a_learner_promoted_and_takes_part()
    {
        await using var cluster = await StartedAsync();
        var d = await cluster.StartAsync("d", Join);
        var follower = Follower(cluster);

        var added = await RunAsync(cluster, follower.AddLearnerAsync("d"), "d added as a learner");
        Assert.That(added.Learners, Is.EqualTo(new[] { "d" }));
        await cluster.AdvanceUntilAsync(() => d.Membership.Index == added.Index, "d to learn its configuration");
        Assert.That(d.Role, Is.EqualTo(RaftRole.Follower), "a learner never campaigns");

        // A learner appends, locks and calls the leader like a follower: forwarded to the leader.
        long index = await RunAsync(cluster, d.AppendAsync("from the learner"u8.ToArray()), "an append from the learner");
        Assert.That(index, Is.GreaterThan(added.Index));
        var hold = await RunAsync(cluster, d.Locks.AcquireAsync("learner-lock"), "a lock taken by the learner");
        Assert.That(hold.FencingToken, Is.GreaterThan(0));
        string? leader = await RunAsync(cluster, d.DispatchOnLeaderAsync<string, string>("whoami", "d"), "an RPC from the learner");
        Assert.That(leader, Is.EqualTo(Leader(cluster).Id));

        var promoted = await RunAsync(cluster, d.PromoteAsync("d", expectedIndex: added.Index), "d promoted");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(promoted.Voters, Is.EqualTo(new[] { "a", "b", "c", "d" }));
            Assert.That(promoted.Learners, Is.Empty);
            Assert.That(promoted.Index, Is.GreaterThan(added.Index));
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.All(n => n.Membership == promoted), "every node to see d as a voter");
        Assert.That(cluster.Nodes.Values.Select(n => n.Members.Count), Is.All.EqualTo(4));
    }

    [Test]
    public async Task Removing_the_leader_hands_leadership_to_a_voter_and_it_never_campaigns_again()
    {
        await using var cluster = await StartedAsync();
        var leader = Leader(cluster);
        var follower = Follower(cluster);

        var after = await RunAsync(cluster, follower.RemoveMemberAsync(leader.Id), "the leader removed");
        Assert.That(after.Voters, Does.Not.Contain(leader.Id));
        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Any(n => n.IsLeader && n.Id != leader.Id), "a new leader among the remaining voters");
        long term = leader.Term;

        var maxElectionTimeout = NodeCluster.FastOptions("a", Seed).ElectionTimeoutMax;
        await cluster.AdvanceAsync(5 * maxElectionTimeout);
        var remaining = cluster.Nodes.Values.Where(n => n.Id != leader.Id).ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(leader.IsLeader, Is.False);
            Assert.That(leader.Term, Is.EqualTo(term), "a removed node stops campaigning");
            Assert.That(remaining.Select(n => n.Membership.Voters.Count), Is.All.EqualTo(2));
            Assert.That(remaining.Count(n => n.IsLeader), Is.EqualTo(1));
        }

        // The two remaining voters commit on their own.
        long index = await RunAsync(cluster, remaining[0].AppendAsync("after removal"u8.ToArray()), "an append after the removal");
        Assert.That(index, Is.GreaterThan(after.Index));
    }

    [Test]
    public async Task Leadership_goes_to_the_chosen_voter()
    {
        await using var cluster = await StartedAsync();
        var target = Follower(cluster);

        await RunAsync(cluster, Leader(cluster).TransferLeadershipAsync(target.Id).ContinueWith(t => t.Wait()), "the transfer");
        await cluster.AdvanceUntilAsync(() => target.IsLeader, "the target to lead");
        Assert.That(cluster.Nodes.Values.Count(n => n.IsLeader), Is.EqualTo(1));
    }

    /// <summary>Thesis §3.10 with the lease: the leader's token is cancelled before TimeoutNow leaves it.</summary>
    [Test]
    public async Task A_transfer_cancels_the_leadership_token_before_TimeoutNow_is_sent()
    {
        var tokenStateAtTimeoutNow = new List<bool>();
        var cluster = new ManualTimeCluster(Seed);
        await using var _ = cluster;
        cluster.WrapChannel = (id, channel) => new TimeoutNowWatch(id, channel, () => tokenStateAtTimeoutNow.Add(cluster[id].Leadership.LeadershipToken.IsCancellationRequested));
        foreach (var id in Seed)
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Any(n => n.Leadership.IsLeader), "a trusted leader");
        var leader = Leader(cluster);
        var token = leader.Leadership.LeadershipToken;
        Assert.That(token.IsCancellationRequested, Is.False);

        var target = Follower(cluster);
        await RunAsync(cluster, leader.TransferLeadershipAsync(target.Id), "the transfer");
        Assert.That(tokenStateAtTimeoutNow, Is.Not.Empty.And.All.True, "every TimeoutNow left after the token was cancelled");
        Assert.That(token.IsCancellationRequested, Is.True);
    }

    [Test]
    public async Task Refused_changes_say_why()
    {
        await using var cluster = await StartedAsync();
        var node = Follower(cluster);

        var invalid = await FailureAsync(cluster, node.AddLearnerAsync("a"), "adding a voter as a learner");
        var unknown = await FailureAsync(cluster, node.PromoteAsync("zed"), "promoting a non-member");
        var transfer = await FailureAsync(cluster, node.TransferLeadershipAsync("zed"), "a transfer to a non-member");
        var added = await RunAsync(cluster, node.AddLearnerAsync("d"), "d added");
        var stale = await FailureAsync(cluster, node.RemoveMemberAsync("d", expectedIndex: added.Index - 1), "a change on a stale configuration");
        var again = await RunAsync(cluster, node.AddLearnerAsync("d", expectedIndex: 0), "the same change again");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(invalid.Error, Is.EqualTo(GaggleMembershipError.Invalid));
            Assert.That(invalid.Message, Does.Contain("'a' is already a voter"));
            Assert.That(unknown.Error, Is.EqualTo(GaggleMembershipError.UnknownNode));
            Assert.That(unknown.Message, Does.Contain("'zed'"));
            Assert.That(transfer.Error, Is.EqualTo(GaggleMembershipError.UnknownNode));
            Assert.That(stale.Error, Is.EqualTo(GaggleMembershipError.ConfigurationChanged));
            Assert.That(stale.Message, Does.Contain($"not the expected {added.Index - 1}"));
            Assert.That(again, Is.EqualTo(added), "a change that already holds completes with the configuration in force");
        }

        var badId = await ThrowsAsync<ArgumentException>(() => node.AddLearnerAsync("not valid!"));
        Assert.That(badId.Message, Does.Contain("'not valid!'"));
        await ThrowsAsync<ArgumentOutOfRangeException>(() => node.AddLearnerAsync("d", expectedIndex: -2));
    }

    [Test]
    public async Task The_last_voter_cannot_be_removed()
    {
        await using var cluster = new ManualTimeCluster(["solo"]);
        var solo = await cluster.StartAsync("solo");
        await cluster.AdvanceUntilAsync(() => solo.IsLeader, "a leader");

        var error = await FailureAsync(cluster, solo.RemoveMemberAsync("solo"), "removing the last voter");
        Assert.That(error.Error, Is.EqualTo(GaggleMembershipError.Invalid));
        Assert.That(error.Message, Does.Contain("last voter"));
    }

    [Test]
    public async Task A_change_waits_for_the_previous_one_and_times_out_with_the_reason()
    {
        await using var cluster = await StartedAsync();
        var leader = Leader(cluster);
        await RunAsync(cluster, leader.AddLearnerAsync("d"), "d added");

        // d never started: it cannot catch up, so its promotion waits, then says why.
        var error = await FailureAsync(cluster, leader.PromoteAsync("d", timeout: TimeSpan.FromSeconds(1)), "promoting a learner that is not there");
        Assert.That(error.Error, Is.EqualTo(GaggleMembershipError.ChangeInProgress));
        Assert.That(error.Message, Does.Contain("has not caught up"));
    }

    [Test]
    public async Task Membership_changes_need_durable_storage_and_a_member_list()
    {
        var options = NodeCluster.FastOptions("a", ["a"]);
        var network = new Gaggle.Channels.InMemoryNetwork();
        await using var memory = new GaggleNode(options, network.CreateChannel("a"), new InMemoryRaftStorage());
        var inMemory = await ThrowsAsync<GaggleMembershipException>(() => memory.AddLearnerAsync("b"));
        Assert.That(inMemory.Error, Is.EqualTo(GaggleMembershipError.NotSupported));
        Assert.That(inMemory.Message, Does.Contain("durable storage"));

        var discovery = NodeCluster.FastOptions("x", ["x"]);
        discovery.Members = [];
        discovery.ClusterSize = 3;
        await using var discovering = new GaggleNode(discovery, network.CreateChannel("x"), new InMemoryRaftStorage { SurvivesRestart = true });
        var sized = await ThrowsAsync<GaggleMembershipException>(() => discovering.RemoveMemberAsync("b"));
        Assert.That(sized.Error, Is.EqualTo(GaggleMembershipError.NotSupported));
        Assert.That(sized.Message, Does.Contain("ClusterSize"));
    }

    [Test]
    public async Task A_restarted_member_keeps_the_logged_configuration_over_its_Members()
    {
        await using var cluster = await StartedAsync();
        var d = await cluster.StartAsync("d", Join);
        var added = await RunAsync(cluster, Leader(cluster).AddLearnerAsync("d"), "d added");
        await cluster.AdvanceUntilAsync(() => d.Membership.Index == added.Index, "d to learn its configuration");

        await cluster.StopAsync("b");
        var b = await cluster.StartAsync("b");
        Assert.That(b.Membership, Is.EqualTo(added), "the configuration in the log wins over Members");
        await cluster.StopAsync("d");
        d = await cluster.StartAsync("d", Join);
        Assert.That(d.Membership, Is.EqualTo(added));
    }

    private static void Join(GaggleOptions options) => options.Join = true;

    private static async Task<ManualTimeCluster> StartedAsync()
    {
        var cluster = new ManualTimeCluster(Seed, options => options.AddRpcHandler<string, string>("whoami", (_, _) => ValueTask.FromResult(options.NodeId)));
        foreach (var id in Seed)
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Any(n => n.IsLeader), "a leader");
        return cluster;
    }

    private static GaggleNode Leader(ManualTimeCluster cluster) => cluster.Nodes.Values.Single(n => n.IsLeader);

    private static GaggleNode Follower(ManualTimeCluster cluster) => cluster.Nodes.Values.First(n => !n.IsLeader && Seed.Contains(n.Id));

    private static async Task<T> RunAsync<T>(ManualTimeCluster cluster, Task<T> task, string what)
    {
        await cluster.AdvanceUntilAsync(() => task.IsCompleted, what);
        return await task;
    }

    private static async Task RunAsync(ManualTimeCluster cluster, Task task, string what)
    {
        await cluster.AdvanceUntilAsync(() => task.IsCompleted, what);
        await task;
    }

    private static async Task<GaggleMembershipException> FailureAsync(ManualTimeCluster cluster, Task task, string what)
    {
        await cluster.AdvanceUntilAsync(() => task.IsCompleted, what);
        var error = await ThrowsAsync<GaggleMembershipException>(() => task);
        await TestContext.Out.WriteLineAsync($"{what}: {error.Error}: {error.Message}");
        return error;
    }

    private static async Task<TException> ThrowsAsync<TException>(Func<Task> action)
        where TException : Exception
    {
        try
        {
            await action();
        }
        catch (TException e)
        {
            return e;
        }

        Assert.Fail($"Expected {typeof(TException).Name}, but nothing was thrown.");
        throw new InvalidOperationException();
    }
}

/// <summary>Watches a node's outgoing messages for TimeoutNow.</summary>
internal sealed class TimeoutNowWatch(string id, IChannel inner, Action onTimeoutNow) : IChannel
{
    public string NodeId => inner.NodeId;

    public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default) => inner.ConnectAsync(receiver, cancellationToken);

    public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

    public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (WireCodec.Decode(payload, id, to) is RaftWireMessage { Message.Type: MessageType.TimeoutNow })
        {
            onTimeoutNow();
        }

        return inner.SendAsync(to, payload, cancellationToken);
    }

    public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => inner.BroadcastAsync(payload, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
