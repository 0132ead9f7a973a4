using Gaggle.Storage;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>Voter management by the leader (<see cref="GaggleOptions.Voters"/>), on a manual clock.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class AutopilotNodeTests
{
    private static readonly string[] Seed = ["a", "b", "c"];
    private static readonly TimeSpan MemberTimeout = TimeSpan.FromMilliseconds(1200);

    private static void Autopilot(GaggleOptions options)
    {
        options.Voters = 3;
        options.MemberTimeout = MemberTimeout;
    }

    private static void Join(GaggleOptions options) => options.Join = true;

    [Test]
    public async Task A_joining_node_is_added_and_takes_the_place_of_a_dead_voter()
    {
        await using var cluster = await StartedAsync();
        var d = await cluster.StartAsync("d", Join);
        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.All(n => n.Membership.Learners.Contains("d")), "d added as a learner by the leader");
        Assert.That(Leader(cluster).Membership.Voters, Is.EqualTo(Seed), "three voters already: d stays a learner");

        var dead = cluster.Nodes.Values.First(n => !n.IsLeader && n.Id != "d");
        await cluster.StopAsync(dead.Id);
        await cluster.AdvanceUntilAsync(
            () => cluster.Nodes.Values.All(n => n.Membership.Voters.Contains("d") && !n.Membership.Contains(dead.Id)),
            "the dead voter removed and d promoted");

        var voters = Leader(cluster).Membership.Voters;
        Assert.That(voters, Has.Count.EqualTo(3));
        Assert.That(cluster.Nodes.Values.Select(n => n.Membership.Index), Is.All.EqualTo(Leader(cluster).Membership.Index));
    }

    [Test]
    public async Task Fewer_live_members_than_voters_leave_the_largest_odd_number_of_voters_and_new_members_restore_them()
    {
        await using var cluster = await StartedAsync();
        var leader = Leader(cluster);
        var dead = cluster.Nodes.Values.First(n => !n.IsLeader);
        var other = cluster.Nodes.Values.Single(n => !n.IsLeader && n != dead);
        await cluster.StopAsync(dead.Id);

        // Two live members: one voter (the leader), the other a learner.
        await cluster.AdvanceUntilAsync(() => leader.Membership.Voters.Count == 1 && leader.Membership.Learners.Contains(other.Id), "two members: one voter");
        Assert.That(leader.Membership.Voters, Is.EqualTo(new[] { leader.Id }));
        Assert.That(leader.Membership.Contains(dead.Id), Is.False);

        await cluster.StartAsync("d", Join);
        await cluster.AdvanceUntilAsync(() => leader.Membership.Voters.Count == 3, "three members: three voters");
        Assert.That(leader.Membership.Voters, Is.EquivalentTo(new[] { leader.Id, other.Id, "d" }));
    }

    [Test]
    public async Task A_voter_cut_off_past_the_member_timeout_is_removed_told_so_when_it_is_back_and_added_again()
    {
        await using var cluster = await StartedAsync();
        var leader = Leader(cluster);
        var cut = cluster.Nodes.Values.First(n => !n.IsLeader);
        cluster.Network.Isolate(cut.Id);
        await cluster.AdvanceUntilAsync(() => !leader.Membership.Contains(cut.Id), "the unreachable voter removed");
        Assert.That(cut.Membership.Voters, Does.Contain(cut.Id), "cut off, it never saw its removal");

        cluster.Network.Heal();
        await cluster.AdvanceUntilAsync(
            () => leader.Membership.Voters.Count == 3 && leader.Membership.Voters.Contains(cut.Id) && cut.Membership == leader.Membership,
            "the returning node told it was removed, added again and promoted");
        Assert.That(cluster.Nodes.Values.Count(n => n.IsLeader), Is.EqualTo(1));
    }

    [Test]
    public async Task A_node_whose_settings_differ_is_not_added()
    {
        await using var cluster = await StartedAsync();
        using var logs = new CapturingLoggerFactory();
        cluster.LoggerFactory = logs;
        await cluster.StartAsync("d", options =>
        {
            options.Join = true;
            options.AddRpcHandler<int, int>("only-on-d", (x, _) => ValueTask.FromResult(x));
        });

        long dropped = Leader(cluster).DroppedMessages;
        await cluster.AdvanceAsync(3 * MemberTimeout);
        Assert.That(cluster.Nodes.Values.Any(n => n.Membership.Contains("d")), Is.False, "a fingerprint mismatch is refused, not joined half-way");
        Assert.That(Leader(cluster).DroppedMessages, Is.GreaterThan(dropped), "the leader says why");
        Assert.That(logs.Lines.Where(l => l.Level == Microsoft.Extensions.Logging.LogLevel.Warning).Select(l => l.Message),
            Has.Exactly(1).Contains("Node d cannot join: leader").And.Contains("settings differ"), "and so does the joining node, once");
    }

    [Test]
    public void Voter_management_needs_odd_voters_a_member_list_a_long_member_timeout_and_durable_storage()
    {
        var options = NodeCluster.FastOptions("a", Seed);
        options.Voters = 4;
        options.MemberTimeout = TimeSpan.FromMilliseconds(100);
        var result = new GaggleOptionsValidator().Validate(null, options);
        Assert.That(result.Failures, Has.Some.Contains("Voters is 4; it must be 1, 3, 5 or 7"));
        Assert.That(result.Failures, Has.Some.Contains("MemberTimeout is 100 ms; it must be between 4 x ElectionTimeoutMax (1200 ms)"));

        options.Voters = 3;
        options.MemberTimeout = MemberTimeout;
        var error = Assert.Throws<ArgumentException>(() => _ = new GaggleNode(options, new Gaggle.Channels.InMemoryNetwork().CreateChannel("a"), new InMemoryRaftStorage()));
        Assert.That(error!.Message, Does.Contain("durable storage"));
    }

    private static async Task<ManualTimeCluster> StartedAsync()
    {
        var cluster = new ManualTimeCluster(Seed, Autopilot);
        foreach (var id in Seed)
        {
            await cluster.StartAsync(id);
        }

        await cluster.AdvanceUntilAsync(() => cluster.Nodes.Values.Any(n => n.IsLeader), "a leader");
        return cluster;
    }

    private static GaggleNode Leader(ManualTimeCluster cluster) => cluster.Nodes.Values.Single(n => n.IsLeader);
}
