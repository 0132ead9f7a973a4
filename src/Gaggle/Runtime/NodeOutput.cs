using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>A message the driver wants sent: to one node, or to every other node when <see cref="To"/> is null.</summary>
internal readonly record struct Outgoing(string? To, WireMessage Message);

/// <summary>
/// What the node loop must write and send for one <see cref="NodeDriver.TakeReady"/>: the Raft core's
/// ready (hard state, entries, an installed snapshot) and every message of the node.
/// </summary>
/// <remarks>
/// Ordering contract (the Raft core's, extended to the node): persist <see cref="Raft"/>'s snapshot,
/// then its entries and hard state, BEFORE sending <see cref="Messages"/>; then call
/// <see cref="NodeDriver.Advance"/>, which applies what committed. Reused: valid until the next TakeReady.
/// </remarks>
internal sealed class NodeReady
{
    /// <summary>The Raft core's ready; null when only the node's own messages (forwarded appends, RPC) are due.</summary>
    public Ready? Raft { get; set; }

    /// <summary>The cluster generation the messages are sent in (see <see cref="NodeDriver.Generation"/>).</summary>
    public long Generation { get; set; }

    public List<Outgoing> Messages { get; } = [];
}

/// <summary>A message the driver dropped, for the node's log and metrics.</summary>
/// <param name="From">The sender (or "(log)" for an entry).</param>
/// <param name="Reason">What was wrong, for a log line.</param>
/// <param name="Kind">The metric's low-cardinality reason tag.</param>
/// <param name="Count">How many messages this record stands for.</param>
internal readonly record struct DroppedMessage(string From, string Reason, string Kind, long Count = 1);

/// <summary>A leader RPC handler the node must run (off its loop): for a remote caller, or for a call made on this leader (<see cref="Local"/>).</summary>
internal sealed record HandlerCall(string Method, ReadOnlyMemory<byte> Args, string? ReplyTo, ulong CallerIncarnation, long CallId, DriverDispatch? Local)
{
    /// <summary>The caller's trace context (sent by its node, or the local caller's); default when the caller was not traced.</summary>
    public System.Diagnostics.ActivityContext Trace { get; init; }
}

/// <summary>An entry another node forwarded from a traced caller, proposed by this leader at <paramref name="Index"/>.</summary>
internal readonly record struct TracedProposal(System.Diagnostics.ActivityContext Context, string Origin, long Sequence, long Index);

/// <summary>
/// What happened in the driver that the node loop must carry out: callers to complete, events to
/// raise, handlers to run, a snapshot to save. Accumulates over inputs until the loop takes it.
/// </summary>
internal sealed class NodeEvents
{
    /// <summary>Appends of this node applied here, with their index.</summary>
    public List<(DriverAppend Append, long Index)> Committed { get; } = [];

    /// <summary>Appends whose deadline passed by the driver's clock, or given up before it (<see cref="DriverAppend.GivenUpBecause"/>): their outcome is unknown.</summary>
    public List<DriverAppend> TimedOut { get; } = [];

    /// <summary>Committed application entries, for the Committed event and readers (only when <see cref="NodeDriver.PublishCommitted"/>).</summary>
    public List<GaggleLogEntry> Published { get; } = [];

    /// <summary>Application entries this leader appended (only when <see cref="NodeDriver.PublishAppended"/>).</summary>
    public List<GaggleLogEntry> Appended { get; } = [];

    /// <summary>Lock events answering watched requests of this node incarnation, by request sequence.</summary>
    public List<(long Sequence, LockEvent Event)> LockEvents { get; } = [];

    /// <summary>Watched holds of this node that ended (expired or released) in the lock table.</summary>
    public List<(string Name, long Token)> HoldsEnded { get; } = [];

    /// <summary>RPC calls answered: the reply matched to this node's call.</summary>
    public List<(DriverDispatch Call, DispatchReply Reply)> DispatchReplies { get; } = [];

    public List<HandlerCall> Handlers { get; } = [];

    /// <summary>Forwarded entries of traced callers this leader proposed (the node starts the leader's span of each).</summary>
    public List<TracedProposal> TracedProposals { get; } = [];

    public List<DroppedMessage> Dropped { get; } = [];

    /// <summary>Application entries applied (for the commit counter).</summary>
    public long AppliedCount { get; set; }

    /// <summary>The role, term or leader changed: the state before and after.</summary>
    public (SoftState? Previous, SoftState Current)? LeaderChange { get; set; }

    /// <summary>A snapshot of this node's state machines to save; then call <see cref="NodeDriver.CompactTo"/>.</summary>
    public RaftSnapshot? SnapshotToSave { get; set; }

    /// <summary>The node noticed it lost acknowledged entries (set once).</summary>
    public bool LostStorageDetected { get; set; }

    /// <summary>The leader refused this joining node: its fingerprint differs (leader, the cluster's, this node's).</summary>
    public (string Leader, ulong Cluster, ulong Own)? JoinRefused { get; set; }

    /// <summary>A leader told this node it is not in the configuration (it was removed): it asks to join again.</summary>
    public string? RemovedBy { get; set; }

    /// <summary>
    /// Elastic mode: this node, removed from the committed configuration while it still held its
    /// state, must start over as a new incarnation (pending appends fail, holds are lost, its log is
    /// dropped; its term and vote are kept) and join again.
    /// </summary>
    public bool Removed { get; set; }

    /// <summary>Elastic mode: this learner heard no voter for the member timeout; it starts over with no state, as a newcomer.</summary>
    public bool Orphaned { get; set; }

    /// <summary>Membership requests this leader finished (done, refused, or sent back to find the leader).</summary>
    public List<(MembershipRequest Request, MembershipResult Result)> MembershipResults { get; } = [];

    /// <summary>Elastic mode: claim generation id Claimed (the next number, a new tag) where the store holds Expected, then report with <see cref="NodeDriver.GenerationClaimed"/>.</summary>
    public (long Expected, long Claimed)? ClaimGeneration { get; set; }

    /// <summary>
    /// Elastic mode: read the store, only to learn whether it is reachable; report a failure with
    /// <see cref="NodeDriver.GenerationStoreUnreachable"/> (silence heard while Redis is down proves nothing).
    /// </summary>
    public bool ProbeGenerationStore { get; set; }

    /// <summary>Elastic mode: a generation of this node's number but another tag spoke; read the store and report with <see cref="NodeDriver.RivalChecked"/>.</summary>
    public bool CheckRival { get; set; }

    /// <summary>
    /// Elastic mode, on a leader: confirm this generation in the store (and record it if the store holds
    /// none or a lower one), then report with <see cref="NodeDriver.GenerationConfirmed"/> and the time
    /// it was sent (see <see cref="GenerationFence"/>).
    /// </summary>
    public (long Generation, long SentAtUs)? ConfirmGeneration { get; set; }

    /// <summary>Elastic mode: give back generation id Claimed, which this node claimed but will not found (set the store back to Expected, the id before it, if it still holds it).</summary>
    public (long Claimed, long Expected)? ReleaseClaim { get; set; }

    /// <summary>Elastic mode: a newer generation replaced this node's cluster; the node must reset (empty state) and join it.</summary>
    public long? Superseded { get; set; }

    public bool IsEmpty => Committed.Count == 0 && TimedOut.Count == 0 && Published.Count == 0 && Appended.Count == 0 && LockEvents.Count == 0
        && HoldsEnded.Count == 0 && DispatchReplies.Count == 0 && Handlers.Count == 0 && TracedProposals.Count == 0 && Dropped.Count == 0 && AppliedCount == 0
        && LeaderChange is null && SnapshotToSave is null && !LostStorageDetected && MembershipResults.Count == 0 && JoinRefused is null && RemovedBy is null && !Removed && !Orphaned
        && ClaimGeneration is null && !ProbeGenerationStore && !CheckRival && ConfirmGeneration is null && ReleaseClaim is null && Superseded is null;

    public void Clear()
    {
        Committed.Clear();
        TimedOut.Clear();
        Published.Clear();
        Appended.Clear();
        LockEvents.Clear();
        HoldsEnded.Clear();
        DispatchReplies.Clear();
        TracedProposals.Clear();
        Handlers.Clear();
        Dropped.Clear();
        AppliedCount = 0;
        LeaderChange = null;
        SnapshotToSave = null;
        LostStorageDetected = false;
        MembershipResults.Clear();
        JoinRefused = null;
        RemovedBy = null;
        Removed = false;
        Orphaned = false;
        ClaimGeneration = null;
        ProbeGenerationStore = false;
        CheckRival = false;
        ConfirmGeneration = null;
        ReleaseClaim = null;
        Superseded = null;
    }
}
