using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Gaggle.Benchmarks.LockComparison;

/// <summary>
/// The lock comparison's figures set against the baselines measured in the same run (p50s, pairs per
/// second), so that a target stated as a ratio ("at most 3x the raw lock") is read off one run, and
/// beside it the floor no lock that commits over pub/sub can go below: a commit needs two pub/sub hops
/// (<see cref="LockComparisonReport.CommitFloor"/>), a Redis lock one round trip. A ratio whose cells
/// did not run is left out.
/// </summary>
internal sealed class LockComparisonRatios
{
    private const string Raw = "raw_setnx_cad";
    private const string DistributedLock = "distributedlock_redis";
    private const string Spread = "gaggle_spread";
    private const string Leader = "gaggle_leader";

    private readonly List<(string Key, string Text, double Value)> _ratios = [];

    public LockComparisonRatios(LockComparisonReport report)
    {
        double rawAcquire = Acquire(report, Raw, new LockCellShape(1, 1));
        double publish = report.PublishRoundTrip.Percentile(50);
        double floor = report.CommitFloor.Percentile(50);
        Add("spread_1_acquire_to_raw", "1 client, Gaggle spread acquire / raw SET NX acquire", Acquire(report, Spread, new(1, 1)), rawAcquire);
        Add("leader_1_acquire_to_raw", "1 client, Gaggle leader-only acquire / raw SET NX acquire", Acquire(report, Leader, new(1, 1)), rawAcquire);
        Add("commit_floor_to_raw", "the commit floor (PUBLISH to two, first answer back) / raw SET NX acquire", floor, rawAcquire);
        Add("follower_commit_to_publish", "one append at a time from a follower / PUBLISH -> subscriber", report.FollowerCommit.Percentile(50), publish);
        Add("commit_floor_to_publish", "the commit floor / PUBLISH -> subscriber", floor, publish);
        Add("spread_16_pairs_to_distributedlock", "16 clients, Gaggle spread pairs/s / DistributedLock.Redis pairs/s", Pairs(report, Spread, new(16, 16)), Pairs(report, DistributedLock, new(16, 16)));
        foreach (var (key, title) in new[] { (Spread, "spread"), (Leader, "leader-only") })
        {
            if (Cell(report, key, new(16, 4)) is { FewestPairsPerClient: > 0 } contended)
            {
                _ratios.Add(($"{key}_16_on_4_most_to_fewest", $"16 on 4 names, Gaggle {title}: most / fewest pairs per client", (double)contended.MostPairsPerClient / contended.FewestPairsPerClient));
            }
        }
    }

    public void WriteJson(Utf8JsonWriter json)
    {
        json.WriteStartObject("ratios");
        foreach (var (key, _, value) in _ratios)
        {
            json.WriteNumber(key, Math.Round(value, 3));
        }

        json.WriteEndObject();
    }

    public void WriteText(StringBuilder text)
    {
        if (_ratios.Count == 0)
        {
            return;
        }

        text.AppendLine("against this run's baselines (p50s; pairs per second):");
        text.AppendLine();
        foreach (var (_, description, value) in _ratios)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- {description}: {value:0.00}");
        }

        text.AppendLine();
    }

    private void Add(string key, string description, double value, double baseline)
    {
        if (value > 0 && baseline > 0)
        {
            _ratios.Add((key, description, value / baseline));
        }
    }

    private static LockCellResult? Cell(LockComparisonReport report, string implementation, LockCellShape shape)
        => report.Cells.FirstOrDefault(c => c.Implementation == implementation && c.Shape == shape);

    private static double Acquire(LockComparisonReport report, string implementation, LockCellShape shape)
        => Cell(report, implementation, shape) is { Acquire.Count: > 0 } cell ? cell.Acquire.Percentile(50) : 0;

    private static double Pairs(LockComparisonReport report, string implementation, LockCellShape shape)
        => Cell(report, implementation, shape)?.PairsPerSecond ?? 0;
}
