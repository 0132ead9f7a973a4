using Microsoft.Extensions.Logging;

namespace Gaggle.Storage;

internal static partial class StorageLog
{
    [LoggerMessage(101, LogLevel.Warning, "Storage {Directory}: {File} ended in an interrupted write at byte offset {Offset} ({Reason}); cut off {Bytes} unacknowledged bytes")]
    public static partial void CutTornTail(ILogger logger, string directory, string file, long offset, string reason, long bytes);

    [LoggerMessage(102, LogLevel.Information, "Storage {Directory}: removed {File} ({Reason})")]
    public static partial void RemovedLeftover(ILogger logger, string directory, string file, string reason);

    [LoggerMessage(103, LogLevel.Information, "Storage {Directory} opened for node {NodeId} (new: {IsNew}): snapshot at {SnapshotIndex}, {Entries} entries in {Segments} segments")]
    public static partial void Opened(ILogger logger, string directory, string nodeId, bool isNew, long snapshotIndex, int entries, int segments);
}
