using Microsoft.Extensions.Logging;

namespace Gaggle.Runtime;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Node {NodeId} started at term {Term} with {Entries} log entries")]
    public static partial void Started(ILogger logger, string nodeId, long term, int entries);

    [LoggerMessage(2, LogLevel.Information, "Node {NodeId}: leader is {LeaderId} in term {Term} (this node: {Role})")]
    public static partial void LeaderChanged(ILogger logger, string nodeId, string? leaderId, long term, Gaggle.Raft.RaftRole role);

    [LoggerMessage(3, LogLevel.Debug, "Node {NodeId} dropped a message from {From}: {Reason}")]
    public static partial void DroppedMessage(ILogger logger, string nodeId, string from, string reason);

    [LoggerMessage(4, LogLevel.Warning, "Node {NodeId} could not send to {To}")]
    public static partial void SendFailed(ILogger logger, Exception exception, string nodeId, string to);

    [LoggerMessage(5, LogLevel.Error, "Node {NodeId}: a {EventName} event handler threw")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string nodeId, string eventName);

    [LoggerMessage(6, LogLevel.Critical, "Node {NodeId} stopped after a fatal error")]
    public static partial void LoopFailed(ILogger logger, Exception exception, string nodeId);

    [LoggerMessage(8, LogLevel.Warning, "Node {NodeId}: leader {LeaderId} shows this node acknowledged entries it no longer has; its storage was lost. It rejoins without voting until it has caught up safely")]
    public static partial void LostStorage(ILogger logger, string nodeId, string? leaderId);

    [LoggerMessage(7, LogLevel.Information, "Node {NodeId} stopped")]
    public static partial void Stopped(ILogger logger, string nodeId);

    [LoggerMessage(20, LogLevel.Information, "Node {NodeId}: {Change} '{Member}' ({By}) done; now {Membership}")]
    public static partial void MembershipChanged(ILogger logger, string nodeId, string change, string member, string by, GaggleMembership membership);

    [LoggerMessage(21, LogLevel.Information, "Node {NodeId}: voter management could not {Change} '{Member}' now: {Reason}")]
    public static partial void AutopilotRefused(ILogger logger, string nodeId, string change, string member, string reason);

    [LoggerMessage(22, LogLevel.Warning, "Node {NodeId} cannot join: leader {LeaderId} refused it because their settings differ (cluster fingerprint {Cluster}, this node's {Own}): the wire version, HeartbeatInterval, ElectionTimeoutMin/Max, LockLeaseDuration, state machine names and RPC method names must be the same on every node")]
    public static partial void JoinRefused(ILogger logger, string nodeId, string leaderId, string cluster, string own);

    [LoggerMessage(23, LogLevel.Warning, "Node {NodeId}: leader {LeaderId} says this node is no longer a member (it was removed while paused or cut off); it asks to join again")]
    public static partial void RemovedFromCluster(ILogger logger, string nodeId, string leaderId);

    [LoggerMessage(24, LogLevel.Information, "Node {NodeId} formed cluster generation {Generation} as its first voter, after hearing no member of generation {Previous} for {SilenceMs} ms; other instances join it")]
    public static partial void GenerationFounded(ILogger logger, string nodeId, string generation, string previous, long silenceMs);

    [LoggerMessage(25, LogLevel.Warning, "Node {NodeId}: cluster generation {Generation} replaced this node's generation {Previous} (it formed while no member of ours was heard); this node drops its state, cancels its holds and joins the new generation")]
    public static partial void GenerationSuperseded(ILogger logger, string nodeId, string generation, string previous);

    [LoggerMessage(26, LogLevel.Warning, "Node {NodeId} could not read or write the cluster generation in its store; it tries again")]
    public static partial void GenerationStoreFailed(ILogger logger, Exception error, string nodeId);

    [LoggerMessage(27, LogLevel.Warning, "Node {NodeId} was removed from cluster generation {Generation} (not heard from for MemberTimeout: paused or cut off); it drops its log, cancels its holds and joins again as a new incarnation")]
    public static partial void RemovedStartingOver(ILogger logger, string nodeId, string generation);

    [LoggerMessage(28, LogLevel.Warning, "Node {NodeId}, a learner of cluster generation {Generation}, heard no voter for {MemberTimeoutMs} ms: every voter is gone; it drops its state and waits to join a live cluster or to form the next generation")]
    public static partial void OrphanedStartingOver(ILogger logger, string nodeId, string generation, double memberTimeoutMs);

    [LoggerMessage(29, LogLevel.Warning, "Node {NodeId} forced cluster generation {Generation} (after {Previous}, which lost a majority of its voters) from its own log, up to index {LastIndex}, all of it committed; the other survivors drop their state and join it")]
    public static partial void GenerationForced(ILogger logger, string nodeId, string generation, string previous, long lastIndex);

    [LoggerMessage(30, LogLevel.Warning, "Node {NodeId}, waiting to join or form a cluster, cannot reach the generation store (Redis): what it does not hear meanwhile proves nothing, so it forms no cluster until a member timeout of silence has passed with the store reachable")]
    public static partial void GenerationStoreUnreachable(ILogger logger, Exception error, string nodeId);
}
