using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>
/// The web app sample as its users run it: three processes on loopback ports, one Gaggle node each,
/// over the test Redis. Every endpoint is exercised; then one instance is killed and locks and the log
/// keep working on the other two.
/// </summary>
[TestFixture]
[Category("Redis")]
[NonParallelizable]
public sealed class WebAppSmokeTests
{
    private static readonly string[] Ids = ["web-a", "web-b", "web-c"];

    [Test]
    public async Task EveryEndpointWorksAndLocksAndTheLogSurviveAKilledInstance()
    {
        var redis = await RedisServer.RequireAsync();
        var assembly = WebAppProcess.Assembly();
        string cluster = "webapp-" + Guid.NewGuid().ToString("N")[..8];
        var apps = Ids.Select(id => WebAppProcess.Start(assembly, redis, cluster, id, Ids)).ToList();
        try
        {
            string leader = await AgreeOnLeaderAsync(apps);

            // Health follows the node: a leader is known everywhere. On a loaded machine a new leader may
            // step down once (check-quorum) before it settles, and health says so meanwhile: wait for 200.
            foreach (var app in apps)
            {
                await Until(
                    async () =>
                    {
                        using var health = await app.Client.GetAsync("/health");
                        return health.StatusCode == HttpStatusCode.OK;
                    },
                    app.Id + " /health to answer 200",
                    TimeSpan.FromSeconds(10));
            }

            await LocksAsync(apps[0], apps[1]);
            await BadRequestsAsync(apps[2]);
            await LogAsync(apps, apps);
            await JobsAsync(apps);
            await CountersAsync(apps);

            // Kill the leader: the two survivors elect one of themselves and carry on.
            var victim = apps.Single(a => a.Id == leader);
            victim.Kill();
            var survivors = apps.Where(a => a != victim).ToList();
            string newLeader = await AgreeOnLeaderAsync(survivors);
            Assert.That(newLeader, Is.Not.EqualTo(leader));
            await LocksAsync(survivors[0], survivors[1]);
            await LogAsync(survivors, survivors);

            // Kill a second one: the last instance is cut off from the majority. A lock is refused
            // (409, even a single try, after the lease at most) with a detail that says why.
            survivors[0].Kill();
            await NoLeaderAsync(survivors[1]);
        }
        catch
        {
            foreach (var app in apps)
            {
                TestContext.Out.WriteLine($"--- {app.Id} ---\n{app.Output}");
            }

            throw;
        }
        finally
        {
            apps.ForEach(a => a.Dispose());
        }
    }

    /// <summary>An invalid WebApp setting stops the start with a message naming the setting.</summary>
    [TestCase("WebApp:CleanupInterval", "00:00:00")]
    [TestCase("WebApp:CounterLockTimeout", "-00:00:01")]
    [TestCase("WebApp:CounterRetention", "-01:00:00")]
    public async Task AnInvalidSettingStopsTheStart(string key, string value)
    {
        var redis = await RedisServer.RequireAsync();
        string cluster = "webapp-" + Guid.NewGuid().ToString("N")[..8];
        using var app = WebAppProcess.Start(WebAppProcess.Assembly(), redis, cluster, "web-a", ["web-a"], $"--{key}={value}");
        int? exitCode = app.WaitForExit(TimeSpan.FromSeconds(30));
        Assert.That(exitCode, Is.Not.Null.And.Not.Zero, $"the start with {key}={value} was not refused:\n{app.Output}");
        Assert.That(app.Output, Does.Contain(key).And.Contain(value), "the message names the setting and its value");
    }

    /// <summary>Without a majority there is no leader; a lock request answers 409 and says so.</summary>
    private static async Task NoLeaderAsync(WebAppProcess alone)
    {
        await Until(async () => (await alone.Client.GetFromJsonAsync<JsonElement>("/status")).GetProperty("leaderId").ValueKind == JsonValueKind.Null,
            $"{alone.Id} to see no leader", TimeSpan.FromSeconds(30));
        using var response = await alone.Client.PostAsync("/locks/alone", null);
        string body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), body);
        Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), Does.Contain("knows no leader"), body);
    }

    /// <summary>Every instance answers /status and names the same leader, which alone says it leads.</summary>
    private static async Task<string> AgreeOnLeaderAsync(IReadOnlyList<WebAppProcess> apps)
    {
        string? leader = null;
        await Until(async () =>
        {
            var statuses = new List<JsonElement>();
            foreach (var app in apps)
            {
                if (app.HasExited)
                {
                    Assert.Fail($"{app.Id} exited:\n{app.Output}");
                }

                try
                {
                    statuses.Add(await app.Client.GetFromJsonAsync<JsonElement>("/status"));
                }
                catch (HttpRequestException)
                {
                    return false; // not listening yet
                }
            }

            var leaders = statuses.Select(s => s.GetProperty("leaderId").GetString()).Distinct().ToList();
            if (leaders is not [{ } only] || statuses.Count(s => s.GetProperty("isLeader").GetBoolean()) != 1)
            {
                return false;
            }

            var self = statuses.Single(s => s.GetProperty("isLeader").GetBoolean());
            Assert.That(self.GetProperty("memberId").GetString(), Is.EqualTo(only));
            Assert.That(statuses.Select(s => s.GetProperty("term").GetInt64()).Distinct().Count(), Is.EqualTo(1), "one term");
            leader = only;
            return true;
        }, "every instance to report the same single leader", TimeSpan.FromSeconds(60));
        return leader!;
    }

    /// <summary>Acquire on one instance, 409 on the other, 404 for a hold it does not have, release, acquire again with a higher token.</summary>
    private static async Task LocksAsync(WebAppProcess first, WebAppProcess second)
    {
        string name = "smoke-" + Guid.NewGuid().ToString("N")[..6];
        long token = await AcquireAsync(first, name);

        using (var busy = await second.Client.PostAsync($"/locks/{name}?timeoutMs=300", null))
        {
            Assert.That(busy.StatusCode, Is.EqualTo(HttpStatusCode.Conflict), "a lock held elsewhere is not granted");
        }

        await ExpectStatus(second.Client.DeleteAsync($"/locks/{name}?token={token}"), HttpStatusCode.NotFound, "the other instance does not hold it");
        await ExpectStatus(first.Client.DeleteAsync($"/locks/{name}?token={token + 1}"), HttpStatusCode.NotFound, "a wrong token releases nothing");
        await ExpectStatus(first.Client.DeleteAsync($"/locks/{name}?token={token}"), HttpStatusCode.OK, "release");
        await ExpectStatus(first.Client.DeleteAsync($"/locks/{name}?token={token}"), HttpStatusCode.NotFound, "a second release");

        long next = await AcquireAsync(second, name);
        Assert.That(next, Is.GreaterThan(token), "fencing tokens increase with every grant");
        await ExpectStatus(second.Client.DeleteAsync($"/locks/{name}?token={next}"), HttpStatusCode.OK, "release on the second instance");
    }

    private static async Task<long> AcquireAsync(WebAppProcess app, string name)
    {
        using var response = await app.Client.PostAsync($"/locks/{name}?timeoutMs=10000", null);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"acquire {name} on {app.Id}: {await response.Content.ReadAsStringAsync()}");
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(body.GetProperty("name").GetString(), Is.EqualTo(name));
        return body.GetProperty("fencingToken").GetInt64();
    }

    private static async Task BadRequestsAsync(WebAppProcess app)
    {
        await ExpectProblem(app.Client.PostAsync("/locks/bad%20name?timeoutMs=10", null), "name");
        await ExpectProblem(app.Client.PostAsync("/locks/gaggle:job:counter-cleanup", null), "name");
        await ExpectProblem(app.Client.PostAsync("/locks/ok?timeoutMs=soon", null), "timeoutMs");
        await ExpectProblem(app.Client.PostAsync("/locks/ok?timeoutMs=-1", null), "timeoutMs");
        await ExpectProblem(app.Client.DeleteAsync("/locks/ok?token=x"), "token");
        await ExpectProblem(app.Client.GetAsync("/log?from=first"), "from");
        await ExpectProblem(app.Client.PostAsync("/log", new StringContent("{not json", Encoding.UTF8, "application/json")), "body");
        await ExpectProblem(app.Client.PostAsync("/counters/a%20b/increment", null), "name");
    }

    /// <summary>Entries posted on each writer are committed and listed, in order and with their JSON, by every reader.</summary>
    private static async Task LogAsync(IReadOnlyList<WebAppProcess> writers, IReadOnlyList<WebAppProcess> readers)
    {
        string run = Guid.NewGuid().ToString("N")[..6];
        var posted = new List<(long Index, string Writer)>();
        foreach (var writer in writers)
        {
            using var response = await writer.Client.PostAsync("/log", new StringContent($$"""{"run":"{{run}}","writer":"{{writer.Id}}","items":[1,2]}""", Encoding.UTF8, "application/json"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"append on {writer.Id}: {await response.Content.ReadAsStringAsync()}");
            posted.Add(((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("index").GetInt64(), writer.Id));
        }

        Assert.That(posted.Select(p => p.Index), Is.Ordered.Ascending.And.Unique);
        long from = posted[0].Index;
        foreach (var reader in readers)
        {
            await Until(async () =>
            {
                var entries = await reader.Client.GetFromJsonAsync<JsonElement[]>($"/log?from={from}");
                var mine = entries!.Where(e => e.GetProperty("data").ValueKind == JsonValueKind.Object
                    && e.GetProperty("data").TryGetProperty("run", out var r) && r.GetString() == run).ToList();
                if (mine.Count < posted.Count)
                {
                    return false;
                }

                Assert.That(entries!.All(e => e.GetProperty("index").GetInt64() >= from), "from filters by index");
                Assert.That(mine.Select(e => (e.GetProperty("index").GetInt64(), e.GetProperty("data").GetProperty("writer").GetString()!)), Is.EqualTo(posted));
                Assert.That(mine.Select(e => e.GetProperty("data").GetProperty("items").GetArrayLength()), Is.All.EqualTo(2));
                return true;
            }, $"{reader.Id} to list the entries posted in run {run}");
        }
    }

    /// <summary>The cleanup job runs on exactly one of the instances.</summary>
    private static async Task JobsAsync(IReadOnlyList<WebAppProcess> apps)
    {
        await Until(async () =>
        {
            var runs = new List<JsonElement>();
            foreach (var app in apps)
            {
                runs.AddRange((await app.Client.GetFromJsonAsync<JsonElement[]>("/jobs"))!);
            }

            if (runs.Count != 1)
            {
                return false;
            }

            Assert.That(runs[0].GetProperty("name").GetString(), Is.EqualTo("counter-cleanup"));
            Assert.That(runs[0].GetProperty("fencingToken").GetInt64(), Is.Positive);
            Assert.That(runs[0].GetProperty("since").GetDateTimeOffset(), Is.LessThanOrEqualTo(DateTimeOffset.UtcNow.AddSeconds(5)));
            return true;
        }, "exactly one instance to run the cleanup job");
    }

    /// <summary>Concurrent increments from every instance serialize on the counter's lock; each write carries a higher fence.</summary>
    private static async Task CountersAsync(IReadOnlyList<WebAppProcess> apps)
    {
        string name = "hits-" + Guid.NewGuid().ToString("N")[..6];
        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(async i =>
        {
            using var response = await apps[i % apps.Count].Client.PostAsync($"/counters/{name}/increment", null);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.That(body.GetProperty("name").GetString(), Is.EqualTo(name));
            return (Value: body.GetProperty("value").GetInt64(), Fence: body.GetProperty("fencingToken").GetInt64());
        }));

        var byValue = results.OrderBy(r => r.Value).ToList();
        Assert.That(byValue.Select(r => r.Value), Is.EqualTo(new long[] { 1, 2, 3, 4, 5, 6 }), "no increment lost or doubled");
        Assert.That(byValue.Select(r => r.Fence), Is.Ordered.Ascending.And.Unique, "each write under a newer grant");
    }

    private static async Task ExpectStatus(Task<HttpResponseMessage> request, HttpStatusCode expected, string what)
    {
        using var response = await request;
        Assert.That(response.StatusCode, Is.EqualTo(expected), $"{what}: {await response.Content.ReadAsStringAsync()}");
    }

    private static async Task ExpectProblem(Task<HttpResponseMessage> request, string field)
    {
        using var response = await request;
        string body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), body);
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"), body);
        Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("errors").TryGetProperty(field, out _), Is.True, $"the problem names {field}: {body}");
    }

    /// <summary>Polls <paramref name="condition"/> until it holds, failing after <paramref name="deadline"/>.</summary>
    private static async Task Until(Func<Task<bool>> condition, string what, TimeSpan? deadline = null)
    {
        var limit = deadline ?? TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Gave up after {limit.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(20);
        }
    }
}
