using System.Diagnostics;

namespace Gaggle.Runtime;

/// <summary>
/// The leader's spans of forwarded appends (<c>gaggle.append.leader</c>): each starts when the leader
/// proposes the entry, as a child of the caller's span on the node that forwarded it, and ends when the
/// leader knows the entry committed (or stops leading first). Used by the node's loop only. At most
/// <see cref="MaxOpen"/> are open; beyond that the oldest ends unfinished.
/// </summary>
internal sealed class LeaderSpans
{
    private const int MaxOpen = 10_000;

    private readonly Queue<(long Index, Activity Span)> _open = new();

    /// <summary>Starts a span for each traced proposal, without making it the loop's current activity.</summary>
    public void Start(List<TracedProposal> proposals, string nodeId)
    {
        if (proposals.Count == 0)
        {
            return;
        }

        var previous = Activity.Current;
        foreach (var proposal in proposals)
        {
            var span = GaggleTracing.Source.StartActivity("gaggle.append.leader", ActivityKind.Server, proposal.Context);
            if (span is null)
            {
                continue;
            }

            span.SetTag(GaggleTracing.NodeTag, nodeId).SetTag("gaggle.append.origin", proposal.Origin)
                .SetTag("gaggle.append.sequence", proposal.Sequence).SetTag("gaggle.append.index", proposal.Index);
            if (_open.Count >= MaxOpen)
            {
                End(_open.Dequeue().Span, "unfinished");
            }

            _open.Enqueue((proposal.Index, span));
        }

        Activity.Current = previous;
    }

    /// <summary>Ends the spans of entries up to <paramref name="committed"/>; all of them, unfinished, when this node no longer leads.</summary>
    public void EndCommitted(long committed, bool leads)
    {
        while (_open.TryPeek(out var open) && (open.Index <= committed || !leads))
        {
            _open.Dequeue();
            End(open.Span, open.Index <= committed ? "committed" : "leadership lost");
        }
    }

    /// <summary>The node stopped: every open span ends unfinished.</summary>
    public void EndAll()
    {
        while (_open.TryDequeue(out var open))
        {
            End(open.Span, "unfinished");
        }
    }

    /// <summary>A leadership change, as a span of its own with a <c>leader.changed</c> event.</summary>
    public static void RecordLeaderChange(string nodeId, long term, string? leader, string role)
    {
        if (!GaggleTracing.Source.HasListeners())
        {
            return;
        }

        var previous = Activity.Current;
        Activity.Current = null;
        using (var span = GaggleTracing.Source.StartActivity("gaggle.leadership", ActivityKind.Internal, parentContext: default))
        {
            span?.SetTag(GaggleTracing.NodeTag, nodeId).SetTag("gaggle.term", term).SetTag("gaggle.leader", leader).SetTag("gaggle.role", role)
                .AddEvent(new ActivityEvent("leader.changed"));
        }

        Activity.Current = previous;
    }

    private static void End(Activity span, string outcome)
    {
        span.SetTag("gaggle.append.outcome", outcome);
        span.Stop();
    }
}
