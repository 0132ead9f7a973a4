using Microsoft.Extensions.Logging;

namespace Gaggle.Redis;

internal static partial class RedisLog
{
    [LoggerMessage(101, LogLevel.Warning, "Node {NodeId} dropped envelopes ({Reason}, last from '{Sender}', {Total} so far); further drops for this reason are logged at most every 10 s")]
    public static partial void Dropped(ILogger logger, string nodeId, DropReason reason, string sender, long total);

    [LoggerMessage(102, LogLevel.Warning, "Node {NodeId} gave up publishing to {Channel}")]
    public static partial void PublishDropped(ILogger logger, Exception exception, string nodeId, string channel);

    [LoggerMessage(103, LogLevel.Warning, "Node {NodeId}: Redis {ConnectionType} connection failed ({FailureType})")]
    public static partial void ConnectionFailed(ILogger logger, Exception? exception, string nodeId, string connectionType, string failureType);

    [LoggerMessage(104, LogLevel.Information, "Node {NodeId}: Redis {ConnectionType} connection restored")]
    public static partial void ConnectionRestored(ILogger logger, string nodeId, string connectionType);

    [LoggerMessage(105, LogLevel.Debug, "Node {NodeId} could not unsubscribe")]
    public static partial void UnsubscribeFailed(ILogger logger, Exception exception, string nodeId);
}
