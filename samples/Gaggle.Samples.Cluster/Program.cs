using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Gaggle;
using Gaggle.Channels;
using Gaggle.Redis;
using Gaggle.Samples.Cluster;

// A Gaggle cluster in one process: election, appends from leader and followers, the leader's loss,
// re-election, and a check that every node committed the same log. Exits 0 when all of it held.
// The nodes talk over Redis pub/sub: an embedded Garnet server by default, the Redis given with
// --redis, or (--memory) the in-process network without Redis.
var settings = DemoSettings.Parse(args);
if (settings is null)
{
    return 2;
}

if (settings.Id is not null)
{
    return await SingleNode.RunAsync(settings);
}

// Started before the demo prints anything: Garnet writes a banner while it starts (muted there).
EmbeddedRedis? embedded;
try
{
    embedded = settings.Memory || settings.Redis is not null ? null : EmbeddedRedis.Start();
}
catch (Exception e)
{
    Console.WriteLine($"FAILED: could not start the embedded Garnet server ({e.GetType().Name}: {e.Message}); --memory runs without it.");
    return 1;
}

using var embeddedLifetime = embedded;
string? redis = settings.Redis ?? embedded?.Configuration;
Console.WriteLine(embedded is not null
    ? $"Transport: Redis pub/sub on an embedded Microsoft Garnet server at {redis} (--memory: in-process network, --redis HOST:PORT: your Redis)"
    : redis is not null
        ? $"Transport: Redis pub/sub on the Redis at {redis}"
        : "Transport: the in-process network, no Redis (without --memory the demo runs over Redis pub/sub on an embedded server)");

var ids = settings.MemberIds;
var network = new InMemoryNetwork();
var nodes = new ConcurrentDictionary<string, GaggleNode>(StringComparer.Ordinal);
var status = new StatusTable(ids, nodes);
void Say(string text) => status.Say(text);
var committed = ids.ToDictionary(id => id, _ => new List<string>());
bool finished = false;
bool tokensIncrease = false;

string cluster = redis is null ? "" : $"{settings.Cluster}-{Guid.NewGuid().ToString("N")[..8]}";
Say(redis is null
    ? $"Starting {ids.Length} nodes over the in-memory network: {string.Join(", ", ids)}"
    : $"Starting {ids.Length} nodes over Redis {redis} (cluster '{cluster}'): {string.Join(", ", ids)}");
foreach (var id in ids)
{
    var builder = new GaggleNodeBuilder(new GaggleOptions { NodeId = id, Members = ids });
    if (settings.Data is { } data)
    {
        builder.UseFileStorage(Path.Combine(data, id));
    }

    var node = (redis is null
        ? builder.UseInMemory(network)
        : builder.UseRedis(redis, options => options.ClusterName = cluster)).Build();
    node.LeaderChanged += (_, change) =>
    {
        if (change.IsLeader && !Volatile.Read(ref finished))
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
    status.Phase("electing a leader");
    var leader = await AgreedLeader(TimeSpan.FromSeconds(10));
    Say($"Cluster agrees: leader is {leader.Id} (term {leader.Term})");
    status.Snapshot();

    var latencies = new List<double>();
    await AppendBatch(leader, "from leader", settings.Entries, latencies);
    var follower = nodes.Values.First(n => n != leader);
    await AppendBatch(follower, "from follower", settings.Entries, latencies);

    // A lock contended by every node: grants come one at a time, with increasing fencing tokens.
    status.Phase("every node contends for 'demo-lock'");
    var grants = new List<(string Node, long Token)>();
    await Task.WhenAll(nodes.Values.Select(async node =>
    {
        for (int i = 0; i < 2; i++)
        {
            await using var hold = await node.Locks.AcquireAsync("demo-lock", TimeSpan.FromSeconds(10));
            lock (grants)
            {
                grants.Add((node.Id, hold.FencingToken));
            }

            status.Holding[node.Id] = hold.FencingToken;
            Say($"{node.Id} holds 'demo-lock' with fencing token {hold.FencingToken}");
            await Task.Delay(settings.HoldMs);
            status.Holding.TryRemove(node.Id, out _);
        }
    }));
    tokensIncrease = grants.Select(g => g.Token).Zip(grants.Select(g => g.Token).Skip(1)).All(p => p.First < p.Second);
    Say(tokensIncrease
        ? $"{grants.Count} grants of 'demo-lock', one holder at a time, fencing tokens strictly increasing"
        : "FAILED: fencing tokens did not increase in grant order");

    Say(redis is null
        ? $"Stopping the leader {leader.Id} abruptly: cut off from the network, no hand-over"
        : $"Stopping the leader {leader.Id} (a clean leave hands leadership over; kill a --id process to see a crash)");
    status.Phase($"leader {leader.Id} stopped: electing a new one");
    var failoverClock = Stopwatch.StartNew();
    if (redis is null)
    {
        network.Isolate(leader.Id);
    }

    await leader.DisposeAsync();
    nodes.TryRemove(leader.Id, out _);
    committed.Remove(leader.Id);

    var successor = await AgreedLeader(TimeSpan.FromSeconds(10));
    Say($"New leader {successor.Id} in term {successor.Term}, {failoverClock.ElapsedMilliseconds} ms after the old one stopped");
    status.Snapshot();
    var survivor = nodes.Values.First(n => n != successor);
    await AppendBatch(survivor, "after failover", settings.Entries, latencies);

    status.Phase("checking that every node committed the same log");
    int expected = settings.Entries * 3;
    var deadline = Stopwatch.StartNew();
    while (committed.Values.Any(log => Count(log) < expected) && deadline.Elapsed < TimeSpan.FromSeconds(10))
    {
        await Task.Delay(10);
    }

    var logs = committed.ToDictionary(kv => kv.Key, kv => Snapshot(kv.Value));
    var reference = logs.Values.First();
    bool identical = logs.Values.All(log => log.SequenceEqual(reference)) && reference.Count == expected && tokensIncrease;
    latencies.Sort();
    status.Phase("done");
    await status.DisposeAsync();
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
    Volatile.Write(ref finished, true);
    await status.DisposeAsync();
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
    status.Phase($"appending {count} entries {label} ({node.Id})");
    var watch = Stopwatch.StartNew();
    long last = 0;
    for (int i = 1; i <= count; i++)
    {
        var one = Stopwatch.StartNew();
        last = await node.AppendAsync(Encoding.UTF8.GetBytes($"{label} #{i} via {node.Id}"), TimeSpan.FromSeconds(10));
        latencies.Add(one.Elapsed.TotalMilliseconds);
        status.Appended.AddOrUpdate(node.Id, 1, (_, n) => n + 1);
        await Task.Delay(settings.PaceMs);
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
