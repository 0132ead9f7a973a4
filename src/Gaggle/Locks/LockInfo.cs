namespace Gaggle.Locks;

/// <summary>A lock's state, as of a point in the committed log.</summary>
/// <param name="Name">The lock's name.</param>
/// <param name="MaxCount">How many may hold it at once: 1 for a mutex, the slot count of a semaphore, 0 for a reader-writer lock (readers share it, a writer holds it alone).</param>
/// <param name="Holders">The current holders, in grant order.</param>
/// <param name="QueueLength">How many requests wait for it.</param>
/// <param name="AsOfIndex">The log index this state was read at.</param>
public sealed record LockInfo(string Name, int MaxCount, IReadOnlyList<LockHolderInfo> Holders, int QueueLength, long AsOfIndex);

/// <summary>A holder of a lock.</summary>
/// <param name="NodeId">The node holding it.</param>
/// <param name="FencingToken">The fencing token of the hold.</param>
/// <param name="Since">When it was granted, in milliseconds of the cluster's lease clock.</param>
/// <param name="LeaseExpiry">When the lease ends unless renewed, in the same clock.</param>
public sealed record LockHolderInfo(string NodeId, long FencingToken, long Since, long LeaseExpiry)
{
    /// <summary>What the hold is: of a mutex, a semaphore slot, or a reader-writer lock for reading or for writing.</summary>
    public LockHoldKind Kind { get; init; }
}

/// <summary>What a hold is.</summary>
public enum LockHoldKind
{
    /// <summary>The hold of a mutex (a lock with one holder at a time).</summary>
    Mutex,

    /// <summary>One slot of a semaphore.</summary>
    SemaphoreSlot,

    /// <summary>A reader of a reader-writer lock: other readers may hold it too, no writer does.</summary>
    Read,

    /// <summary>The writer of a reader-writer lock: nobody else holds it.</summary>
    Write,
}
