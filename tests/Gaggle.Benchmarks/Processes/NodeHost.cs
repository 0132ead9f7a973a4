using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Gaggle.Benchmarks.Processes;

/// <summary>
/// The hidden <c>--node-host</c> mode: one member of a cluster over Redis, in its own process, run by
/// the driver of <c>--processes</c> through <see cref="NodeProtocol"/> on stdin and stdout. It runs the
/// same <see cref="LoadPhases"/> as the in-process driver, on its one node. It exits when its stdin
/// closes, at once, even in the middle of a phase: a node process never outlives its driver.
/// </summary>
internal static class NodeHost
{
    public const string Flag = "--node-host";

    /// <summary>The arguments that start a node process (after <see cref="Flag"/>).</summary>
    public static IEnumerable<string> Arguments(LoadSettings settings, string clusterName, IEnumerable<string> members, string id)
    {
        string[] arguments =
        [
            Flag, "--id", id, "--members", string.Join(',', members), "--cluster", clusterName,
            "--redis", settings.Redis!, "--payload", settings.PayloadBytes.ToString(CultureInfo.InvariantCulture),
        ];
        return settings.ProfileAllocations ? [.. arguments, "--profile-allocations"] : arguments;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var options = new Dictionary<string, string>();
        bool profile = false;
        for (int i = 1; i < args.Length; i++)
        {
            if (args[i] == "--profile-allocations")
            {
                profile = true;
            }
            else if (i + 1 < args.Length)
            {
                options[args[i]] = args[++i];
            }
        }

        if (!options.TryGetValue("--id", out var id) || !options.TryGetValue("--members", out var members) ||
            !options.TryGetValue("--cluster", out var clusterName) || !options.TryGetValue("--redis", out var redis) ||
            !options.TryGetValue("--payload", out var payloadText) || !int.TryParse(payloadText, CultureInfo.InvariantCulture, out int payload))
        {
            await Console.Error.WriteLineAsync($"{Flag} needs --id ID --members A,B,C --cluster NAME --redis HOST:PORT --payload BYTES");
            return 2;
        }

        string[] ids = members.Split(',');
        var settings = new LoadSettings { Channel = "redis", Redis = redis, Nodes = ids.Length, PayloadBytes = payload, ProfileAllocations = profile };
        await using var cluster = BenchCluster.HostOne(settings, clusterName, ids, id);
        var node = cluster.Nodes[0];
        var phases = new LoadPhases(cluster, settings);

        // stdout carries replies only: anything else written to Console.Out goes to stderr.
        await using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
        Console.SetOut(Console.Error);
        using var stdin = new StreamReader(Console.OpenStandardInput());
        var commands = ReadCommandsUntilStdinCloses(stdin);
        await node.StartAsync();
        await foreach (var line in commands.ReadAllAsync())
        {
            object reply;
            try
            {
                var command = JsonSerializer.Deserialize<NodeCommand>(line, NodeProtocol.Json)
                    ?? throw new InvalidOperationException("empty command");
                reply = await ExecuteAsync(command, cluster, phases);
                if (command.Op == NodeProtocol.Stop)
                {
                    await stdout.WriteLineAsync(JsonSerializer.Serialize(reply, reply.GetType(), NodeProtocol.Json));
                    return 0;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                reply = new NodeError($"{e.GetType().Name}: {e.Message}");
            }

            await stdout.WriteLineAsync(JsonSerializer.Serialize(reply, reply.GetType(), NodeProtocol.Json));
        }

        return 0;
    }

    private static async Task<object> ExecuteAsync(NodeCommand command, BenchCluster cluster, LoadPhases phases)
    {
        var node = cluster.Nodes[0];
        var window = TimeSpan.FromSeconds(command.Seconds);
        switch (command.Op)
        {
            case NodeProtocol.Status:
                using (var process = Process.GetCurrentProcess())
                {
                    return new NodeStatus(node.Id, node.Role.ToString(), node.IsLeader, node.LeaderId, node.Term, node.CommitIndex,
                        node.LastLogIndex, process.PeakWorkingSet64, cluster.RedisPublished, phases.Errors);
                }

            case NodeProtocol.Collect:
                GC.Collect();
                GC.WaitForPendingFinalizers();
                return new Done();
            case NodeProtocol.Throughput:
                return await phases.ThroughputCountsAsync(window, command.Count);
            case NodeProtocol.Appends:
                return new Samples((await phases.SequentialAppendsAsync(node, window)).SamplesMs);
            case NodeProtocol.Locks:
                return new LockPairs(await phases.LockPairsAsync(window, command.First, command.Count));
            case NodeProtocol.LockLatency:
                return new Samples((await phases.LockLatencyAsync(node, window)).SamplesMs);
            case NodeProtocol.Append:
                await phases.AppendOnceAsync(node);
                return new Done();
            case NodeProtocol.Stop:
                await node.DisposeAsync();
                return new Done();
            default:
                throw new InvalidOperationException($"unknown op '{command.Op}'");
        }
    }

    /// <summary>
    /// Reads stdin on its own task, so the end of the driver is seen even while a phase runs: then the
    /// process exits at once (its node dies with it, as in a crash).
    /// </summary>
    private static System.Threading.Channels.ChannelReader<string> ReadCommandsUntilStdinCloses(StreamReader stdin)
    {
        var lines = System.Threading.Channels.Channel.CreateUnbounded<string>(new() { SingleReader = true, SingleWriter = true });
        _ = Task.Run(async () =>
        {
            while (await stdin.ReadLineAsync() is { } line)
            {
                if (!string.IsNullOrWhiteSpace(line))
                {
                    lines.Writer.TryWrite(line);
                }
            }

            Environment.Exit(0);
        });
        return lines.Reader;
    }
}
