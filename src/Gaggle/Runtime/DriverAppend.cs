namespace Gaggle.Runtime;

/// <summary>
/// An append the node driver tracks until its entry is applied on this node: proposed (leader) or
/// forwarded (follower), retried on a leader change or when its commit is not seen for an election
/// timeout, timed out by the driver's clock. The node's loop subclasses it to carry the caller's task.
/// </summary>
/// <param name="sequence">The append's sequence number on this node incarnation (its id in the duplicate table).</param>
/// <param name="envelope">The encoded entry envelope.</param>
internal class DriverAppend(long sequence, byte[] envelope)
{
    public long Sequence { get; } = sequence;

    public byte[] Envelope { get; } = envelope;

    /// <summary>The driver-clock time (microseconds) after which the append is given up as timed out; long.MaxValue for never.</summary>
    public long DeadlineUs { get; init; } = long.MaxValue;

    /// <summary>The caller's trace context, sent to the leader with a forwarded append; default when the caller is not traced.</summary>
    public System.Diagnostics.ActivityContext Trace { get; set; }

    /// <summary>Where it was last sent: this node (proposed) or the leader it was forwarded to; null while unsent.</summary>
    internal string? SentTo { get; set; }

    /// <summary>Submitted once already (sent, or left waiting for a leader); fresh appends are submitted by their own input.</summary>
    internal bool Submitted { get; set; }

    /// <summary>Already in the batch being submitted.</summary>
    internal bool InBatch { get; set; }

    internal long SentTerm { get; set; } = -1;

    /// <summary>
    /// The sender's admission (see <see cref="Raft.ClusterConfig.AdmissionOf"/>) it was first proposed
    /// or forwarded under; -1 while never sent. It is never sent under another one.
    /// </summary>
    internal long Admission { get; set; } = -1;

    /// <summary>Why it was given up before its deadline, its outcome unknown (null: it timed out).</summary>
    internal string? GivenUpBecause { get; set; }

    internal long SentAtTick { get; set; }

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
}

/// <summary>A leader RPC call the driver routes to the leader and matches with its reply. The node's loop subclasses it to carry the caller's task.</summary>
/// <param name="callId">The call's id on this node incarnation.</param>
/// <param name="method">The handler's name.</param>
/// <param name="args">The handler's arguments.</param>
internal class DriverDispatch(long callId, string method, ReadOnlyMemory<byte> args)
{
    public long CallId { get; } = callId;

    public string Method { get; } = method;

    public ReadOnlyMemory<byte> Args { get; } = args;

    /// <summary>The caller's trace context, sent to the leader with the call; default when the caller is not traced.</summary>
    public System.Diagnostics.ActivityContext Trace { get; init; }
}

/// <summary>
/// Hands out append sequence numbers for one node incarnation: to callers on any thread and to the
/// driver (time entries, releases of abandoned grants) from one counter, so they never collide and
/// stay contiguous (the duplicate table's floor follows contiguous sequences).
/// </summary>
internal sealed class SequenceCounter
{
    private long _last;

    public long Next() => Interlocked.Increment(ref _last);
}
