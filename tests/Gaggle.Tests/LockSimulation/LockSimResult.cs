using System.Runtime.CompilerServices;

namespace Gaggle.Tests.LockSimulation;

/// <summary>Builds a trace line only when the simulator records a trace (untraced runs pay nothing).</summary>
[InterpolatedStringHandler]
internal ref struct LockTraceHandler
{
    private DefaultInterpolatedStringHandler _builder;

    public LockTraceHandler(int literalLength, int formattedCount, LockSimulator simulator, out bool enabled)
    {
        enabled = simulator.IsTracing;
        _builder = enabled ? new DefaultInterpolatedStringHandler(literalLength, formattedCount) : default;
    }

    public void AppendLiteral(string value) => _builder.AppendLiteral(value);

    public void AppendFormatted<T>(T value) => _builder.AppendFormatted(value);

    public void AppendFormatted<T>(T value, int alignment) => _builder.AppendFormatted(value, alignment);

    public void AppendFormatted(string? value) => _builder.AppendFormatted(value);

    public string ToStringAndClear() => _builder.ToStringAndClear();
}

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
