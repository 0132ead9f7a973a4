namespace Gaggle.Tests.Simulation;

/// <summary>
/// A node's monotonic clock (microseconds): it started long before the simulation (a machine's uptime,
/// which a restarted process keeps) and runs at its own rate, within <see cref="SimulationSettings.MaxDriftPpm"/>
/// of real time. Simulated real time is the simulator's global clock.
/// </summary>
internal readonly record struct NodeClock(long OffsetUs, int DriftPpm)
{
    public static NodeClock Draw(Random random)
        => new(random.NextInt64(1_000_000_000, 100_000_000_000), random.Next(-SimulationSettings.MaxDriftPpm, SimulationSettings.MaxDriftPpm + 1));

    /// <summary>The local reading at real time <paramref name="realUs"/>; non-decreasing in it.</summary>
    public long Local(long realUs) => OffsetUs + realUs + (realUs * DriftPpm / 1_000_000);

    /// <summary>The first real time at which the local clock reads at least <paramref name="localUs"/>.</summary>
    public long RealAt(long localUs)
    {
        long real = Math.Max(0, (long)((localUs - OffsetUs) * 1_000_000.0 / (1_000_000 + DriftPpm)));
        while (real > 0 && Local(real - 1) >= localUs)
        {
            real--;
        }

        while (Local(real) < localUs)
        {
            real++;
        }

        return real;
    }

    /// <summary>Real microseconds for <paramref name="localUs"/> of this clock.</summary>
    public long RealSpan(long localUs) => Math.Max(1, localUs * 1_000_000 / (1_000_000 + DriftPpm));
}
