namespace Gaggle.Tests.LockSimulation;

/// <summary>The outcome of one seeded run.</summary>
internal sealed record LockSimResult(LockSimFailure? Failure, LockSimStats Stats, long Steps, long SimulatedUs, int LeaderTerms);

/// <summary>Why a seeded run failed, with what is needed to replay and debug it.</summary>
internal sealed record LockSimFailure(int Seed, int Size, long Step, string What)
{
    public string Settings { get; init; } = "";

    public string Nodes { get; init; } = "";

    public IReadOnlyList<string> Trace { get; init; } = [];

    public override string ToString() => $"seed {Seed} ({Size} nodes) step {Step}: {What}";

    public string Report()
    {
        var lines = new List<string> { ToString(), $"settings: {Settings}", $"nodes: {Nodes}" };
        if (Trace.Count > 0)
        {
            lines.Add($"last {Trace.Count} steps:");
            lines.AddRange(Trace);
        }

        lines.Add($"replay: GAGGLE_SIM_SEED={Seed} dotnet test tests/Gaggle.Tests --filter \"FullyQualifiedName~LockSimulation\"");
        return string.Join(Environment.NewLine, lines);
    }
}
