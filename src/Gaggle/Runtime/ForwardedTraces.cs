using System.Diagnostics;
using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>
/// The leader's side of trace propagation: the trace contexts other nodes sent (<see cref="TraceContexts"/>)
/// for the appends and RPC calls they send next, kept until the append is proposed or the call is
/// served. Bounded: when it holds <see cref="Capacity"/> contexts it forgets them all (a context that
/// never met its request, because the request was lost or refused, must not stay for ever); a trace
/// then misses the leader's span, nothing else changes.
/// </summary>
internal sealed class ForwardedTraces
{
    public const int Capacity = 4096;

    private readonly Dictionary<(string From, long Id, bool Call), ActivityContext> _contexts = [];

    public void Remember(string from, TraceContexts traces)
    {
        if (_contexts.Count + traces.Appends.Count + traces.Calls.Count > Capacity)
        {
            _contexts.Clear();
        }

        foreach (var append in traces.Appends)
        {
            _contexts[(from, append.Id, false)] = append.Context;
        }

        foreach (var call in traces.Calls)
        {
            _contexts[(from, call.Id, true)] = call.Context;
        }
    }

    /// <summary>The context of <paramref name="from"/>'s append <paramref name="sequence"/>, taken (default when none came).</summary>
    public ActivityContext TakeAppend(string from, long sequence) => Take((from, sequence, false));

    /// <summary>The context of <paramref name="from"/>'s RPC call <paramref name="callId"/>, taken (default when none came).</summary>
    public ActivityContext TakeCall(string from, long callId) => Take((from, callId, true));

    private ActivityContext Take((string, long, bool) key) => _contexts.Count > 0 && _contexts.Remove(key, out var context) ? context : default;
}
