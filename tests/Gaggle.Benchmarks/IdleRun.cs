using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Gaggle.Raft;

namespace Gaggle.Benchmarks;

/// <summary>
/// The idle run (<c>--idle N</c>): N nodes start and settle (in elastic mode: formed, every node a
/// member, first lock granted), then nobody uses them for <see cref="LoadSettings.DurationSeconds"/>
/// and the run counts what the cluster does by itself: entries the leader appends, messages sent and
/// received, CPU. Whatever is not zero is the price of keeping the cluster alive.
/// </summary>
internal static class IdleRun
{
    /// <summary>After settling, a pause before the window, so the catch-up of the last joiners is not counted.</summary>
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(2);

    public static async Task<IdleReport> RunAsync(LoadSettings settings)
    {
        var (cluster, start) = await BenchCluster.StartAsync(settings, TimeSpan.FromSeconds(60));
        await using (cluster)
        {
            await cluster.SettleAsync();
            await Task.Delay(Quiet);
            var window = TimeSpan.FromSeconds(settings.DurationSeconds);
            LoadRun.Phase($"idle, {cluster.Nodes.Count} nodes", window);
            var leader = await cluster.AgreedLeaderAsync(TimeSpan.FromSeconds(10), previousTerm: 0);
            var before = Sample.Take(cluster, leader);
            var seconds = new List<Sample>();
            var clock = Stopwatch.StartNew();
            for (int second = 1; second <= Math.Ceiling(window.TotalSeconds); second++)
            {
                var next = TimeSpan.FromSeconds(Math.Min(second, window.TotalSeconds)) - clock.Elapsed;
                if (next > TimeSpan.Zero)
                {
                    await Task.Delay(next);
                }

                seconds.Add(Sample.Take(cluster, leader));
            }

            double elapsed = clock.Elapsed.TotalSeconds;
            var after = seconds[^1];
            var log = await leader.GetLogAsync();
            var kinds = log.Where(e => e.Index > before.LastIndex && e.Index <= after.LastIndex)
                .GroupBy(e => e.Kind).ToDictionary(g => g.Key, g => g.Count());
            var membership = leader.Membership;
            return new IdleReport
            {
                Channel = settings.Channel,
                Mode = settings.Mode,
                Nodes = cluster.Nodes.Count,
                Voters = membership.Voters.Count,
                Learners = membership.Learners.Count,
                ElectionMs = start.ElectionMs,
                FirstLockMs = start.FirstLockMs,
                WindowSeconds = elapsed,
                LeaderChanged = after.LeaderId != before.LeaderId || after.Term != before.Term,
                EntriesPerSecond = (after.LastIndex - before.LastIndex) / elapsed,
                EntriesByKind = kinds,
                PublishedPerSecond = (after.Published - before.Published) / elapsed,
                ReceivedPerSecond = (after.Received - before.Received) / elapsed,
                DroppedPerSecond = (after.Dropped - before.Dropped) / elapsed,
                MemoryDeliveredPerSecond = (after.Delivered - before.Delivered) / elapsed,
                CpuMsPerSecond = (after.CpuMs - before.CpuMs) / elapsed,
                EntriesEachSecond = [.. seconds.Select((s, i) => s.LastIndex - (i == 0 ? before : seconds[i - 1]).LastIndex)],
                PublishedEachSecond = [.. seconds.Select((s, i) => s.Published - (i == 0 ? before : seconds[i - 1]).Published)],
            };
        }
    }

    /// <summary>The counters at one moment: the leader's last log index, all channels' messages, this process's CPU.</summary>
    private sealed record Sample(long LastIndex, string? LeaderId, long Term, long Published, long Received, long Dropped, long Delivered, double CpuMs)
    {
        public static Sample Take(BenchCluster cluster, GaggleNode leader)
        {
            using var process = Process.GetCurrentProcess();
            return new Sample(leader.LastLogIndex, leader.LeaderId, leader.Term, cluster.RedisPublished, cluster.RedisReceived, cluster.RedisDropped,
                cluster.MemoryDelivered, process.TotalProcessorTime.TotalMilliseconds);
        }
    }
}

/// <summary>What an idle cluster did by itself over the window (<see cref="IdleRun"/>).</summary>
internal sealed record IdleReport : IRunReport
{
    public required string Channel { get; init; }

    public required string Mode { get; init; }

    public int Nodes { get; init; }

    public int Voters { get; init; }

    public int Learners { get; init; }

    public double ElectionMs { get; init; }

    public double? FirstLockMs { get; init; }

    public double WindowSeconds { get; init; }

    /// <summary>The leader or its term changed during the window: the figures include an election.</summary>
    public bool LeaderChanged { get; init; }

    /// <summary>The leader's last log index growth per second.</summary>
    public double EntriesPerSecond { get; init; }

    public required IReadOnlyDictionary<EntryKind, int> EntriesByKind { get; init; }

    /// <summary>PUBLISHes per second, all nodes' Redis channels (<c>RedisPubSubChannelStatistics.Published</c>).</summary>
    public double PublishedPerSecond { get; init; }

    /// <summary>Envelopes accepted and handed to a node per second, all nodes (<c>Received</c>).</summary>
    public double ReceivedPerSecond { get; init; }

    /// <summary>Inbound envelopes dropped per second, all nodes (<c>Dropped</c>, every reason).</summary>
    public double DroppedPerSecond { get; init; }

    public double MemoryDeliveredPerSecond { get; init; }

    /// <summary>Process CPU (all nodes) per second of the window, in ms: 1000 is one core busy.</summary>
    public double CpuMsPerSecond { get; init; }

    public required long[] EntriesEachSecond { get; init; }

    public required long[] PublishedEachSecond { get; init; }

    public long Errors => 0;

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("channel", Channel);
            json.WriteString("mode", Mode);
            json.WriteNumber("nodes", Nodes);
            json.WriteNumber("voters", Voters);
            json.WriteNumber("learners", Learners);
            json.WriteNumber("election_ms", Math.Round(ElectionMs, 3));
            if (FirstLockMs is { } firstLock)
            {
                json.WriteNumber("first_lock_ms", Math.Round(firstLock, 3));
            }
            else
            {
                json.WriteNull("first_lock_ms");
            }

            json.WriteStartObject("idle");
            json.WriteNumber("window_s", Math.Round(WindowSeconds, 3));
            json.WriteBoolean("leader_changed", LeaderChanged);
            json.WriteNumber("log_entries_per_sec", Math.Round(EntriesPerSecond, 3));
            json.WriteStartObject("log_entries_by_kind");
            foreach (var (kind, count) in EntriesByKind.OrderBy(k => k.Key))
            {
                json.WriteNumber(kind.ToString(), count);
            }

            json.WriteEndObject();
            json.WriteNumber("redis_published_per_sec", Math.Round(PublishedPerSecond, 3));
            json.WriteNumber("redis_received_per_sec", Math.Round(ReceivedPerSecond, 3));
            json.WriteNumber("redis_dropped_per_sec", Math.Round(DroppedPerSecond, 3));
            json.WriteNumber("memory_delivered_per_sec", Math.Round(MemoryDeliveredPerSecond, 3));
            json.WriteNumber("cpu_ms_per_sec", Math.Round(CpuMsPerSecond, 3));
            WriteArray(json, "log_entries_each_second", EntriesEachSecond);
            WriteArray(json, "redis_published_each_second", PublishedEachSecond);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public string ToTable()
    {
        var table = new StringBuilder();
        void Row(string name, FormattableString value) => table.AppendLine(CultureInfo.InvariantCulture, $"  {name,-40} {value.ToString(CultureInfo.InvariantCulture)}");
        table.AppendLine(CultureInfo.InvariantCulture, $"Gaggle idle run: {Nodes} nodes ({Voters} voters, {Learners} learners), {Mode} mode, over {Channel}");
        Row(FirstLockMs is null ? "election (start -> agreed leader)" : "formation (start -> voters, all members)", $"{ElectionMs:0.0} ms");
        if (FirstLockMs is { } firstLock)
        {
            Row("first lock granted (from start)", $"{firstLock:0.0} ms");
        }

        Row("idle window", $"{WindowSeconds:0.0} s{(LeaderChanged ? " (the leader changed: an election is included)" : "")}");
        Row("log entries/s (leader's last index)", $"{EntriesPerSecond:0.00}  ({(EntriesByKind.Count == 0 ? "none" : string.Join(", ", EntriesByKind.OrderBy(k => k.Key).Select(k => $"{k.Key} {k.Value}")))})");
        Row("  each second", $"{string.Join(" ", EntriesEachSecond)}");
        if (Channel == "redis")
        {
            Row("Redis PUBLISHes/s (all nodes)", $"{PublishedPerSecond:0.0}");
            Row("  each second", $"{string.Join(" ", PublishedEachSecond)}");
            Row("Redis messages received/s (all nodes)", $"{ReceivedPerSecond:0.0}");
            Row("inbound envelopes dropped/s (all nodes)", $"{DroppedPerSecond:0.0}");
        }
        else
        {
            Row("in-memory deliveries/s", $"{MemoryDeliveredPerSecond:0.0}");
        }

        Row("process CPU (all nodes)", $"{CpuMsPerSecond:0.0} ms/s");
        return table.ToString();
    }

    private static void WriteArray(Utf8JsonWriter json, string name, long[] values)
    {
        json.WriteStartArray(name);
        foreach (long value in values)
        {
            json.WriteNumberValue(value);
        }

        json.WriteEndArray();
    }
}
