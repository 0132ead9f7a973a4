namespace Gaggle;

/// <summary>
/// The names under which Gaggle reports to System.Diagnostics, for OpenTelemetry's
/// <c>AddSource(GaggleDiagnostics.ActivitySourceName)</c> and <c>AddMeter(GaggleDiagnostics.MeterName)</c>.
/// </summary>
/// <remarks>
/// Spans (activities): <c>gaggle.append</c> (an append, until its commit is known on the appending
/// node), <c>gaggle.lock.acquire</c> (until granted, denied or given up; the wait included),
/// <c>gaggle.lock.release</c>, <c>gaggle.rpc</c> (a leader RPC call, until its result) and, on the
/// leader, <c>gaggle.append.leader</c> (a forwarded append, from its proposal until the leader knows
/// it committed) and <c>gaggle.rpc.handle</c> (the handler's run). The leader's spans are children of
/// the caller's: a forwarding node sends the caller's trace context along, so one trace shows the
/// hop. A leadership change is a <c>gaggle.leadership</c> span with a <c>leader.changed</c> event.
/// Nothing is recorded unless a listener samples the source.
/// </remarks>
public static class GaggleDiagnostics
{
    /// <summary>The name of Gaggle's <see cref="System.Diagnostics.ActivitySource"/>.</summary>
    public const string ActivitySourceName = "Gaggle";

    /// <summary>The name of Gaggle's <see cref="System.Diagnostics.Metrics.Meter"/>.</summary>
    public const string MeterName = "Gaggle";
}
