using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using StackExchange.Redis;
using static Gaggle.Redis.Tests.ElasticCluster;

namespace Gaggle.Redis.Tests;

/// <summary>
/// The web app sample in elastic mode under the faults its platform deals out, each under load
/// (<see cref="ClusterLoad"/>: appends, lock holds, fenced counters, the singleton job), which must
/// never lose an acknowledged append, grant a lock twice at once, let a fencing token go back or run
/// the job twice at once: a rolling restart by SIGKILL, scaling out and in at once, a Redis that forgets
/// the cluster's generation, a voter frozen past the member timeout, and a rolling deploy by SIGTERM of
/// ten instances while the leader is frozen.
/// </summary>
/// <remarks>Every wait is for a condition, with a generous deadline (the machine may be busy), never a guess at timing.</remarks>
[TestFixture]
[Category("Redis")]
[NonParallelizable]
public sealed class ElasticFaultWebAppTests
{
    /// <summary>Dead members go quickly (the shortest the default election timeouts allow is 2 s).</summary>
    private static readonly TimeSpan MemberTimeout = TimeSpan.FromSeconds(3);

    /// <summary>The sample's default lock lease (Gaggle:LockLeaseDuration).</summary>
    private static readonly TimeSpan LockLease = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private readonly List<WebAppProcess> _started = [];
    private string _redis = "";
    private string _cluster = "";

    [SetUp]
    public async Task SetUp()
    {
        _redis = await RedisServer.RequireAsync();
        _cluster = "fault-" + Guid.NewGuid().ToString("N")[..8];
    }

    [TearDown]
    public void TearDown()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
        {
            DumpOutput(_started, $"{TestContext.CurrentContext.Result.Message}\n{TestContext.CurrentContext.Result.StackTrace}");
        }

        _started.ForEach(a => a.Dispose());
        _started.Clear();
    }

    [Test]
    public async Task ARollingRestartBySigkillOneInstanceAtATimeKeepsTheClusterAndItsGuarantees()
    {
        var apps = Enumerable.Range(0, 3).Select(i => Start($"v0-{i}")).ToList();
        await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
        var load = ClusterLoad.Start(apps);
        try
        {
            await ProgressAsync(load, "before the first kill");
            for (int i = 0; i < apps.Count; i++)
            {
                // No warning: the killed instance's locks end by their lease, its seat when the leader
                // has not heard from it for the member timeout; its replacement is a new member.
                load.Remove(apps[i]);
                apps[i].Kill();
                apps[i] = Start($"v1-{i}");
                await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
                load.Add(apps[i]);
                await ProgressAsync(load, $"after replacing instance {i}");
            }
        }
        finally
        {
            await load.StopAsync();
        }

        await load.VerifyAsync(await LeaderAsync(apps, generation: 1, Deadline), _started, Deadline);
    }

    [Test]
    public async Task ScalingFromOneToSevenToTwoToThreeKeepsOneWorkingCluster()
    {
        var apps = new List<WebAppProcess> { Start("first") };
        await OneClusterAsync(apps, generation: 1, Deadline, voters: 1, exact: true);
        var load = ClusterLoad.Start(apps);
        try
        {
            var added = Enumerable.Range(1, 6).Select(i => Start($"out-{i}")).ToList();
            apps.AddRange(added);
            var seven = await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
            added.ForEach(load.Add);
            await ProgressAsync(load, "with seven instances");

            // Keep two learners: every voter, the leader among them, stops at once.
            var learners = seven.Single(s => s.IsLeader).Learners;
            var keep = apps.Where((_, i) => learners.Contains(seven[i].MemberId)).Take(2).ToList();
            var leaving = apps.Except(keep).ToList();
            leaving.ForEach(load.Remove);
            leaving.ForEach(a => a.Terminate());
            var watch = Stopwatch.StartNew();
            foreach (var app in leaving)
            {
                var left = Deadline - watch.Elapsed;
                Assert.That(app.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero), Is.EqualTo(0), $"{app.Id} stops cleanly after SIGTERM within {Deadline.TotalSeconds:0} s of the others");
                Assert.That(app.Output, Does.Not.Contain("could not leave the cluster gracefully"), $"{app.Id} left gracefully");
            }

            TestContext.Out.WriteLine($"Five instances stopped at once in {watch.Elapsed.TotalSeconds:0.0} s.");
            await OneClusterAsync(keep, generation: 1, Deadline, voters: null, exact: true);
            await ProgressAsync(load, "with the two instances left");
            foreach (var app in keep)
            {
                await AppendAsync(app, $$"""{"after":"scale-in","on":"{{app.Id}}"}""");
                await ReleaseAsync(app, "after-scale-in", await AcquireAsync(app, "after-scale-in"));
            }

            var last = Start("again");
            apps = [.. keep, last];
            await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
            load.Add(last);
            await ProgressAsync(load, "after scaling out to three");
        }
        finally
        {
            await load.StopAsync();
        }

        await load.VerifyAsync(await LeaderAsync(apps, generation: 1, Deadline), _started, Deadline);
    }

    [Test]
    public async Task NewInstancesJoinTheLiveClusterWhenRedisForgotItsGenerationAndTheKeyIsRestored()
    {
        var apps = Enumerable.Range(0, 3).Select(i => Start($"old-{i}")).ToList();
        await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
        var before = ClusterLoad.Start(apps);
        try
        {
            await ProgressAsync(before, "before the flush");
        }
        finally
        {
            await before.StopAsync();
            await TestContext.Out.WriteLineAsync($"After the first load: {await before.DescribeLockAsync()}");
        }

        // Every grant was released (the next load takes the same lock name): none left held for a
        // client that never learned its token. A release whose commit timed out on a busy machine
        // frees the lock when its lease ends (nobody renews it); a hold kept for a client is renewed
        // for ever.
        Assert.That(before.UnreleasedGrants, Is.Zero, "grants of the first load not released");
        long[] holders = await ClusterLoad.LockHoldersAsync(apps[0]);
        for (var waited = Stopwatch.StartNew(); holders.Length > 0 && waited.Elapsed < Deadline; holders = await ClusterLoad.LockHoldersAsync(apps[0]))
        {
            await Task.Delay(100);
        }

        Assert.That(holders, Is.Empty, "holders of the load's lock after the first load stopped");

        // The cluster is idle. Redis loses Gaggle's one key (a FLUSHALL, an eviction, a failover without
        // it), and keeps losing it while the newcomers start: they read no generation at all.
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_redis);
        var redis = connection.GetDatabase();
        Assert.That(GenerationNumber(await redis.StringGetAsync(GenerationKey(_cluster))), Is.EqualTo(1));
        using var flushing = new CancellationTokenSource();
        var flusher = Task.Run(async () =>
        {
            while (!flushing.IsCancellationRequested)
            {
                await redis.KeyDeleteAsync(GenerationKey(_cluster));
                await Task.Delay(20);
            }
        });
        var newcomers = Enumerable.Range(0, 2).Select(i => Start($"new-{i}")).ToList();
        try
        {
            apps.AddRange(newcomers);
            await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
        }
        finally
        {
            await flushing.CancelAsync();
            await flusher;
        }

        foreach (var app in newcomers)
        {
            Assert.That(app.Output, Does.Not.Contain("formed cluster generation"), $"{app.Id} joined the live cluster instead of forming one");
        }

        await Eventually.True(() => GenerationNumber(redis.StringGet(GenerationKey(_cluster))) == 1, "the leader to write generation 1 back", Deadline);
        var after = ClusterLoad.Start(apps);
        try
        {
            await ProgressAsync(after, "after the newcomers joined");
        }
        finally
        {
            await after.StopAsync();
        }

        var leader = await LeaderAsync(apps, generation: 1, Deadline);
        await before.VerifyAsync(leader, _started, Deadline);
        await after.VerifyAsync(leader, _started, Deadline);
        Assert.That(GenerationNumber(await redis.StringGetAsync(GenerationKey(_cluster))), Is.EqualTo(1), "still one generation");
    }

    [TestCase(true, TestName = "AVoterFrozenPastTheMemberTimeoutIsRemovedLosesItsHoldsAndRejoins(the leader)")]
    [TestCase(false, TestName = "AVoterFrozenPastTheMemberTimeoutIsRemovedLosesItsHoldsAndRejoins(a follower)")]
    public async Task AVoterFrozenPastTheMemberTimeoutIsRemovedLosesItsHoldsAndRejoins(bool leader)
    {
        var apps = Enumerable.Range(0, 3).Select(i => Start($"v-{i}")).ToList();
        var statuses = await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
        var load = ClusterLoad.Start(apps);
        try
        {
            await ProgressAsync(load, "before the freeze");

            // A voter holds a lock for a client and freezes (a long GC pause, a frozen VM).
            var frozen = apps[statuses.FindIndex(s => s.IsLeader == leader)];
            var others = apps.Where(a => a != frozen).ToList();
            long askedAt = Stopwatch.GetTimestamp();
            long held = await AcquireAsync(frozen, "frozen-holder");
            load.Remove(frozen);
            frozen.Pause();
            var takeover = others[0].Client.PostAsync("/locks/frozen-holder?timeoutMs=60000", null);

            // The others elect a leader and remove it; once its lease has expired the lock is theirs.
            await OneClusterAsync(others, generation: 1, Deadline, voters: null, exact: true);
            using var taken = await takeover.WaitAsync(Deadline);
            long takenAt = Stopwatch.GetTimestamp();
            Assert.That(taken.StatusCode, Is.EqualTo(HttpStatusCode.OK), await taken.Content.ReadAsStringAsync());
            long token = (await taken.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("fencingToken").GetInt64();
            Assert.That(token, Is.GreaterThan(held), "fencing tokens increase across the takeover");
            Assert.That(Stopwatch.GetElapsedTime(askedAt, takenAt), Is.GreaterThanOrEqualTo(LockLease), "nobody else holds the lock before the frozen holder's lease has expired");

            // Thawed, it learns it was removed, gives up its hold and joins again.
            frozen.Resume();
            await Eventually.True(
                () => frozen.Output.Contains($"The hold of lock frozen-holder (fencing token {held}) was lost", StringComparison.Ordinal)
                    && frozen.Output.Contains("was removed from cluster generation 1", StringComparison.Ordinal),
                $"{frozen.Id} to report its hold of frozen-holder lost and that it was removed",
                Deadline);
            using (var stale = await frozen.Client.DeleteAsync($"/locks/frozen-holder?token={held}"))
            {
                Assert.That(stale.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "the thawed instance no longer holds the lock");
            }

            await ReleaseAsync(others[0], "frozen-holder", token);
            await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
            load.ExemptUntilNow(frozen);
            load.Add(frozen);
            await ProgressAsync(load, "after it rejoined");
        }
        finally
        {
            await load.StopAsync();
        }

        await load.VerifyAsync(await LeaderAsync(apps, generation: 1, Deadline), _started, Deadline);
    }

    [Test]
    public async Task ARollingDeployBySigtermWhileTheLeaderIsPausedKeepsTheClusterAndItsGuarantees()
    {
        // Ten instances, as a web app scaled out runs them: three voters and seven learners.
        var apps = Enumerable.Range(0, 10).Select(i => Start($"v0-{i}")).ToList();
        var statuses = await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
        var load = ClusterLoad.Start(apps);
        var watch = Stopwatch.StartNew();
        try
        {
            await ProgressAsync(load, "before the pause");

            // The leader, holding a lock for a client, freezes (a long GC pause, a frozen VM) and the
            // platform, which does not know, rolls a deploy over the others at once: the leader's fellow
            // voters first, so the first stop asks for a graceful leave while the others may not have
            // noticed yet that the leader is gone. The instance replaced last asks for the frozen leader's lock meanwhile.
            var paused = apps[statuses.FindIndex(s => s.IsLeader)];
            var voters = statuses.Single(s => s.IsLeader).Voters;
            var rolled = apps.Where(a => a != paused).OrderBy(a => voters.Contains(statuses[apps.IndexOf(a)].MemberId) ? 0 : 1).ToList();
            var taker = rolled[^1];
            long askedAt = Stopwatch.GetTimestamp();
            long held = await AcquireAsync(paused, "paused-holder");
            load.Remove(paused);
            paused.Pause();

            // Once the frozen holder's lease has expired, and not before, the lock is the taker's; it lets
            // go at once, and is itself replaced only after that.
            async Task TakeOverAsync()
            {
                using var taken = await taker.Client.PostAsync("/locks/paused-holder?timeoutMs=60000", null);
                long takenAt = Stopwatch.GetTimestamp();
                Assert.That(taken.StatusCode, Is.EqualTo(HttpStatusCode.OK), await taken.Content.ReadAsStringAsync());
                long token = (await taken.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("fencingToken").GetInt64();
                Assert.That(token, Is.GreaterThan(held), "fencing tokens increase across the takeover");
                Assert.That(Stopwatch.GetElapsedTime(askedAt, takenAt), Is.GreaterThanOrEqualTo(LockLease), "nobody else holds the lock before the frozen holder's lease has expired");
                await ReleaseAsync(taker, "paused-holder", token);
            }

            var takeover = TakeOverAsync();
            for (int i = 0; i < rolled.Count; i++)
            {
                var old = rolled[i];
                if (old == taker)
                {
                    await takeover.WaitAsync(Deadline);
                }

                load.Remove(old);
                old.Terminate();
                AssertStopsGracefully(old);
                rolled[i] = Start($"v1-{i}");

                // The old member is gone and the new one counts (the paused leader too is gone once the
                // leader has not heard from it for the member timeout).
                await OneClusterAsync(rolled, generation: 1, Deadline, exact: true);
                load.Add(rolled[i]);
                await ProgressAsync(load, $"after replacing {old.Id} by {rolled[i].Id} while the old leader is paused");
            }

            TestContext.Out.WriteLine($"Nine instances replaced while the leader was paused in {watch.Elapsed.TotalSeconds:0.0} s.");

            // Thawed, the old leader finds none of the members it led: it learns that it was removed,
            // gives up its hold and joins again as a new incarnation. What it was asked before its pause
            // is exempt from the load's checks, as its holds' leases rightly expired under it.
            paused.Resume();
            await Eventually.True(
                () => paused.Output.Contains($"The hold of lock paused-holder (fencing token {held}) was lost", StringComparison.Ordinal)
                    && paused.Output.Contains("was removed from cluster generation 1", StringComparison.Ordinal),
                $"{paused.Id} to report its hold of paused-holder lost and that it was removed",
                Deadline);
            using (var stale = await paused.Client.DeleteAsync($"/locks/paused-holder?token={held}"))
            {
                Assert.That(stale.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "the thawed instance no longer holds the lock");
            }

            apps = [.. rolled, paused];
            await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
            load.ExemptUntilNow(paused);
            load.Add(paused);
            await ProgressAsync(load, $"after {paused.Id} rejoined");

            // And the deploy replaces it too.
            load.Remove(paused);
            paused.Terminate();
            AssertStopsGracefully(paused);
            apps[^1] = Start("v1-last");
            await OneClusterAsync(apps, generation: 1, Deadline, exact: true);
            load.Add(apps[^1]);
            await ProgressAsync(load, $"after replacing {paused.Id}, the old leader");
            TestContext.Out.WriteLine($"The deploy took {watch.Elapsed.TotalSeconds:0.0} s.");
        }
        finally
        {
            await load.StopAsync();
        }

        await load.VerifyAsync(await LeaderAsync(apps, generation: 1, Deadline), _started, Deadline);
    }

    /// <summary>
    /// After SIGTERM the instance exits with code 0 within the host's shutdown timeout (30 s) and a
    /// margin, having left the cluster gracefully (released its locks, handed over its seat and its
    /// leadership, been removed) rather than been left for the leader to remove after the member timeout.
    /// </summary>
    private static void AssertStopsGracefully(WebAppProcess app)
    {
        var limit = TimeSpan.FromSeconds(45);
        var watch = Stopwatch.StartNew();
        Assert.That(app.WaitForExit(limit), Is.EqualTo(0), $"{app.Id} stops cleanly within {limit.TotalSeconds:0} s of SIGTERM");
        Assert.That(app.Output, Does.Not.Contain("could not leave the cluster gracefully"), $"{app.Id} left gracefully");
        Assert.That(app.Output, Does.Contain("left the cluster; now"), $"{app.Id} reports that it left");
        string left = app.Output.Split('\n').First(line => line.Contains("left the cluster; now", StringComparison.Ordinal));
        TestContext.Out.WriteLine($"{app.Id} exited {watch.Elapsed.TotalSeconds:0.0} s after SIGTERM: {left.Trim()}");
    }

    private WebAppProcess Start(string label)
    {
        var app = WebAppProcess.StartElastic(WebAppProcess.Assembly(), _redis, _cluster, label, [$"--Gaggle:MemberTimeout={MemberTimeout}", .. ClusterLoad.Arguments]);
        _started.Add(app);
        return app;
    }

    /// <summary>The cluster works: twenty more appends are acknowledged, three more lock grants and fenced writes made.</summary>
    private static async Task ProgressAsync(ClusterLoad load, string when)
    {
        var before = load.Done;
        string start = load.Summary;
        try
        {
            await Eventually.True(
                () => load.Done is var now && now.Appends >= before.Appends + 20 && now.Grants >= before.Grants + 3 && now.Writes >= before.Writes + 3,
                $"more appends, lock grants and fenced writes {when}",
                Deadline);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message} At the start: {start}. At the end: {load.Summary}. {await load.DescribeLockAsync()}.", e);
        }
    }

    private static async Task AppendAsync(WebAppProcess app, string body)
    {
        using var response = await app.Client.PostAsync("/log", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"append on {app.Id}: {await response.Content.ReadAsStringAsync()}");
    }

    private static async Task<long> AcquireAsync(WebAppProcess app, string name)
    {
        using var response = await app.Client.PostAsync($"/locks/{name}?timeoutMs=20000", null);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"acquire {name} on {app.Id}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("fencingToken").GetInt64();
    }

    private static async Task ReleaseAsync(WebAppProcess app, string name, long token)
    {
        using var response = await app.Client.DeleteAsync($"/locks/{name}?token={token}");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"release {name} ({token}) on {app.Id}: {await response.Content.ReadAsStringAsync()}");
    }
}
