namespace Gaggle.Runtime;

/// <summary>
/// Incarnations of nodes: one per run of a node (a process, or a new start in one), higher for every
/// later run of a node id. The wall clock in ticks, so a node restarted in a new process starts above
/// its previous run (the assumption the Redis channel's incarnations make too: the clock does not go
/// back across a restart by more than the restart takes); and above every incarnation taken in this
/// process before, so runs started here on one tick (a test clock standing still) or after the clock
/// was set back still differ and the later one is higher. Raft counts acknowledgements only from a
/// follower's latest run (RaftCore.Rejoin.cs); entries and calls carry it to tell runs apart; the Redis
/// channel stamps its envelopes with one of its own, so receivers drop a restarted node's earlier envelopes.
/// </summary>
internal static class NodeIncarnations
{
    private static long _last;

    /// <summary>A new incarnation, above every one taken in this process and (its clock permitting) in earlier ones.</summary>
    public static ulong Next(TimeProvider time)
    {
        long now = Math.Max(1, time.GetUtcNow().UtcTicks);
        while (true)
        {
            long last = Interlocked.Read(ref _last);
            long next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _last, next, last) == last)
            {
                return (ulong)next;
            }
        }
    }
}
