using System.Collections.Concurrent;
using System.Text.Json;
using Gaggle.Channels;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>Leader RPC: the public API and the handlers' runs; the driver routes calls and matches replies.</summary>
public sealed partial class GaggleNode
{
    private readonly ConcurrentDictionary<long, PendingDispatch> _dispatches = new();

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
        return DispatchCoreAsync(method, args, timeout, cancellationToken);
    }

    private async Task<byte[]> DispatchCoreAsync(string method, ReadOnlyMemory<byte> args, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        ValidateTimeout(timeout);
        long callId = Interlocked.Increment(ref _nextCallId);
        var pending = new PendingDispatch(callId, method, args.ToArray());
        _dispatches[callId] = pending;
        try
        {
            Post(pending);
            return timeout is { } t
                ? await pending.Completion.Task.WaitAsync(t, _time, cancellationToken).ConfigureAwait(false)
                : await pending.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The RPC '{method}' from node '{Id}' got no result within {timeout!.Value.TotalMilliseconds:0} ms (leader: {LeaderId ?? "none"}).");
        }
        finally
        {
            if (_dispatches.TryRemove(callId, out _) && !pending.Completion.Task.IsCompleted)
            {
                _inbox.Writer.TryWrite(new ActionInput(driver => driver.AbandonDispatch(callId)));
            }
        }
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

    /// <summary>Completes the calls the driver matched with replies and starts the handlers it routed here.</summary>
    private void CompleteDispatches(NodeEvents events)
    {
        foreach (var (call, reply) in events.DispatchReplies)
        {
            Complete((PendingDispatch)call, reply);
        }

        foreach (var handler in events.Handlers)
        {
            if (handler.Local is PendingDispatch local)
            {
                _ = RunHandlerAsync(handler.Method, handler.Args).ContinueWith(
                    t => Complete(local, t.Result),
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            else if (handler.ReplyTo is { } caller)
            {
                _ = RunHandlerAsync(handler.Method, handler.Args).ContinueWith(
                    t => SendAsync(caller, t.Result with { Incarnation = handler.CallerIncarnation, CallId = handler.CallId }).AsTask(),
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).Unwrap();
            }
        }
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

    private static void Complete(PendingDispatch pending, DispatchReply reply)
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
