namespace Gaggle.Tests.Simulation;

/// <summary>The outcome of one seeded run.</summary>
internal sealed record SimulationResult(SimulationFailure? Failure, SimulationStats Stats);

/// <summary>What a run did, to show the simulation is not vacuous (and to fingerprint a run).</summary>
/// <param name="Steps">Steps taken, chaos and stabilization.</param>
/// <param name="Committed">Highest index committed anywhere.</param>
/// <param name="Applied">Highest index applied anywhere.</param>
/// <param name="Leaders">Terms that had a leader.</param>
/// <param name="Restarts">Crash restarts.</param>
/// <param name="Delivered">Messages delivered.</param>
internal readonly record struct SimulationStats(long Steps, int Committed, int Applied, int Leaders, int Restarts, long Delivered);

/// <summary>Why a seeded run failed, with enough context to replay and debug it.</summary>
internal sealed record SimulationFailure(int Seed, ClusterShape Shape, long Step, string What)
{
    public string Settings { get; init; } = "";

    public string Nodes { get; init; } = "";

    /// <summary>The last steps before the failure (only when the run was traced).</summary>
    public IReadOnlyList<string> Trace { get; init; } = [];

    public override string ToString() => $"seed {Seed} ({Shape}) step {Step}: {What}";

    public string Report()
    {
        var lines = new List<string> { ToString(), $"settings: {Settings}", $"nodes: {Nodes}" };
        if (Trace.Count > 0)
        {
            lines.Add($"last {Trace.Count} steps:");
            lines.AddRange(Trace);
        }

        lines.Add($"replay: GAGGLE_SIM_SEED={Seed} dotnet test tests/Gaggle.Tests --filter Category=Simulation");
        return string.Join(Environment.NewLine, lines);
    }
}
