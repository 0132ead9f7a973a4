using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>What the node loop reacts to; everything that touches the Raft core goes through it.</summary>
internal abstract class LoopInput;

internal sealed class InboundInput(InboundMessage message) : LoopInput
{
    public InboundMessage Message { get; } = message;
}

internal sealed class TickInput : LoopInput
{
    public static readonly TickInput Instance = new();
}

/// <summary>Runs an action on the loop (reads of the core's state, leadership transfer).</summary>
internal sealed class ActionInput(Action action) : LoopInput
{
    public Action Action { get; } = action;
}

/// <summary>An append waiting for its entry to commit; posted to the loop as is.</summary>
internal sealed class PendingAppend(long sequence, byte[] envelope) : LoopInput
{
    public long Sequence { get; } = sequence;

    public byte[] Envelope { get; } = envelope;

    public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>When it was appended (timestamp), for the append-duration metric; 0 when not measured.</summary>
    public long StartedAt { get; init; }

    /// <summary>The caller's timeout; null when it waits without limit.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>The timestamp after which the node's timer fails it with a <see cref="TimeoutException"/>.</summary>
    public long Deadline { get; init; } = long.MaxValue;

    /// <summary>Where it was last sent: this node (proposed) or the leader it was forwarded to; null while unsent.</summary>
    public string? SentTo { get; set; }

    /// <summary>Submitted once already (sent, or left waiting for a leader); fresh appends are submitted by their own input.</summary>
    public bool Submitted { get; set; }

    /// <summary>Already in the batch being submitted.</summary>
    public bool InBatch { get; set; }

    /// <summary>
    /// Whether a periodic retry should submit it again: it was submitted before (a fresh append is
    /// submitted by its own input, so retrying it would propose it twice), is not in this leader's log
    /// from this term, and is unsent, from an older term, or sent an election timeout ago.
    /// </summary>
    public bool NeedsRetry(string selfId, long term, bool isLeader, long tick, int retryTicks)
    {
        bool proposedHere = SentTo == selfId && SentTerm == term && isLeader;
        return Submitted && !proposedHere && (SentTo is null || SentTerm != term || tick - SentAtTick >= retryTicks);
    }

    /// <summary>Whether a newly known leader should get it: submitted before, but not to that leader in this term.</summary>
    public bool NeedsResubmitFor(string? leaderId, long term) => Submitted && (SentTo != leaderId || SentTerm != term);

    public long SentTerm { get; set; } = -1;

    public long SentAtTick { get; set; }
}

/// <summary>A leader RPC waiting for its reply; posted to the loop as is.</summary>
internal sealed class PendingDispatch(long callId, string method, ReadOnlyMemory<byte> args) : LoopInput
{
    public long CallId { get; } = callId;

    public string Method { get; } = method;

    public ReadOnlyMemory<byte> Args { get; } = args;

    public TaskCompletionSource<byte[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
