using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>What a run's history contained, to show the checks were not vacuous.</summary>
internal sealed class LockSimStats
{
    /// <summary>Commands applied, by <see cref="LockCommandType"/>.</summary>
    public long[] Commands { get; } = new long[Enum.GetValues<LockCommandType>().Max(t => (int)t) + 1];

    /// <summary>Reader-writer grants: for reading, for writing.</summary>
    public long[] ReaderWriterGrants { get; } = new long[2];

    /// <summary>The most readers that held a reader-writer lock at once.</summary>
    public int MostReadersTogether { get; set; }

    public long Granted { get; set; }

    public long GrantedFromQueue { get; set; }

    public long Queued { get; set; }

    public long Released { get; set; }

    public long Expired { get; set; }

    public long Renewed { get; set; }

    public long TriesDenied { get; set; }

    public long WaitsTimedOut { get; set; }

    public long Cancelled { get; set; }

    public long Rejected { get; set; }

    /// <summary>Waits ended because their node was removed from the cluster (<see cref="LockCommandType.MembersChanged"/>), a multi-lock request once.</summary>
    public long WaitsOfRemovedNodes { get; set; }

    /// <summary>Waits ended because their node started again as a new process (<see cref="LockCommandType.IncarnationEnded"/>), a multi-lock request once.</summary>
    public long WaitsOfEarlierIncarnations { get; set; }

    public int LongestQueue { get; set; }

    public long ClientGrants { get; set; }

    /// <summary>Multi-lock requests granted (all of their locks in one entry), at once or from their queues.</summary>
    public long GroupGrants { get; set; }

    public long GroupGrantsFromQueue { get; set; }

    /// <summary>Multi-lock requests queued (in every one of their locks' queues).</summary>
    public long GroupsQueued { get; set; }

    public long GroupTriesDenied { get; set; }

    public long GroupWaitsTimedOut { get; set; }

    public long GroupsCancelled { get; set; }

    public long GroupsRejected { get; set; }

    /// <summary>The most locks one multi-lock request held at once in a run.</summary>
    public int LargestGroupGranted { get; set; }

    /// <summary>Grants past waiting multi-lock requests ahead in the lock's queue (they hold up nobody).</summary>
    public long GrantsPastSets { get; set; }

    /// <summary>Waiters ahead of a request granted in a pass, checked not to have fitted without its grants (arrival order).</summary>
    public long ArrivalOrderChecks { get; set; }

    /// <summary>Grants of several locks at once that clients saw (every token from one index).</summary>
    public long ClientGroupGrants { get; set; }

    /// <summary>Grants of several locks at once that came after a long wait, each lock's hold confirmed by a renewal before use.</summary>
    public long ClientGroupConfirmations { get; set; }

    public long ContendedBeliefs { get; set; }

    public long LostOnArrival { get; set; }
}
