using System.Diagnostics;
using System.Net.Http.Json;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>What <c>GET /status</c> of the web app sample answers.</summary>
internal sealed record WebAppStatus(string MemberId, bool IsLeader, string? LeaderId, long Term, long CommitIndex, long Generation, string[] Voters, string[] Learners)
{
    public IEnumerable<string> Members => Voters.Concat(Learners);

    public override string ToString()
        => $"{MemberId}: leader {LeaderId} term {Term} commit {CommitIndex} generation {Generation} voters [{string.Join(",", Voters)}] learners [{string.Join(",", Learners)}]";
}

/// <summary>Waits for and inspects a cluster of web app instances in elastic mode, through their <c>/status</c>.</summary>
internal static class ElasticCluster
{
    /// <summary>
    /// Polls every instance's <c>/status</c> until they all name the same leader (which alone says it
    /// leads) and the same <paramref name="generation"/>, each lists <paramref name="voters"/> voters
    /// (any number when null) and every instance among its voters and learners; with
    /// <paramref name="exact"/>, also no other member (the dead are gone) and only instances as voters.
    /// </summary>
    public static async Task<List<WebAppStatus>> OneClusterAsync(
        IReadOnlyList<WebAppProcess> apps, long generation, TimeSpan deadline, int? voters = 3, bool exact = false)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var statuses = new List<WebAppStatus>();
            var silent = new List<string>();
            foreach (var app in apps)
            {
                if (app.HasExited)
                {
                    Assert.Fail($"{app.Id} exited:\n{app.Output}");
                }

                try
                {
                    statuses.Add(await StatusAsync(app));
                }
                catch (HttpRequestException)
                {
                    silent.Add(app.Id); // not listening yet
                }
            }

            if (silent.Count == 0 && IsOneCluster(statuses, generation, voters, exact))
            {
                return statuses;
            }

            if (watch.Elapsed > deadline)
            {
                throw new TimeoutException(
                    $"Gave up after {deadline.TotalSeconds:0} s waiting for one cluster of generation {generation} with {voters?.ToString() ?? "any number of"} voters"
                    + $"{(exact ? " and exactly the running instances as members" : "")}; not answering: [{string.Join(", ", silent)}]; last seen:\n  {string.Join("\n  ", statuses)}");
            }

            await Task.Delay(250);
        }
    }

    public static async Task<WebAppStatus> StatusAsync(WebAppProcess app) => (await app.Client.GetFromJsonAsync<WebAppStatus>("/status"))!;

    /// <summary>The instance that says it leads, once every instance of <paramref name="apps"/> agrees on it.</summary>
    public static async Task<WebAppProcess> LeaderAsync(IReadOnlyList<WebAppProcess> apps, long generation, TimeSpan deadline, int? voters = 3)
    {
        var statuses = await OneClusterAsync(apps, generation, deadline, voters);
        return apps[statuses.FindIndex(s => s.IsLeader)];
    }

    /// <summary>The number of the generation recorded in <paramref name="cluster"/>'s key; 0 when none.</summary>
    public static async Task<long> RecordedGenerationAsync(string redis, string cluster)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis);
        return GenerationNumber(await connection.GetDatabase().StringGetAsync(GenerationKey(cluster)));
    }

    /// <summary>The generation number a value of the generation key holds (<c>id:changedAtMs:kind</c>, the number the id's low 16 bits); 0 for none.</summary>
    public static long GenerationNumber(RedisValue value)
        => value.IsNull ? 0 : Gaggle.Channels.GenerationIds.NumberOf(long.Parse(((string)value!).Split(':')[0], System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The one Redis key Gaggle keeps for an elastic cluster (see RedisPubSubChannel.Generation.cs).</summary>
    public static string GenerationKey(string cluster) => $"gaggle:{{{cluster}}}:generation";

    /// <summary>
    /// Writes every instance's output, a log entry repeated back to back once with a count, then
    /// <paramref name="failure"/> again: a CI log shown from its end then still says what failed.
    /// </summary>
    public static void DumpOutput(IEnumerable<WebAppProcess> apps, string? failure = null)
    {
        foreach (var app in apps)
        {
            TestContext.Out.WriteLine($"--- {app.Id} ---\n{string.Join("\n", Condensed(app.Output.Split('\n')))}");
        }

        if (failure is not null)
        {
            TestContext.Out.WriteLine($"--- failed (the output of each instance is above) ---\n{failure}");
        }
    }

    /// <summary>
    /// <paramref name="lines"/> with a block of one or two lines (a log entry is a header and a
    /// message) that repeats back to back written once, followed by how many times it repeated.
    /// </summary>
    internal static IEnumerable<string> Condensed(IReadOnlyList<string> lines)
    {
        int i = 0;
        while (i < lines.Count)
        {
            int block = 1;
            int repeats = Repeats(lines, i, 1);
            if (i + 1 < lines.Count && Repeats(lines, i, 2) is var pairs && pairs > 1 && pairs * 2 > repeats)
            {
                block = 2;
                repeats = pairs;
            }

            for (int k = 0; k < block; k++)
            {
                yield return lines[i + k];
            }

            if (repeats > 1)
            {
                yield return $"  (the {(block == 1 ? "line" : "two lines")} above {repeats} times in a row)";
            }

            i += block * repeats;
        }
    }

    /// <summary>How many times the <paramref name="block"/> lines at <paramref name="start"/> occur back to back from there.</summary>
    private static int Repeats(IReadOnlyList<string> lines, int start, int block)
    {
        int count = 1;
        while (start + (count + 1) * block <= lines.Count
            && Enumerable.Range(0, block).All(k => lines[start + k] == lines[start + count * block + k]))
        {
            count++;
        }

        return count;
    }

    private static bool IsOneCluster(List<WebAppStatus> statuses, long generation, int? voters, bool exact)
    {
        var leaders = statuses.Where(s => s.IsLeader).ToList();
        if (leaders.Count != 1)
        {
            return false;
        }

        string leader = leaders[0].MemberId;
        var running = statuses.Select(s => s.MemberId).ToHashSet(StringComparer.Ordinal);
        return statuses.All(s => s.LeaderId == leader
            && s.Generation == generation
            && (voters is null || s.Voters.Length == voters)
            && running.All(member => s.Members.Contains(member))
            && (!exact || s.Members.All(running.Contains)));
    }
}
