using System.Diagnostics;
using System.Net.Http.Json;
using NUnit.Framework;
using static Gaggle.Redis.Tests.ElasticCluster;

namespace Gaggle.Redis.Tests;

/// <summary>
/// The web app sample in elastic mode, as its README runs it: processes given only the Redis and the
/// cluster's name (and a port) form one cluster by themselves; when every one of them is killed, new
/// ones form the next generation once the member timeout has passed without a sign of the old one.
/// </summary>
[TestFixture]
[Category("Redis")]
[NonParallelizable]
public sealed class ElasticWebAppTests
{
    [Test]
    public async Task EightInstancesStartedAtTheSameMomentFormOneClusterWithThreeVoters()
    {
        var redis = await RedisServer.RequireAsync();
        string cluster = "elastic-" + Guid.NewGuid().ToString("N")[..8];
        var apps = Enumerable.Range(0, 8).Select(i => WebAppProcess.StartElastic(WebAppProcess.Assembly(), redis, cluster, $"pod-{i}")).ToList();
        try
        {
            var statuses = await OneClusterAsync(apps, generation: 1, TimeSpan.FromSeconds(45));
            Assert.That(statuses.Select(s => s.MemberId).Distinct().Count(), Is.EqualTo(8), "every process is a member of its own");
            Assert.That(await RecordedGenerationAsync(redis, cluster), Is.EqualTo(1), "one claim won; every other instance joined its cluster");
        }
        catch (Exception e)
        {
            DumpOutput(apps, e.ToString());
            throw;
        }
        finally
        {
            apps.ForEach(a => a.Dispose());
        }
    }

    [Test]
    public async Task WhenEveryInstanceIsKilledNewOnesFormTheNextGenerationAfterTheMemberTimeout()
    {
        var redis = await RedisServer.RequireAsync();
        string cluster = "elastic-" + Guid.NewGuid().ToString("N")[..8];
        var memberTimeout = TimeSpan.FromSeconds(3);
        string[] timing = [$"--Gaggle:MemberTimeout={memberTimeout}"];
        var first = Enumerable.Range(0, 3).Select(i => WebAppProcess.StartElastic(WebAppProcess.Assembly(), redis, cluster, $"first-{i}", timing)).ToList();
        var second = new List<WebAppProcess>();
        try
        {
            var before = await OneClusterAsync(first, generation: 1, TimeSpan.FromSeconds(40));

            // SIGKILL all of them: nobody leaves cleanly, nothing tells the newcomers the old cluster is gone.
            first.ForEach(a => a.Kill());
            var sinceKill = Stopwatch.StartNew();
            second.AddRange(Enumerable.Range(0, 3).Select(i => WebAppProcess.StartElastic(WebAppProcess.Assembly(), redis, cluster, $"second-{i}", timing)));
            var after = await OneClusterAsync(second, generation: 2, TimeSpan.FromSeconds(40));
            Assert.That(sinceKill.Elapsed, Is.GreaterThanOrEqualTo(memberTimeout), "a recorded generation is replaced only after the member timeout of silence");
            Assert.That(after.Select(s => s.MemberId), Has.None.AnyOf(before.Select(s => s.MemberId).ToArray()), "new processes are new members");
            Assert.That(await RecordedGenerationAsync(redis, cluster), Is.EqualTo(2));
        }
        catch (Exception e)
        {
            DumpOutput([.. first, .. second], e.ToString());
            throw;
        }
        finally
        {
            first.ForEach(a => a.Dispose());
            second.ForEach(a => a.Dispose());
        }
    }

    [Test]
    public async Task ThreeRollingRestartsBySigtermKeepTheClusterAndEveryAcknowledgedAppend()
    {
        var redis = await RedisServer.RequireAsync();
        string cluster = "elastic-" + Guid.NewGuid().ToString("N")[..8];
        var apps = Enumerable.Range(0, 3).Select(i => WebAppProcess.StartElastic(WebAppProcess.Assembly(), redis, cluster, $"v0-{i}")).ToList();
        var retired = new List<WebAppProcess>();
        var acknowledged = new System.Collections.Concurrent.ConcurrentDictionary<long, string>();
        using var stopLoad = new CancellationTokenSource();
        try
        {
            await OneClusterAsync(apps, generation: 1, TimeSpan.FromSeconds(45));
            var load = Task.Run(async () =>
            {
                int n = 0;
                while (!stopLoad.IsCancellationRequested)
                {
                    var app = apps[n % apps.Count];
                    string body = $"{{\"n\":{n++}}}";
                    try
                    {
                        using var response = await app.Client.PostAsync("/log", new StringContent(body, System.Text.Encoding.UTF8, "application/json"), stopLoad.Token);
                        if (response.IsSuccessStatusCode)
                        {
                            var index = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(stopLoad.Token)).GetProperty("index").GetInt64();
                            acknowledged[index] = body;
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or OperationCanceledException)
                    {
                        // The instance is stopping, or just stopped: the next one is asked.
                    }
                }
            });

            for (int round = 1; round <= 3; round++)
            {
                for (int i = 0; i < apps.Count; i++)
                {
                    var old = apps[i];
                    old.Terminate();
                    Assert.That(old.WaitForExit(TimeSpan.FromSeconds(40)), Is.Not.Null, $"{old.Id} stops within its shutdown timeout");
                    retired.Add(old);
                    apps[i] = WebAppProcess.StartElastic(WebAppProcess.Assembly(), redis, cluster, $"v{round}-{i}");
                    await OneClusterAsync(apps, generation: 1, TimeSpan.FromSeconds(60));
                }
            }

            await stopLoad.CancelAsync();
            await load;
            Assert.That(acknowledged, Is.Not.Empty);
            await OneClusterAsync(apps, generation: 1, TimeSpan.FromSeconds(30));
            WebAppProcess? leader = null;
            foreach (var app in apps)
            {
                if ((await StatusAsync(app)).IsLeader)
                {
                    leader = app;
                }
            }

            Assert.That(leader, Is.Not.Null);
            var log = await leader!.Client.GetFromJsonAsync<System.Text.Json.JsonElement[]>("/log");
            var entries = log!.ToDictionary(e => e.GetProperty("index").GetInt64(), e => e.GetProperty("data").GetRawText());
            foreach (var (index, body) in acknowledged)
            {
                Assert.That(entries.ContainsKey(index), Is.True, $"the acknowledged append at {index} ({body}) survived nine replacements");
            }
        }
        catch (Exception e)
        {
            DumpOutput([.. retired, .. apps], e.ToString());
            throw;
        }
        finally
        {
            await stopLoad.CancelAsync();
            apps.ForEach(a => a.Dispose());
            retired.ForEach(a => a.Dispose());
        }
    }
}
