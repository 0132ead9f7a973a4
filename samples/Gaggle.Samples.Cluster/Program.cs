using System.Diagnostics;
using System.Text;
using Gaggle;
using Gaggle.Channels;

// A Gaggle cluster in one process: election, appends from leader and followers, the leader's loss,
// re-election, and a check that every node committed the same log. Exits 0 when all of it held.
var settings = DemoSettings.Parse(args);
if (settings is null)
{
    return 2;
}

var clock = Stopwatch.StartNew();
void Say(string text) => Console.WriteLine($"[{clock.Elapsed.TotalMilliseconds,7:0} ms] {text}");

var ids = Enumerable.Range(0, settings.Nodes).Select(i => $"node-{(char)('a' + i)}").ToArray();
var network = new InMemoryNetwork();
var nodes = new Dictionary<string, GaggleNode>();
var committed = ids.ToDictionary(id => id, _ => new List<string>());

Say($"Starting {ids.Length} nodes over the in-memory network: {string.Join(", ", ids)}");
foreach (var id in ids)
{
    var node = new GaggleNode(new GaggleOptions { NodeId = id, Members = ids }, network.CreateChannel(id));
    node.LeaderChanged += (_, change) =>
    {
        if (change.IsLeader)
        {
            Say($"{id} became leader in term {change.Term}");
        }
    };
    node.Committed += (_, entry) =>
    {
        lock (committed[id])
        {
            committed[id].Add(Encoding.UTF8.GetString(entry.Data.Span));
        }
    };
    nodes[id] = node;
    await node.StartAsync();
}

try
{
    var leader = await AgreedLeader(TimeSpan.FromSeconds(10));
    Say($"Cluster agrees: leader is {leader.Id} (term {leader.Term})");

    var latencies = new List<double>();
    await AppendBatch(leader, "from leader", settings.Entries, latencies);
    var follower = nodes.Values.First(n => n != leader);
    await AppendBatch(follower, "from follower", settings.Entries, latencies);

    Say($"Stopping the leader {leader.Id} abruptly (no hand-over)");
    var failoverClock = Stopwatch.StartNew();
    network.Isolate(leader.Id);
    await leader.DisposeAsync();
    nodes.Remove(leader.Id);
    committed.Remove(leader.Id);

    var successor = await AgreedLeader(TimeSpan.FromSeconds(10));
    Say($"New leader {successor.Id} in term {successor.Term}, {failoverClock.ElapsedMilliseconds} ms after the old one stopped");
    var survivor = nodes.Values.First(n => n != successor);
    await AppendBatch(survivor, "after failover", settings.Entries, latencies);

    int expected = settings.Entries * 3;
    var deadline = Stopwatch.StartNew();
    while (committed.Values.Any(log => Count(log) < expected) && deadline.Elapsed < TimeSpan.FromSeconds(10))
    {
        await Task.Delay(10);
    }

    var logs = committed.ToDictionary(kv => kv.Key, kv => Snapshot(kv.Value));
    var reference = logs.Values.First();
    bool identical = logs.Values.All(log => log.SequenceEqual(reference)) && reference.Count == expected;
    latencies.Sort();
    Console.WriteLine();
    Console.WriteLine("Summary");
    foreach (var (id, log) in logs)
    {
        Console.WriteLine($"  {id}: {log.Count} entries committed, commit index {nodes[id].CommitIndex}, term {nodes[id].Term}{(nodes[id].IsLeader ? ", leader" : "")}");
    }

    Console.WriteLine($"  append-to-commit latency over {latencies.Count} appends: p50 {Percentile(latencies, 0.5):0.00} ms, p99 {Percentile(latencies, 0.99):0.00} ms, max {latencies[^1]:0.00} ms");
    Console.WriteLine(identical
        ? $"  OK: every running node committed the same {expected} entries in the same order."
        : $"  FAILED: the committed logs differ or are incomplete (expected {expected} entries).");
    return identical ? 0 : 1;
}
catch (Exception e) when (e is TimeoutException or GaggleRpcException)
{
    Console.WriteLine($"FAILED: {e.Message}");
    return 1;
}
finally
{
    foreach (var node in nodes.Values)
    {
        await node.DisposeAsync();
    }
}

async Task<GaggleNode> AgreedLeader(TimeSpan timeout)
{
    var watch = Stopwatch.StartNew();
    while (watch.Elapsed < timeout)
    {
        var leaders = nodes.Values.Where(n => n.IsLeader).ToList();
        if (leaders.Count == 1 && nodes.Values.All(n => n.LeaderId == leaders[0].Id))
        {
            return leaders[0];
        }

        await Task.Delay(5);
    }

    throw new TimeoutException($"No leader agreed on within {timeout.TotalSeconds:0} s.");
}

async Task AppendBatch(GaggleNode node, string label, int count, List<double> latencies)
{
    var watch = Stopwatch.StartNew();
    long last = 0;
    for (int i = 1; i <= count; i++)
    {
        var one = Stopwatch.StartNew();
        last = await node.AppendAsync(Encoding.UTF8.GetBytes($"{label} #{i} via {node.Id}"), TimeSpan.FromSeconds(10));
        latencies.Add(one.Elapsed.TotalMilliseconds);
    }

    Say($"{count} entries appended {label} ({node.Id}, {(node.IsLeader ? "leader" : "follower")}) committed in {watch.ElapsedMilliseconds} ms, last index {last}");
}

static int Count(List<string> log)
{
    lock (log)
    {
        return log.Count;
    }
}

static List<string> Snapshot(List<string> log)
{
    lock (log)
    {
        return [.. log];
    }
}

static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

internal sealed record DemoSettings(int Nodes, int Entries)
{
    public static DemoSettings? Parse(string[] args)
    {
        int nodes = 3;
        int entries = 10;
        for (int i = 0; i < args.Length; i++)
        {
            string? value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--nodes" when int.TryParse(value, out nodes) && nodes is >= 3 and <= 26:
                case "--entries" when int.TryParse(value, out entries) && entries is >= 1 and <= 100000:
                    i++;
                    break;
                default:
                    Console.Error.WriteLine($"Unknown or invalid argument '{args[i]}' (value '{value}').");
                    Console.Error.WriteLine("Usage: dotnet run --project samples/Gaggle.Samples.Cluster [-- --nodes 3..26] [--entries 1..100000]");
                    return null;
            }
        }

        return new DemoSettings(nodes, entries);
    }
}
