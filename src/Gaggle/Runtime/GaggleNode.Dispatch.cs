using System.Text.Json;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>Leader RPC: a call runs the named handler on the leader and its result goes back to the caller only.</summary>
public sealed partial class GaggleNode
{
    private readonly List<PendingDispatch> _unsentDispatches = [];

    /// <summary>
    /// Runs the RPC handler <paramref name="method"/> on the current leader (this node, or the leader
    /// it knows; waiting for one when none is known) and returns its result. A call is delivered at
    /// most once: when a message is lost the call times out rather than running twice.
    /// </summary>
    /// <param name="method">The handler's name in <see cref="GaggleOptions.RpcHandlers"/>.</param>
    /// <param name="args">The handler's arguments.</param>
    /// <param name="timeout">How long to wait for the result; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The bytes the handler returned.</returns>
    /// <exception cref="GaggleRpcException">The handler threw, or the leader has no handler by that name.</exception>
    /// <exception cref="TimeoutException">No result arrived within <paramref name="timeout"/>.</exception>
    public Task<byte[]> DispatchOnLeaderAsync(string method, ReadOnlyMemory<byte> args, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(method);
        long callId = Interlocked.Increment(ref _nextCallId);
        var pending = new PendingDispatch(callId, method, args.ToArray());
        return PostAndWaitAsync(
            _dispatches, callId, pending, pending.Completion.Task, timeout, cancellationToken,
            static (node, pending, timeout) => $"The RPC '{pending.Method}' from node '{node.Id}' got no result within {timeout.TotalMilliseconds:0} ms (leader: {node.LeaderId ?? "none"}).");
    }

    /// <summary>Calls <paramref name="method"/> on the leader with JSON-serialized arguments and deserializes its JSON result.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <typeparam name="TResult">The result's type.</typeparam>
    /// <param name="method">The handler's name.</param>
    /// <param name="args">The arguments.</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="jsonOptions">Serializer options; the defaults when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The handler's result.</returns>
    public async Task<TResult?> DispatchOnLeaderAsync<TArgs, TResult>(string method, TArgs args, TimeSpan? timeout = null, JsonSerializerOptions? jsonOptions = null, CancellationToken cancellationToken = default)
    {
        var result = await DispatchOnLeaderAsync(method, JsonSerializer.SerializeToUtf8Bytes(args, jsonOptions), timeout, cancellationToken).ConfigureAwait(false);
        return JsonSerializer.Deserialize<TResult>(result, jsonOptions);
    }

    private void RouteDispatch(RaftCore core, PendingDispatch pending)
    {
        if (!_dispatches.ContainsKey(pending.CallId))
        {
            return;
        }

        if (core.Role == RaftRole.Leader)
        {
            _ = RunHandlerAsync(pending.Method, pending.Args).ContinueWith(
                t => CompleteDispatch(pending, t.Result),
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        else if (core.LeaderId is { } leader)
        {
            _ = SendAsync(leader, new DispatchRequest(_incarnation, pending.CallId, pending.Method, pending.Args));
        }
        else
        {
            _unsentDispatches.Add(pending);
        }
    }

    private void RouteUnsentDispatches(RaftCore core)
    {
        if (_unsentDispatches.Count == 0 || core.LeaderId is null)
        {
            return;
        }

        var unsent = _unsentDispatches.ToArray();
        _unsentDispatches.Clear();
        foreach (var pending in unsent)
        {
            RouteDispatch(core, pending);
        }
    }

    private void ServeDispatch(RaftCore core, string from, DispatchRequest request)
    {
        if (core.Role != RaftRole.Leader)
        {
            _ = SendAsync(from, new DispatchReply(request.Incarnation, request.CallId, DispatchStatus.NotLeader, ReadOnlyMemory<byte>.Empty, ""));
            return;
        }

        _ = RunHandlerAsync(request.Method, request.Args).ContinueWith(
            t => SendAsync(from, t.Result with { Incarnation = request.Incarnation, CallId = request.CallId }).AsTask(),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Runs a handler off the loop; never throws (failures become the reply).</summary>
    private async Task<DispatchReply> RunHandlerAsync(string method, ReadOnlyMemory<byte> args)
    {
        if (!_options.RpcHandlers.TryGetValue(method, out var handler))
        {
            return new DispatchReply(0, 0, DispatchStatus.UnknownMethod, ReadOnlyMemory<byte>.Empty,
                $"The RPC method '{method}' is not registered on the leader '{Id}'.");
        }

        try
        {
            await Task.Yield();
            var result = await handler(args, _stopping.Token).ConfigureAwait(false);
            return new DispatchReply(0, 0, DispatchStatus.Ok, result ?? [], "");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new DispatchReply(0, 0, DispatchStatus.HandlerFailed, ReadOnlyMemory<byte>.Empty,
                $"The RPC method '{method}' failed on the leader '{Id}': {e.GetType().Name}: {e.Message}");
        }
    }

    private void CompleteDispatch(RaftCore core, DispatchReply reply)
    {
        if (reply.Incarnation != _incarnation || !_dispatches.TryGetValue(reply.CallId, out var pending))
        {
            return;
        }

        if (reply.Status == DispatchStatus.NotLeader)
        {
            // The handler did not run; try again once a (new) leader is known.
            _unsentDispatches.Add(pending);
            return;
        }

        CompleteDispatch(pending, reply);
    }

    private static void CompleteDispatch(PendingDispatch pending, DispatchReply reply)
    {
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
