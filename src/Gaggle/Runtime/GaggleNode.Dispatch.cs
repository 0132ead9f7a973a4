using System.Diagnostics;
using System.Text.Json;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>Leader RPC: the public API; the driver routes calls and matches replies, <see cref="DispatchCallers"/> completes them and runs the handlers.</summary>
public sealed partial class GaggleNode
{
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
        if (InvalidTimeout(timeout) is { } invalid)
        {
            throw invalid;
        }

        long callId = Interlocked.Increment(ref _nextCallId);
        using var activity = GaggleTracing.Source.StartActivity("gaggle.rpc", ActivityKind.Client);
        activity?.SetTag(GaggleTracing.NodeTag, Id).SetTag("rpc.method", method);
        var pending = new PendingDispatch(callId, method, args.ToArray()) { Trace = GaggleTracing.ContextToSend(activity) };
        _dispatchCallers.Add(pending);
        try
        {
            Post(pending);
            return timeout is { } t
                ? await pending.Completion.Task.WaitAsync(t, _time, cancellationToken).ConfigureAwait(false)
                : await pending.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            var error = new TimeoutException($"The RPC '{method}' from node '{Id}' got no result within {timeout!.Value.TotalMilliseconds:0} ms (leader: {LeaderId ?? "none"}).");
            GaggleTracing.Fail(activity, error);
            throw error;
        }
        catch (Exception e)
        {
            GaggleTracing.Fail(activity, e);
            throw;
        }
        finally
        {
            if (_dispatchCallers.Remove(callId) && !pending.Completion.Task.IsCompleted)
            {
                PostAbandonDispatch(callId);
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

    /// <summary>Tells the driver the caller of <paramref name="callId"/> stopped waiting (its own method: the closure is made only when needed).</summary>
    private void PostAbandonDispatch(long callId) => _inbox.TryWrite(new ActionInput(driver => driver.AbandonDispatch(callId)));
}
