using System.Diagnostics.Metrics;

namespace Gaggle.Runtime;

/// <summary>The <c>Gaggle</c> meter: one set of instruments per process, tagged with the node id.</summary>
internal static class GaggleMetrics
{
    public const string MeterName = GaggleDiagnostics.MeterName;

    public static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> LeaderChanges = Meter.CreateCounter<long>("gaggle.leader.changes", description: "Changes of the leader a node knows (elections seen).");

    public static readonly Counter<long> Commits = Meter.CreateCounter<long>("gaggle.entries.committed", description: "Application entries applied.");

    public static readonly Counter<long> DroppedMessages = Meter.CreateCounter<long>("gaggle.messages.dropped", description: "Inbound messages dropped, by reason.");

    public static readonly Histogram<double> AppendDuration = Meter.CreateHistogram<double>("gaggle.append.duration", unit: "ms", description: "From AppendAsync to the entry applied on the appending node.");

    public static readonly Counter<long> MembershipChanges = Meter.CreateCounter<long>("gaggle.membership.changes", description: "Membership changes and leadership transfers a leader completed, by change and by who asked.");

    public static readonly Histogram<double> LockWait = Meter.CreateHistogram<double>("gaggle.lock.wait", unit: "ms", description: "From an acquire request to its grant.");
}
