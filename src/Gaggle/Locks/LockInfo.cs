namespace Gaggle.Locks;

/// <summary>A lock's state, as of a point in the committed log.</summary>
/// <param name="Name">The lock's name.</param>
/// <param name="MaxCount">How many may hold it at once (1 for a mutex).</param>
/// <param name="Holders">The current holders, in grant order.</param>
/// <param name="QueueLength">How many requests wait for it.</param>
/// <param name="AsOfIndex">The log index this state was read at.</param>
public sealed record LockInfo(string Name, int MaxCount, IReadOnlyList<LockHolderInfo> Holders, int QueueLength, long AsOfIndex);

/// <summary>A holder of a lock.</summary>
/// <param name="NodeId">The node holding it.</param>
/// <param name="FencingToken">The fencing token of the hold.</param>
/// <param name="Since">When it was granted, in milliseconds of the cluster's lease clock.</param>
/// <param name="LeaseExpiry">When the lease ends unless renewed, in the same clock.</param>
public sealed record LockHolderInfo(string NodeId, long FencingToken, long Since, long LeaseExpiry);
