using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Gaggle.Benchmarks.LockComparison;

/// <summary>The figures of a lock comparison run (<c>--locks</c>): one JSON object, and markdown tables with a column per implementation.</summary>
internal sealed record LockComparisonReport : IRunReport
{
    public int Nodes { get; init; }

    /// <summary>"static" (a member list) or "elastic" (the cluster forms by itself).</summary>
    public string Mode { get; init; } = "static";

    public double CellSeconds { get; init; }

    /// <summary>The 1-minute load average before and after the run (null where /proc/loadavg is missing): the machine is shared.</summary>
    public double? LoadAverageBefore { get; init; }

    public double? LoadAverageAfter { get; init; }

    public required Latencies PublishRoundTrip { get; init; }

    /// <summary>
    /// PUBLISH to two subscribers, the first answer back (<see cref="RedisBaselines.PublishToTwoAndFirstAnswerAsync"/>):
    /// what a commit of three voters over pub/sub costs with no processing, the floor under a lock
    /// acquire on the leader (AppendEntries out, an acknowledgement back) and on a follower (the
    /// request forwarded, AppendEntries back).
    /// </summary>
    public required Latencies CommitFloor { get; init; }

    public required Latencies LeaderCommit { get; init; }

    public required Latencies FollowerCommit { get; init; }

    /// <summary>The columns, in table order: (JSON key, heading).</summary>
    public required IReadOnlyList<(string Key, string Title)> Implementations { get; init; }

    public required IReadOnlyList<LockCellResult> Cells { get; init; }

    public long Errors => Cells.Sum(c => c.Errors) + SetupErrors;

    /// <summary>Failed appends of the commit-latency phases.</summary>
    public long SetupErrors { get; init; }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("run", "locks");
            json.WriteString("channel", "redis");
            json.WriteNumber("nodes", Nodes);
            json.WriteString("mode", Mode);
            json.WriteNumber("cell_seconds", CellSeconds);
            WriteNullable(json, "load_average_before", LoadAverageBefore);
            WriteNullable(json, "load_average_after", LoadAverageAfter);
            json.WriteStartObject("baseline");
            PublishRoundTrip.WriteJson(json, "redis_publish_roundtrip_ms", withMax: false);
            CommitFloor.WriteJson(json, "redis_publish_to_two_first_answer_ms", withMax: false);
            json.WriteEndObject();
            LeaderCommit.WriteJson(json, "leader_commit_latency_ms", withMax: true);
            FollowerCommit.WriteJson(json, "follower_commit_latency_ms", withMax: true);
            json.WriteStartArray("lock_cells");
            foreach (var cell in Cells)
            {
                json.WriteStartObject();
                json.WriteString("implementation", cell.Implementation);
                json.WriteNumber("clients", cell.Shape.Clients);
                json.WriteNumber("names", cell.Shape.Names);
                json.WriteNumber("pairs_per_sec", Round(cell.PairsPerSecond));
                json.WriteNumber("pairs_per_sec_per_name", Round(cell.PairsPerSecond / cell.Shape.Names));
                cell.Acquire.WriteJson(json, "acquire_latency_ms", withMax: true);
                cell.Release.WriteJson(json, "release_latency_ms", withMax: true);
                if (cell.Shape.Contended)
                {
                    cell.Handoff.WriteJson(json, "handoff_latency_ms", withMax: true);
                    json.WriteNumber("handoffs", cell.Handoff.Count);
                }

                json.WriteNumber("fewest_pairs_per_client", cell.FewestPairsPerClient);
                json.WriteNumber("most_pairs_per_client", cell.MostPairsPerClient);
                json.WriteNumber("max_wait_ms", Round(cell.MaxWaitMs));
                json.WriteNumber("process_cpu_us_per_pair", Round(cell.ProcessCpuMicrosecondsPerPair));
                json.WriteNumber("redis_cpu_us_per_pair", Round(cell.RedisCpuMicrosecondsPerPair));
                json.WriteNumber("redis_commands_per_pair", Round(cell.RedisCommandsPerPair));
                json.WriteNumber("errors", cell.Errors);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            new LockComparisonRatios(this).WriteJson(json);
            json.WriteNumber("errors", Errors);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public string ToTable()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Lock comparison: one Redis, {Nodes}-node {Mode} Gaggle cluster in this process, {CellSeconds:0.0#} s per cell; load average {Load(LoadAverageBefore)} before, {Load(LoadAverageAfter)} after");
        text.AppendLine(CultureInfo.InvariantCulture, $"PUBLISH -> subscriber p50 {PublishRoundTrip.Percentile(50):0.000} ms, p99 {PublishRoundTrip.Percentile(99):0.000} ms; PUBLISH to two, first answer back (a commit's floor) p50 {CommitFloor.Percentile(50):0.000} ms; Gaggle commit, one at a time: from the leader p50 {LeaderCommit.Percentile(50):0.000} ms, from a follower p50 {FollowerCommit.Percentile(50):0.000} ms");
        text.AppendLine();
        Table(text, "acquire+release pairs/s; acquire p50 / p99 ms", c => string.Create(CultureInfo.InvariantCulture,
            $"{Number(c.PairsPerSecond)}/s; {c.Acquire.Percentile(50):0.000} / {c.Acquire.Percentile(99):0.000}"));
        Table(text, "fairness: fewest-most pairs per client; longest wait ms", c => string.Create(CultureInfo.InvariantCulture,
            $"{c.FewestPairsPerClient}-{c.MostPairsPerClient}; {c.MaxWaitMs:0.0}"));
        Table(text, "release p50 / p99 ms", c => string.Create(CultureInfo.InvariantCulture,
            $"{c.Release.Percentile(50):0.000} / {c.Release.Percentile(99):0.000}"));
        Table(text, "contended hand-offs: per name per second; release begun to the next holder granted, p50 / p99 ms", c => string.Create(CultureInfo.InvariantCulture,
            $"{Number(c.PairsPerSecond / c.Shape.Names)}/s; {c.Handoff.Percentile(50):0.000} / {c.Handoff.Percentile(99):0.000}"), contendedOnly: true);
        Table(text, "cost per pair: process CPU us (all threads, idle nodes included); Redis server CPU us; commands Redis processed (a script's calls included)", c => string.Create(CultureInfo.InvariantCulture,
            $"{c.ProcessCpuMicrosecondsPerPair:0}; {c.RedisCpuMicrosecondsPerPair:0}; {c.RedisCommandsPerPair:0.0}"));
        new LockComparisonRatios(this).WriteText(text);
        text.AppendLine(CultureInfo.InvariantCulture, $"failed or timed-out operations: {Errors}");
        return text.ToString();
    }

    private void Table(StringBuilder text, string title, Func<LockCellResult, string> cell, bool contendedOnly = false)
    {
        text.AppendLine(title + ":");
        text.AppendLine();
        text.AppendLine("| clients | " + string.Join(" | ", Implementations.Select(i => i.Title)) + " |");
        text.AppendLine("|---|" + string.Concat(Implementations.Select(_ => "---|")));
        foreach (var shape in Cells.Select(c => c.Shape).Distinct().Where(s => s.Contended || !contendedOnly))
        {
            var row = Implementations.Select(i => Cells.FirstOrDefault(c => c.Shape == shape && c.Implementation == i.Key) is { } c
                ? cell(c) + (c.Errors > 0 ? $" ({c.Errors} errors)" : "")
                : "-");
            text.AppendLine($"| {shape.Label} | " + string.Join(" | ", row) + " |");
        }

        text.AppendLine();
    }

    private static string Load(double? load) => load is { } l ? l.ToString("0.00", CultureInfo.InvariantCulture) : "n/a";

    private static string Number(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static double Round(double value) => Math.Round(value, 3);

    private static void WriteNullable(Utf8JsonWriter json, string name, double? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, Round(v));
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
