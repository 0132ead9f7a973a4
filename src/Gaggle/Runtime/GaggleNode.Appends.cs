using System.Diagnostics;
using System.Text.Json;
using Gaggle.Runtime;

namespace Gaggle;

/// <summary>Appends: the public API; the driver proposes, forwards, retries and applies them.</summary>
public sealed partial class GaggleNode
{
    /// <summary>
    /// Appends <paramref name="data"/> to the replicated log and completes with its index once it is
    /// committed. Works on any node: a follower forwards to the leader, and while no leader is known
    /// the append waits. Lost messages and leader changes are retried; an entry appended twice by a
    /// retry is delivered once.
    /// </summary>
    /// <param name="data">The entry's payload (opaque bytes; at most <see cref="GaggleOptions.MaxMessageBytes"/>).</param>
    /// <param name="timeout">How long to wait for the commit; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting (the entry may still be committed later).</param>
    /// <returns>The committed entry's log index.</returns>
    /// <exception cref="TimeoutException">The entry was not known to be committed within <paramref name="timeout"/>; it may still commit later.</exception>
    /// <exception cref="InvalidOperationException">The entry's outcome became unknown before the timeout: this node was removed from the cluster meanwhile (paused or cut off past the member timeout), and started over or was added again. It may have been committed.</exception>
    /// <exception cref="ObjectDisposedException">The node stopped first.</exception>
    public Task<long> AppendAsync(ReadOnlyMemory<byte> data, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (data.Length > _options.MaxMessageBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(data), data.Length, $"The entry is {data.Length} bytes; MaxMessageBytes allows at most {_options.MaxMessageBytes}.");
        }

        long sequence = NextSequence();
        return AppendEnvelopeAsync(sequence, new EntryEnvelope(EntryPayloadKind.User, 0, Id, _incarnation, sequence, data).Encode(), timeout, cancellationToken, recordDuration: true);
    }

    /// <summary>Serializes <paramref name="value"/> with System.Text.Json and appends it; see <see cref="AppendAsync(ReadOnlyMemory{byte}, TimeSpan?, CancellationToken)"/>.</summary>
    /// <typeparam name="T">The value's type.</typeparam>
    /// <param name="value">The value to append.</param>
    /// <param name="timeout">How long to wait for the commit; forever when null.</param>
    /// <param name="jsonOptions">Serializer options; the defaults when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The committed entry's log index.</returns>
    public Task<long> AppendJsonAsync<T>(T value, TimeSpan? timeout = null, JsonSerializerOptions? jsonOptions = null, CancellationToken cancellationToken = default)
        => AppendAsync(JsonSerializer.SerializeToUtf8Bytes(value, jsonOptions), timeout, cancellationToken);

    internal long NextSequence() => _sequences.Next();

    internal ulong Incarnation => _incarnation;

    /// <summary>
    /// Appends an encoded entry envelope and waits until it is committed and applied here. The driver
    /// times the append out at its first tick after the deadline, and the node's timer does too while
    /// the loop is stuck: no timer per append.
    /// </summary>
    /// <param name="sequence">The envelope's sequence number.</param>
    /// <param name="envelope">The encoded envelope.</param>
    /// <param name="timeout">How long to wait; forever when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <param name="recordDuration">Record the append-duration metric.</param>
    /// <param name="watchedLockParts">When the envelope is a lock request whose outcome the caller waits for, how many locks it asks for (0 otherwise).</param>
    /// <param name="watchedLockName">For such a request, the first lock's name.</param>
    internal Task<long> AppendEnvelopeAsync(long sequence, byte[] envelope, TimeSpan? timeout, CancellationToken cancellationToken, bool recordDuration = false, int watchedLockParts = 0, string watchedLockName = "")
    {
        if (InvalidTimeout(timeout) is { } invalid)
        {
            // In the task, as from any async API.
            return Task.FromException<long>(invalid);
        }

        var pending = new PendingAppend(sequence, envelope)
        {
            StartedAt = recordDuration ? _time.GetTimestamp() : 0,
            Timeout = timeout is { } t && t != Timeout.InfiniteTimeSpan ? t : null,
            DeadlineUs = timeout is { } limit && limit != Timeout.InfiniteTimeSpan ? DeadlineAfter(NowUs(), limit) : long.MaxValue,
            WatchedLockParts = watchedLockParts,
            WatchedLockName = watchedLockName,
        };
        return WaitForCommitAsync(pending, cancellationToken);
    }

    /// <summary>Registers <paramref name="pending"/>, posts it to the loop and waits for its commit (its own async method: a small state machine per append).</summary>
    private async Task<long> WaitForCommitAsync(PendingAppend pending, CancellationToken cancellationToken)
    {
        // An application's append is a span of its own; a lock command's append goes with the lock's span.
        using var activity = pending.StartedAt != 0 ? GaggleTracing.Source.StartActivity("gaggle.append") : null;
        activity?.SetTag(GaggleTracing.NodeTag, Id).SetTag("gaggle.append.sequence", pending.Sequence);
        pending.Trace = GaggleTracing.ContextToSend(activity);
        _appendCallers.Add(pending);
        try
        {
            Post(pending);
            long index = cancellationToken.CanBeCanceled
                ? await pending.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false)
                : await pending.Completion.Task.ConfigureAwait(false);
            activity?.SetTag("gaggle.append.index", index);
            return index;
        }
        catch (Exception e)
        {
            GaggleTracing.Fail(activity, e);
            throw;
        }
        finally
        {
            if (!pending.CallerResumes)
            {
                _appendCallers.Resumed(pending);
            }

            // Whoever completed it removed it first; a cancelled wait leaves here, and the driver stops retrying it.
            if (!pending.Completion.Task.IsCompleted && _appendCallers.Remove(pending.Sequence))
            {
                PostAbandon(pending.Sequence);
            }
        }
    }

    /// <summary>Tells the driver to stop retrying append <paramref name="sequence"/> (its own method: the closure is made only when needed).</summary>
    private void PostAbandon(long sequence) => _inbox.TryWrite(new ActionInput(driver => driver.Abandon(sequence)));

    /// <summary>The time <paramref name="limit"/> after <paramref name="nowUs"/>; long.MaxValue (never) when that is beyond the clock's range.</summary>
    private static long DeadlineAfter(long nowUs, TimeSpan limit)
    {
        double span = limit.TotalMicroseconds;
        return span >= long.MaxValue - (double)Math.Max(nowUs, 0) ? long.MaxValue : nowUs + (long)span;
    }

    private TimeoutException TimedOut(PendingAppend pending) => new(
        $"The entry appended on node '{Id}' was not committed within {pending.Timeout?.TotalMilliseconds ?? 0:0} ms (leader: {LeaderId ?? "none"}); it may still be committed later.");

    private static ArgumentOutOfRangeException? InvalidTimeout(TimeSpan? timeout)
        => timeout is { } t && t < TimeSpan.Zero && t != Timeout.InfiniteTimeSpan
            ? new ArgumentOutOfRangeException(nameof(timeout), t, "The timeout must be positive, zero, or null to wait forever.")
            : null;
}
