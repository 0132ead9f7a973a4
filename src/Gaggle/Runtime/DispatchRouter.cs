using Gaggle.Channels;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>
/// Leader RPC bookkeeping: a call goes to the leader (run here when this node leads, sent to the known
/// leader, or held until one is known), a request from another node is served when this node leads,
/// and a reply is matched to its call by this incarnation and the call id. At most once: a lost
/// message makes the caller time out, never a second run.
/// </summary>
internal sealed class DispatchRouter(ulong incarnation, List<Outgoing> outbox, NodeEvents events)
{
    private readonly Dictionary<long, DriverDispatch> _calls = [];
    private readonly List<DriverDispatch> _unsent = [];

    /// <summary>Calls waiting for a reply or a leader.</summary>
    public int Pending => _calls.Count;

    public void Call(RaftCore core, DriverDispatch call)
    {
        _calls[call.CallId] = call;
        Route(core, call);
    }

    /// <summary>The caller stopped waiting.</summary>
    public void Abandon(long callId) => _calls.Remove(callId);

    /// <summary>Sends the calls held for want of a leader, once one is known.</summary>
    public void RouteUnsent(RaftCore core)
    {
        if (_unsent.Count == 0 || core.LeaderId is null)
        {
            return;
        }

        var unsent = _unsent.ToArray();
        _unsent.Clear();
        foreach (var call in unsent)
        {
            Route(core, call);
        }
    }

    /// <summary>A request from another node: run by this leader, or refused so the caller retries with the real one.</summary>
    public void Serve(RaftCore core, string from, DispatchRequest request, System.Diagnostics.ActivityContext trace = default)
    {
        if (core.Role != RaftRole.Leader)
        {
            outbox.Add(new Outgoing(from, new DispatchReply(request.Incarnation, request.CallId, DispatchStatus.NotLeader, ReadOnlyMemory<byte>.Empty, "")));
            return;
        }

        events.Handlers.Add(new HandlerCall(request.Method, request.Args, from, request.Incarnation, request.CallId, null) { Trace = trace });
    }

    public void OnReply(DispatchReply reply)
    {
        if (reply.Incarnation != incarnation || !_calls.TryGetValue(reply.CallId, out var call))
        {
            return;
        }

        if (reply.Status == DispatchStatus.NotLeader)
        {
            // The handler did not run; try again once a (new) leader is known.
            _unsent.Add(call);
            return;
        }

        _calls.Remove(reply.CallId);
        events.DispatchReplies.Add((call, reply));
    }

    private void Route(RaftCore core, DriverDispatch call)
    {
        if (!_calls.ContainsKey(call.CallId))
        {
            return;
        }

        if (core.Role == RaftRole.Leader)
        {
            // In the node's hands now: it runs the handler and completes the caller.
            _calls.Remove(call.CallId);
            events.Handlers.Add(new HandlerCall(call.Method, call.Args, null, incarnation, call.CallId, call) { Trace = call.Trace });
        }
        else if (core.LeaderId is { } leader)
        {
            if (call.Trace != default)
            {
                outbox.Add(new Outgoing(leader, new TraceContexts([], [new TracedRequest(call.CallId, call.Trace)])));
            }

            outbox.Add(new Outgoing(leader, new DispatchRequest(incarnation, call.CallId, call.Method, call.Args)));
        }
        else
        {
            _unsent.Add(call);
        }
    }
}
