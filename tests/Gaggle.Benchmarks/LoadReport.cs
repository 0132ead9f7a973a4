using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Gaggle.Benchmarks;

/// <summary>The figures of a run, written as one JSON object and printed as a table.</summary>
internal interface IRunReport
{
    /// <summary>Operations that failed or timed out; the exit code is 1 when there are any.</summary>
    long Errors { get; }

    string ToJson();

    string ToTable();
}

/// <summary>The figures of one load run: written as one JSON object and printed as a table.</summary>
internal sealed record LoadReport : IRunReport
{
    public required string Channel { get; init; }

    /// <summary><c>static</c> (a member list) or <c>elastic</c> (the nodes formed the cluster by themselves).</summary>
    public required string Mode { get; init; }

    public int Nodes { get; init; }

    public int PayloadBytes { get; init; }

    /// <summary>Each node ran in its own process (<c>--processes</c>); the table says so where it changes a figure's meaning.</summary>
    public bool NodesInProcesses { get; init; }

    public double CommitsPerSecond { get; init; }

    /// <summary>Diagnostics of the throughput phase, printed in the table only (the JSON keeps its fixed keys).</summary>
    public required ThroughputResult Throughput { get; init; }

    public required Latencies LeaderCommit { get; init; }

    public required Latencies FollowerCommit { get; init; }

    public double LockOpsPerSecond { get; init; }

    public required Latencies LockAcquire { get; init; }

    public double ElectionMs { get; init; }

    public double FailoverMs { get; init; }

    /// <summary>Elastic mode: from starting the nodes to the first lock granted (after the new generation's hold-off); null in static mode.</summary>
    public double? FirstLockMs { get; init; }

    public required string FailoverMethod { get; init; }

    public double PeakRssMb { get; init; }

    public double RedisMessagesPerCommit { get; init; }

    /// <summary>Null over the in-memory channel: there is no Redis to compare with.</summary>
    public Latencies? BaselinePublishRoundTrip { get; init; }

    public double? BaselineSetNxLockOpsPerSecond { get; init; }

    public long Errors { get; init; }

    /// <summary>The report of a run, in process or with a process per node: the same figures from the same phases.</summary>
    public static LoadReport From(LoadSettings settings, BaselineFigures baselines, MeasuredPhases measured, bool nodesInProcesses)
        => new()
        {
            Channel = settings.Channel,
            Mode = settings.Mode,
            Nodes = settings.Nodes,
            PayloadBytes = settings.PayloadBytes,
            NodesInProcesses = nodesInProcesses,
            CommitsPerSecond = measured.Throughput.CommitsPerSecond,
            Throughput = measured.Throughput,
            LeaderCommit = measured.LeaderCommit,
            FollowerCommit = measured.FollowerCommit,
            LockOpsPerSecond = measured.LockOpsPerSecond,
            LockAcquire = measured.LockAcquire,
            ElectionMs = measured.ElectionMs,
            FailoverMs = measured.FailoverMs,
            FirstLockMs = measured.FirstLockMs,
            FailoverMethod = measured.FailoverMethod,
            PeakRssMb = measured.PeakRssMb,
            RedisMessagesPerCommit = settings.IsRedis ? measured.Throughput.RedisMessagesPerCommit : 0,
            BaselinePublishRoundTrip = baselines.PublishRoundTrip,
            BaselineSetNxLockOpsPerSecond = baselines.SetNxLockOpsPerSecond,
            Errors = measured.Errors,
        };

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("channel", Channel);
            json.WriteString("mode", Mode);
            json.WriteNumber("nodes", Nodes);
            json.WriteNumber("payload_bytes", PayloadBytes);
            json.WriteNumber("commits_per_sec", Round(CommitsPerSecond));
            LeaderCommit.WriteJson(json, "leader_commit_latency_ms", withMax: true);
            FollowerCommit.WriteJson(json, "follower_commit_latency_ms", withMax: true);
            json.WriteNumber("lock_ops_per_sec", Round(LockOpsPerSecond));
            LockAcquire.WriteJson(json, "lock_latency_ms", withMax: false);
            json.WriteNumber("election_ms", Round(ElectionMs));
            json.WriteNumber("failover_ms", Round(FailoverMs));
            if (FirstLockMs is { } firstLock)
            {
                json.WriteNumber("first_lock_ms", Round(firstLock));
            }
            else
            {
                json.WriteNull("first_lock_ms");
            }

            json.WriteNumber("peak_rss_mb", Round(PeakRssMb));
            json.WriteNumber("redis_messages_per_commit", Round(RedisMessagesPerCommit));
            json.WriteStartObject("baseline");
            if (BaselinePublishRoundTrip is { } roundTrip)
            {
                roundTrip.WriteJson(json, "redis_publish_roundtrip_ms", withMax: false);
            }
            else
            {
                json.WriteNull("redis_publish_roundtrip_ms");
            }

            if (BaselineSetNxLockOpsPerSecond is { } setNx)
            {
                json.WriteNumber("redis_setnx_lock_ops_per_sec", Round(setNx));
            }
            else
            {
                json.WriteNull("redis_setnx_lock_ops_per_sec");
            }

            json.WriteEndObject();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public string ToTable()
    {
        var table = new StringBuilder();
        void Row(string name, string value) => table.AppendLine(CultureInfo.InvariantCulture, $"  {name,-40} {value}");
        static string Ms(Latencies l, bool withMax) => withMax
            ? string.Create(CultureInfo.InvariantCulture, $"p50 {l.Percentile(50):0.000}  p90 {l.Percentile(90):0.000}  p99 {l.Percentile(99):0.000}  max {l.Max:0.000}  mean {l.Mean:0.000} ms  ({l.Count} samples)")
            : string.Create(CultureInfo.InvariantCulture, $"p50 {l.Percentile(50):0.000}  p90 {l.Percentile(90):0.000}  p99 {l.Percentile(99):0.000}  mean {l.Mean:0.000} ms  ({l.Count} samples)");
        string where = NodesInProcesses ? "one process per node" : "all in this process";
        table.AppendLine(CultureInfo.InvariantCulture, $"Gaggle load run: {Nodes} nodes, {Mode} mode, over {Channel} ({where}), {PayloadBytes}-byte entries");
        Row("commits/s (many in flight, all nodes)", Number(CommitsPerSecond));
        Row("commit latency from the leader", Ms(LeaderCommit, withMax: true));
        Row("commit latency from a follower", Ms(FollowerCommit, withMax: true));
        Row("lock acquire+release pairs/s", Number(LockOpsPerSecond));
        Row("uncontended lock acquire (leader)", Ms(LockAcquire, withMax: false));
        if (FirstLockMs is { } firstLock)
        {
            Row("formation (start -> voters, all members)", string.Create(CultureInfo.InvariantCulture, $"{ElectionMs:0.0} ms"));
            Row("first lock granted (from start)", string.Create(CultureInfo.InvariantCulture, $"{firstLock:0.0} ms"));
        }
        else
        {
            Row("election (start -> agreed leader)", string.Create(CultureInfo.InvariantCulture, $"{ElectionMs:0.0} ms"));
        }

        Row("failover (stop -> new leader commits)", string.Create(CultureInfo.InvariantCulture, $"{FailoverMs:0.0} ms"));
        Row("  leader stopped by", FailoverMethod);
        Row(NodesInProcesses ? "peak RSS (the largest node process)" : "peak RSS (this process, all nodes)", string.Create(CultureInfo.InvariantCulture, $"{PeakRssMb:0.0} MB"));
        Row("Redis PUBLISHes per commit (full load)", string.Create(CultureInfo.InvariantCulture, $"{RedisMessagesPerCommit:0.000}"));
        Row(NodesInProcesses ? "  CPU of all node processes per commit" : "  process CPU per commit (full load)", string.Create(CultureInfo.InvariantCulture, $"{Throughput.CpuMicrosecondsPerCommit:0.0} us"));
        Row(NodesInProcesses ? "  bytes allocated (all nodes) per commit" : "  bytes allocated per commit (full load)", string.Create(CultureInfo.InvariantCulture, $"{Throughput.AllocatedBytesPerCommit:0}"));
        if (Channel == "memory")
        {
            Row("  in-memory deliveries per commit", string.Create(CultureInfo.InvariantCulture, $"{Throughput.MemoryDeliveriesPerCommit:0.000}"));
        }

        Row("baseline: PUBLISH -> subscriber", BaselinePublishRoundTrip is { } r ? Ms(r, withMax: false) : "n/a (no Redis)");
        Row("baseline: SET NX PX + DEL pairs/s", BaselineSetNxLockOpsPerSecond is { } s ? Number(s) : "n/a (no Redis)");
        Row("failed or timed-out operations", Errors.ToString(CultureInfo.InvariantCulture));
        return table.ToString();
    }

    private static string Number(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static double Round(double value) => Math.Round(value, 3);
}

/// <summary>What the phases of one run measured, whichever way the nodes ran.</summary>
internal sealed record MeasuredPhases(
    ThroughputResult Throughput,
    Latencies LeaderCommit,
    Latencies FollowerCommit,
    double LockOpsPerSecond,
    Latencies LockAcquire,
    double ElectionMs,
    double FailoverMs,
    string FailoverMethod,
    double PeakRssMb,
    long Errors,
    double? FirstLockMs = null);
