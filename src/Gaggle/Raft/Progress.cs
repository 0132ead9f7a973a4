namespace Gaggle.Raft;

/// <summary>How the leader currently replicates to a follower.</summary>
internal enum ProgressState
{
    /// <summary>Next is a guess: send one message at a time until the follower accepts one.</summary>
    Probe,

    /// <summary>The follower is in sync: stream entries optimistically, bounded by the inflight window.</summary>
    Replicate,

    /// <summary>The entries the follower needs were compacted: send the snapshot, one chunk at a time.</summary>
    Snapshot,
}

/// <summary>The leader's view of one follower (Raft Figure 2: nextIndex, matchIndex).</summary>
internal sealed class Progress
{
    public Progress(long next, int maxInflight, long maxInflightBytes = long.MaxValue)
    {
        Next = next;
        Inflights = new Inflights(maxInflight, maxInflightBytes);
    }

    public long Match { get; set; }

    /// <summary>The follower's latest run heard from (<see cref="RaftConfig.Incarnation"/>): Match counts only its acknowledgements.</summary>
    public ulong Incarnation { get; set; }

    /// <summary>
    /// The highest Match of the follower's earlier runs: no longer counted towards commits, but still
    /// what heartbeats show it (so a run that lost what an earlier one acknowledged detects the loss).
    /// </summary>
    public long EarlierRunsMatch { get; set; }

    /// <summary>What a heartbeat tells the follower it holds: the higher of Match and the earlier runs' (see <see cref="EarlierRunsMatch"/>).</summary>
    public long HeartbeatMatch => Math.Max(Match, EarlierRunsMatch);

    /// <summary>The highest index ever sent to this follower in this term (never goes down).</summary>
    public long HighestSent { get; set; }

    /// <summary>The latest heartbeat round the follower answered.</summary>
    public long AckedRound { get; set; }

    public long Next { get; set; }

    public ProgressState State { get; private set; } = ProgressState.Probe;

    /// <summary>In probe state, a probe is out and the next one waits for its answer or a heartbeat.</summary>
    public bool ProbeSent { get; set; }

    public Inflights Inflights { get; }

    /// <summary>
    /// Leader ticks since this follower was last heard from, capped at the check-quorum window
    /// (thesis §6.2). It counts as active while this is below the window.
    /// </summary>
    public int TicksSinceHeard { get; set; }

    /// <summary>Match as of the previous heartbeat round (for stall detection).</summary>
    public long MatchAtLastHeartbeat { get; set; }

    /// <summary>
    /// Entries were in flight for a whole heartbeat interval without any acknowledgement: over a lossy
    /// channel they are presumed lost and resent from Match + 1 on the next heartbeat response.
    /// </summary>
    public bool Stalled { get; set; }

    /// <summary>The highest commit index this follower was told (through any message).</summary>
    public long CommitSent { get; set; }

    public bool IsPaused => State switch
    {
        ProgressState.Replicate => Inflights.Full,
        _ => ProbeSent,
    };

    /// <summary>In snapshot state: the snapshot being sent.</summary>
    public long PendingSnapshotIndex { get; private set; }

    /// <summary>In snapshot state: the bytes of it the follower confirmed.</summary>
    public long SnapshotOffset { get; set; }

    /// <summary>SnapshotOffset as of the previous heartbeat round (for stall detection).</summary>
    public long SnapshotOffsetAtLastHeartbeat { get; set; }

    public void BecomeSnapshot(long snapshotIndex)
    {
        State = ProgressState.Snapshot;
        ProbeSent = false;
        Inflights.Reset();
        PendingSnapshotIndex = snapshotIndex;
        SnapshotOffset = 0;
        SnapshotOffsetAtLastHeartbeat = -1;
    }

    public void BecomeProbe()
    {
        State = ProgressState.Probe;
        ProbeSent = false;
        Inflights.Reset();
        Next = Math.Max(Next, Match + 1);
    }

    public void BecomeReplicate()
    {
        State = ProgressState.Replicate;
        ProbeSent = false;
        Inflights.Reset();
        Next = Match + 1;
    }

    /// <summary>Records an acknowledgement up to <paramref name="index"/>; false when it is stale.</summary>
    public bool MaybeUpdate(long index)
    {
        bool updated = false;
        if (Match < index)
        {
            Match = index;
            updated = true;
            ProbeSent = false;
        }

        Next = Math.Max(Next, index + 1);
        return updated;
    }

    /// <summary>Records that entries up to <paramref name="lastIndex"/> were sent.</summary>
    public void SentEntries(long lastIndex, int count, long bytes = 0)
    {
        HighestSent = Math.Max(HighestSent, lastIndex);
        if (State == ProgressState.Replicate)
        {
            if (count > 0)
            {
                Next = lastIndex + 1;
                Inflights.Add(lastIndex, bytes);
            }
        }
        else
        {
            ProbeSent = true;
        }
    }

    public override string ToString() => State == ProgressState.Snapshot
        ? $"{State} match={Match} snapshot={PendingSnapshotIndex} offset={SnapshotOffset}"
        : $"{State} match={Match} next={Next} inflight={Inflights.Count}";
}
