using System.Collections.Concurrent;
using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>
/// Leader RPC on the node's side of the driver: the callers waiting for replies (registered from any
/// thread), and the handlers the driver routed here, run off the loop; a remote caller's reply is sent
/// by <paramref name="send"/>.
/// </summary>
internal sealed class DispatchCallers(string nodeId, IDictionary<string, RpcHandler> handlers, CancellationToken stopping, Func<string, WireMessage, ValueTask> send)
{
    private readonly ConcurrentDictionary<long, PendingDispatch> _pending = new();
    private int _starting;

    /// <summary>Handlers routed here that have not yet returned from their synchronous start (they run on the thread pool).</summary>
    public int HandlersStarting => Volatile.Read(ref _starting);

    public void Add(PendingDispatch call) => _pending[call.CallId] = call;

    public bool IsWaiting(long callId) => _pending.ContainsKey(callId);

    /// <summary>The caller stopped waiting; true when it had not been completed yet.</summary>
    public bool Remove(long callId) => _pending.TryRemove(callId, out _);

    /// <summary>Completes the calls the driver matched with replies and starts the handlers it routed here.</summary>
    public void CarryOut(NodeEvents events)
    {
        foreach (var (call, reply) in events.DispatchReplies)
        {
            Complete((PendingDispatch)call, reply);
        }

        foreach (var handler in events.Handlers)
        {
            Interlocked.Increment(ref _starting);
            if (handler.Local is PendingDispatch local)
            {
                _ = RunAsync(handler.Method, handler.Args, handler.Trace).ContinueWith(
                    t => Complete(local, t.Result),
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            else if (handler.ReplyTo is { } caller)
            {
                _ = RunAsync(handler.Method, handler.Args, handler.Trace).ContinueWith(
                    t => send(caller, t.Result with { Incarnation = handler.CallerIncarnation, CallId = handler.CallId }).AsTask(),
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).Unwrap();
            }
        }
    }

    public void FailAll(Exception error)
    {
        foreach (var key in _pending.Keys)
        {
            if (_pending.TryRemove(key, out var pending))
            {
                pending.Completion.TrySetException(error);
            }
        }
    }

    /// <summary>Runs a handler off the loop; never throws (failures become the reply).</summary>
    private async Task<DispatchReply> RunAsync(string method, ReadOnlyMemory<byte> args, System.Diagnostics.ActivityContext trace)
    {
        // Inside this async method, so the loop's own context never carries the span.
        using var activity = GaggleTracing.Source.StartActivity("gaggle.rpc.handle", System.Diagnostics.ActivityKind.Server, trace);
        activity?.SetTag(GaggleTracing.NodeTag, nodeId).SetTag("rpc.method", method);
        if (!handlers.TryGetValue(method, out var handler))
        {
            Interlocked.Decrement(ref _starting);
            return new DispatchReply(0, 0, DispatchStatus.UnknownMethod, ReadOnlyMemory<byte>.Empty,
                $"The RPC method '{method}' is not registered on the leader '{nodeId}'.");
        }

        try
        {
            await Task.Yield();
            ValueTask<byte[]> running;
            try
            {
                running = handler(args, stopping);
            }
            finally
            {
                Interlocked.Decrement(ref _starting);
            }

            var result = await running.ConfigureAwait(false);
            return new DispatchReply(0, 0, DispatchStatus.Ok, result ?? [], "");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            GaggleTracing.Fail(activity, e);
            return new DispatchReply(0, 0, DispatchStatus.HandlerFailed, ReadOnlyMemory<byte>.Empty,
                $"The RPC method '{method}' failed on the leader '{nodeId}': {e.GetType().Name}: {e.Message}");
        }
    }

    private void Complete(PendingDispatch pending, DispatchReply reply)
    {
        _pending.TryRemove(pending.CallId, out _);
        if (reply.Status == DispatchStatus.Ok)
        {
            pending.Completion.TrySetResult(reply.Result.ToArray());
        }
        else
        {
            pending.Completion.TrySetException(new GaggleRpcException(pending.Method, reply.Error));
        }
    }
}
