using System.Diagnostics;
using System.Text;
using Gaggle.Redis;

namespace Gaggle.Samples.Cluster;

/// <summary>
/// One node per process over Redis: start one process per member id with the same cluster name.
/// Each appends an entry every half second and prints what its node sees; stop any process (even
/// the leader's, even with kill -9) and the others carry on.
/// </summary>
internal static class SingleNode
{
    public static async Task<int> RunAsync(DemoSettings settings)
    {
        var clock = Stopwatch.StartNew();
        void Say(string text) => Console.WriteLine($"[{clock.Elapsed.TotalSeconds,7:0.000} s] {text}");
        var options = new GaggleOptions { NodeId = settings.Id!, Members = settings.MemberIds };
        var builder = new GaggleNodeBuilder(options).UseRedis(settings.Redis!, redis => redis.ClusterName = settings.Cluster);
        if (settings.Data is { } data)
        {
            builder.UseFileStorage(Path.Combine(data, options.NodeId));
        }

        await using var node = builder.Build();
        node.LeaderChanged += (_, change) => Say(change.LeaderId is null
            ? $"no leader (term {change.Term})"
            : $"leader is {change.LeaderId} in term {change.Term}{(change.IsLeader ? " (this node)" : "")}");
        node.Committed += (_, entry) => Say($"committed #{entry.Index}: {Encoding.UTF8.GetString(entry.Data.Span)}");

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        if (settings.Duration is { } seconds)
        {
            stop.CancelAfter(TimeSpan.FromSeconds(seconds));
        }

        Say($"{options.NodeId} joining cluster '{settings.Cluster}' on Redis {settings.Redis} with members {string.Join(", ", options.Members)}"
            + (settings.Data is null ? " (log in memory)" : $" (log in {Path.Combine(settings.Data, options.NodeId)})"));
        await node.StartAsync(stop.Token);
        int committed = 0;
        int failed = 0;
        for (int i = 1; !stop.IsCancellationRequested; i++)
        {
            try
            {
                await node.AppendAsync(Encoding.UTF8.GetBytes($"{options.NodeId} says #{i}"), TimeSpan.FromSeconds(5), stop.Token);
                committed++;
                await Task.Delay(settings.IntervalMs, stop.Token);
            }
            catch (TimeoutException e)
            {
                failed++;
                Say(e.Message);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        Say($"{options.NodeId} leaving: {committed} of its appends committed, {failed} timed out; commit index {node.CommitIndex}");
        return 0;
    }
}
