using System.Runtime.CompilerServices;

namespace Gaggle.Tests.Support;

/// <summary>Something that may be recording a trace (the seeded simulators).</summary>
internal interface ITraceSource
{
    bool IsTracing { get; }
}

/// <summary>
/// Builds a trace line only when the simulator records a trace, so untraced runs (nearly all of
/// them) pay nothing for formatting messages.
/// </summary>
[InterpolatedStringHandler]
internal ref struct TraceHandler
{
    private DefaultInterpolatedStringHandler _builder;

    public TraceHandler(int literalLength, int formattedCount, ITraceSource source, out bool enabled)
    {
        enabled = source.IsTracing;
        _builder = enabled ? new DefaultInterpolatedStringHandler(literalLength, formattedCount) : default;
    }

    public void AppendLiteral(string value) => _builder.AppendLiteral(value);

    public void AppendFormatted<T>(T value) => _builder.AppendFormatted(value);

    public void AppendFormatted<T>(T value, int alignment) => _builder.AppendFormatted(value, alignment);

    public void AppendFormatted(string? value) => _builder.AppendFormatted(value);

    public string ToStringAndClear() => _builder.ToStringAndClear();
}
