using System.Diagnostics;

namespace Gaggle.Benchmarks.Processes;

/// <summary>
/// A Gaggle cluster over Redis with each node in its own process (<see cref="NodeProcess"/>), the
/// counterpart of <see cref="BenchCluster"/> for <c>--processes</c>. The node processes never outlive
/// this one: disposal kills what did not stop, so do Ctrl+C and process exit, and a node process exits
/// by itself when its stdin closes (whatever ended the driver).
/// </summary>
internal sealed class ProcessCluster : IAsyncDisposable
{
    private readonly List<NodeProcess> _nodes = [];
    private readonly HashSet<NodeProcess> _killed = [];

    private ProcessCluster()
    {
        Console.CancelKeyPress += KillAllOnCancel;
        AppDomain.CurrentDomain.ProcessExit += KillAllOnExit;
    }

    public IEnumerable<NodeProcess> Running => _nodes.Where(n => !_killed.Contains(n));

    public NodeProcess this[string id] => _nodes.Single(n => n.Id == id);

    /// <summary>The largest peak RSS any node process reported, in MB.</summary>
    public double PeakRssMb => _nodes.Max(n => n.PeakRssBytes) / (1024.0 * 1024.0);

    public static string StopMethod => "Process.Kill() of the leader's process (SIGKILL): a crash, no hand-over";

    /// <summary>
    /// Starts a process per node and measures the time from starting them (so process start-up is
    /// included) until every one names the same leader.
    /// </summary>
    public static async Task<(ProcessCluster Cluster, double ElectionMs)> StartAsync(LoadSettings settings, TimeSpan timeout)
    {
        string[] ids = BenchCluster.MemberIds(settings.Nodes);
        string clusterName = BenchCluster.NewClusterName();
        var cluster = new ProcessCluster();
        try
        {
            var clock = Stopwatch.StartNew();
            foreach (var id in ids)
            {
                var node = NodeProcess.Start(id, NodeHost.Arguments(settings, clusterName, ids, id));
                lock (cluster._nodes)
                {
                    cluster._nodes.Add(node);
                }
            }

            var leader = await cluster.AgreedLeaderAsync(timeout, previousTerm: 0).ConfigureAwait(false);
            double electionMs = clock.Elapsed.TotalMilliseconds;
            Console.Error.WriteLine($"leader {leader.Id} elected in term {leader.Term} after {electionMs:0.0} ms (process start-up included)");
            return (cluster, electionMs);
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<NodeStatus[]> StatusesAsync() => await Task.WhenAll(Running.Select(n => n.StatusAsync())).ConfigureAwait(false);

    /// <summary>Waits until every running node process names the same leader, in a term after <paramref name="previousTerm"/>.</summary>
    public async Task<NodeStatus> AgreedLeaderAsync(TimeSpan timeout, long previousTerm)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var statuses = await StatusesAsync().ConfigureAwait(false);
            var leader = statuses.FirstOrDefault(s => s.IsLeader && s.Term > previousTerm);
            if (leader is not null && statuses.All(s => s.LeaderId == leader.Id && s.Term == leader.Term))
            {
                return leader;
            }

            await Task.Delay(1).ConfigureAwait(false);
        }

        throw new TimeoutException($"No agreed leader within {timeout.TotalSeconds:0} s: " +
            string.Join(", ", Running.Select(n => n.LastStatus is { } s ? $"{s.Id}={s.Role}/term {s.Term}/leader {s.LeaderId ?? "-"}" : $"{n.Id}=no status")));
    }

    /// <summary>
    /// Between phases, as <see cref="BenchCluster.SettleAsync"/>: waits (2 s at most) until every running
    /// node has applied what the leader committed, then has every node process collect garbage.
    /// </summary>
    public async Task SettleAsync()
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(2))
        {
            var statuses = await StatusesAsync().ConfigureAwait(false);
            long target = statuses.Max(s => s.CommitIndex);
            if (statuses.All(s => s.CommitIndex == target && s.LastLogIndex == target))
            {
                break;
            }

            await Task.Delay(5).ConfigureAwait(false);
        }

        await Task.WhenAll(Running.Select(n => n.SendAsync<Done>(new NodeCommand(NodeProtocol.Collect)))).ConfigureAwait(false);
    }

    /// <summary>PUBLISHes so far, summed over the running node processes' Redis channels.</summary>
    public async Task<long> RedisPublishedAsync() => (await StatusesAsync().ConfigureAwait(false)).Sum(s => s.RedisPublished);

    /// <summary>Failed or timed-out operations of every node process, as of its last status (a killed one's last before the kill).</summary>
    public async Task<long> ErrorsAsync()
    {
        await StatusesAsync().ConfigureAwait(false);
        return _nodes.Sum(n => n.LastStatus?.Errors ?? 0);
    }

    /// <summary>Crashes <paramref name="node"/>'s process (see <see cref="NodeProcess.Kill"/>).</summary>
    public void Kill(NodeProcess node)
    {
        _killed.Add(node);
        node.Kill();
    }

    /// <summary>Asks the running node processes to leave cleanly (a few seconds at most), then kills any still there.</summary>
    public async ValueTask DisposeAsync()
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await Task.WhenAll(Running.Where(n => !n.HasExited).Select(async n =>
            {
                await n.SendAsync<Done>(new NodeCommand(NodeProtocol.Stop)).WaitAsync(patience.Token).ConfigureAwait(false);
                await n.WaitForExitAsync(patience.Token).ConfigureAwait(false);
            })).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException or IOException)
        {
            Console.Error.WriteLine($"node processes did not all stop cleanly ({e.Message}); killing them");
        }
        finally
        {
            Console.CancelKeyPress -= KillAllOnCancel;
            AppDomain.CurrentDomain.ProcessExit -= KillAllOnExit;
            foreach (var node in _nodes)
            {
                node.Dispose();
            }
        }
    }

    /// <summary>Kills every node process; safe from a signal handler while the run goes on.</summary>
    private void KillAll()
    {
        NodeProcess[] nodes;
        lock (_nodes)
        {
            nodes = [.. _nodes];
        }

        foreach (var node in nodes)
        {
            node.Kill();
        }
    }

    private void KillAllOnCancel(object? sender, ConsoleCancelEventArgs e) => KillAll();

    private void KillAllOnExit(object? sender, EventArgs e) => KillAll();
}
