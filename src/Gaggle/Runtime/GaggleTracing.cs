using System.Diagnostics;

namespace Gaggle.Runtime;

/// <summary>Gaggle's activity source and the names of its spans and tags (see <see cref="GaggleDiagnostics"/>).</summary>
internal static class GaggleTracing
{
    public static readonly ActivitySource Source = new(GaggleDiagnostics.ActivitySourceName, typeof(GaggleTracing).Assembly.GetName().Version?.ToString());

    public const string NodeTag = "gaggle.node";

    /// <summary>
    /// The trace context a request carries to the leader: its own span's, else the caller's current one;
    /// default (nothing sent) while nobody listens to Gaggle's spans or the trace is not recorded, so an
    /// app that traces only its own requests pays no extra message.
    /// </summary>
    public static ActivityContext ContextToSend(Activity? own)
        => (own ?? Activity.Current) is { Recorded: true } span && Source.HasListeners() ? span.Context : default;

    /// <summary>Ends <paramref name="activity"/> as failed by <paramref name="error"/>.</summary>
    public static void Fail(Activity? activity, Exception error)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetStatus(ActivityStatusCode.Error, error.Message);
        activity.SetTag("error.type", error.GetType().FullName);
    }
}
