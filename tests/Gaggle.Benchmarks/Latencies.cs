using System.Diagnostics;
using System.Text.Json;

namespace Gaggle.Benchmarks;

/// <summary>Latency samples taken with <see cref="Stopwatch"/> timestamps; percentiles in milliseconds.</summary>
internal sealed class Latencies
{
    private readonly List<double> _samples = [];

    public int Count => _samples.Count;

    public void Add(long startTimestamp) => _samples.Add(Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds);

    /// <summary>The samples in milliseconds, in no particular order: what a node process sends the driver.</summary>
    public double[] SamplesMs => [.. _samples];

    /// <summary>Samples taken elsewhere (another process), in milliseconds.</summary>
    public void AddMilliseconds(IEnumerable<double> samplesMs) => _samples.AddRange(samplesMs);

    /// <summary>Nearest-rank percentile (0 when there are no samples).</summary>
    public double Percentile(double p)
    {
        if (_samples.Count == 0)
        {
            return 0;
        }

        _samples.Sort();
        int rank = (int)Math.Ceiling(p / 100 * _samples.Count);
        return _samples[Math.Clamp(rank - 1, 0, _samples.Count - 1)];
    }

    public double Mean => _samples.Count == 0 ? 0 : _samples.Average();

    public double Max => _samples.Count == 0 ? 0 : _samples.Max();

    /// <summary>Writes an object <paramref name="name"/> with p50, p99 and (<paramref name="withMax"/>) max, in milliseconds to the microsecond.</summary>
    public void WriteJson(Utf8JsonWriter json, string name, bool withMax)
    {
        json.WriteStartObject(name);
        json.WriteNumber("p50", Math.Round(Percentile(50), 3));
        json.WriteNumber("p99", Math.Round(Percentile(99), 3));
        if (withMax)
        {
            json.WriteNumber("max", Math.Round(Max, 3));
        }

        json.WriteEndObject();
    }
}
