namespace Gaggle.Locks;

/// <summary>Identifies a lock request: the node that appended it, that node's incarnation, and the append's sequence number.</summary>
internal readonly record struct RequestId(string Node, ulong Incarnation, long Sequence);

/// <summary>One holder of a lock.</summary>
/// <param name="Token">The fencing token of this grant.</param>
/// <param name="Request">The request that was granted.</param>
/// <param name="Since">When it was granted (lease clock, ms).</param>
/// <param name="Expiry">When the lease ends unless renewed (lease clock, ms).</param>
/// <param name="Writer">A writer of a reader-writer lock (false for a reader, and for every holder of a mutex or semaphore).</param>
internal sealed record LockHolder(long Token, RequestId Request, long Since, long Expiry, bool Writer = false)
{
    public long Expiry { get; set; } = Expiry;
}

/// <summary>One queued request; <paramref name="Writer"/> as for <see cref="LockHolder"/>; <paramref name="Group"/> when it is one lock of a multi-lock request.</summary>
/// <param name="Request">The request.</param>
/// <param name="LeaseMs">The lease its grant gets.</param>
/// <param name="Deadline">When its wait ends (lease clock, ms).</param>
/// <param name="Writer">A writer of a reader-writer lock.</param>
/// <param name="Group">The multi-lock request it is part of, if any.</param>
/// <param name="Arrival">
/// Orders the waiters of all queues as they came (the index of the entry that applied the request), for
/// the order in which they are looked at. Only its order counts, and only between waiters of one queue
/// and those linked to them through multi-lock requests: a table read from a snapshot numbers its
/// waiters anew, in an order that keeps every queue's.
/// </param>
internal sealed record LockWaiter(RequestId Request, long LeaseMs, long Deadline, bool Writer = false, LockGroup? Group = null, long Arrival = 0);

/// <summary>
/// A multi-lock request waiting (<see cref="LockCommandType.AcquireAll"/>): one waiter in the queue of
/// each of its locks, all granted in one entry or none.
/// </summary>
/// <param name="Request">The request.</param>
/// <param name="Names">Its locks, in ordinal order (the order its grants are made in, so that a table read from a snapshot makes them in the same order).</param>
internal sealed class LockGroup(RequestId Request, string[] Names)
{
    public RequestId Request { get; } = Request;

    public string[] Names { get; } = Names;
}

/// <summary>What applying a command did that the requesting node must hear about.</summary>
internal enum LockEventType
{
    Granted,
    Denied,
    Released,
    Renewed,
    Expired,
    Cancelled,
    Inspected,
    Rejected,
}

/// <summary>An outcome for one request or hold; only the node named in <see cref="Request"/> acts on it.</summary>
internal sealed record LockEvent(LockEventType Type, string Name, RequestId Request, long Token = 0, long Expiry = 0, LockInfo? Info = null, string? Reason = null);
