using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>What the node loop reacts to; everything that touches the node driver goes through it.</summary>
internal interface ILoopInput
{
    /// <summary>
    /// The loop failed while its pass was on this input, or before taking it (see <see cref="LoopInbox"/>):
    /// whoever waits for it gets <paramref name="error"/>. Runs on the loop's failing run: must not throw,
    /// and completes only tasks whose continuations run asynchronously.
    /// </summary>
    void Abandon(Exception error)
    {
    }
}

internal sealed class InboundInput(InboundMessage message) : ILoopInput
{
    public InboundMessage Message { get; } = message;
}

internal sealed class TickInput : ILoopInput
{
    public static readonly TickInput Instance = new();
}

/// <summary>
/// Runs an action with the driver on the loop (reads of its state, lock watches, leadership transfer);
/// <paramref name="abandoned"/>, when given, tells a waiting caller that the loop failed first (see
/// <see cref="ILoopInput.Abandon"/>: it must not throw).
/// </summary>
internal sealed class ActionInput(Action<NodeDriver> action, Action<Exception>? abandoned = null) : ILoopInput
{
    public Action<NodeDriver> Action { get; } = action;

    public void Abandon(Exception error) => abandoned?.Invoke(error);

    /// <summary>An input that completes <paramref name="result"/> with what <paramref name="read"/> returns, or with the loop's failure.</summary>
    public static ActionInput Reading<T>(Func<NodeDriver, T> read, TaskCompletionSource<T> result)
        => new(driver => result.TrySetResult(read(driver)), error => result.TrySetException(error));
}

/// <summary>An append waiting for its entry to commit; posted to the loop as is, and tracked by the driver.</summary>
internal sealed class PendingAppend(long sequence, byte[] envelope) : DriverAppend(sequence, envelope), ILoopInput
{
    public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>When it was appended (timestamp), for the append-duration metric; 0 when not measured.</summary>
    public long StartedAt { get; init; }

    /// <summary>The caller's timeout; null when it waits without limit.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>For a lock request whose outcome the caller waits for (the driver watches it), how many locks it asks for; 0 for any other append.</summary>
    public int WatchedLockParts { get; init; }

    /// <summary>For such a lock request, the name its withdrawal names (the first lock's).</summary>
    public string WatchedLockName { get; init; } = "";

    public void Abandon(Exception error) => Completion.TrySetException(error);

    /// <summary>
    /// Its caller reports when it resumed (<see cref="AppendCallers.Resumed"/>) once it has set up what
    /// it does next, instead of the wait's end doing it (a renewal: once its next timer is set).
    /// </summary>
    public bool CallerResumes { get; init; }

    /// <summary>0 while its caller waits, 1 once the loop answered it (the caller not resumed yet), 2 once the caller left.</summary>
    private int _handOver;

    /// <summary>The loop answers it: true when its caller still waited (it is now answered but not resumed).</summary>
    public bool HandOver() => Interlocked.CompareExchange(ref _handOver, 1, 0) == 0;

    /// <summary>Its caller leaves: true when the loop had answered it (see <see cref="HandOver"/>).</summary>
    public bool Leave() => Interlocked.Exchange(ref _handOver, 2) == 1;
}

/// <summary>A leader RPC waiting for its reply; posted to the loop as is, and routed by the driver.</summary>
internal sealed class PendingDispatch(long callId, string method, ReadOnlyMemory<byte> args) : DriverDispatch(callId, method, args), ILoopInput
{
    public TaskCompletionSource<byte[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Abandon(Exception error) => Completion.TrySetException(error);
}
