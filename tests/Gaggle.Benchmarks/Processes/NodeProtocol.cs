using System.Text.Json;

namespace Gaggle.Benchmarks.Processes;

/// <summary>
/// What the driver and a node process say to each other over the node's stdin and stdout: one JSON
/// object per line each way, one reply per command, in order. A reply is either the command's result
/// or <c>{"error": "..."}</c>. Logs go to stderr, never stdout.
/// </summary>
internal static class NodeProtocol
{
    public static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Reply: <see cref="NodeStatus"/>.</summary>
    public const string Status = "status";

    /// <summary>Between phases: collect garbage, as the in-process driver does. Reply: <see cref="Done"/>.</summary>
    public const string Collect = "collect";

    /// <summary><see cref="NodeCommand.Count"/> appends in flight for <see cref="NodeCommand.Seconds"/>. Reply: <see cref="ThroughputCounts"/>.</summary>
    public const string Throughput = "throughput";

    /// <summary>One append at a time for <see cref="NodeCommand.Seconds"/>. Reply: <see cref="Samples"/>.</summary>
    public const string Appends = "appends";

    /// <summary>
    /// <see cref="NodeCommand.Count"/> lock clients numbered from <see cref="NodeCommand.First"/>, acquire + release
    /// for <see cref="NodeCommand.Seconds"/>. Reply: <see cref="LockPairs"/>.
    /// </summary>
    public const string Locks = "locks";

    /// <summary>Uncontended lock acquires, one at a time, for <see cref="NodeCommand.Seconds"/>. Reply: <see cref="Samples"/>.</summary>
    public const string LockLatency = "lock_latency";

    /// <summary>One append (the failover's first commit). Reply: <see cref="Done"/>.</summary>
    public const string Append = "append";

    /// <summary>Leave cleanly and exit. Reply: <see cref="Done"/>.</summary>
    public const string Stop = "stop";
}

/// <summary>One command from the driver; which fields matter depends on <see cref="Op"/>.</summary>
internal sealed record NodeCommand(string Op, double Seconds = 0, int Count = 0, int First = 0);

/// <summary>A node process's state. <see cref="Errors"/> counts its failed or timed-out operations so far.</summary>
internal sealed record NodeStatus(
    string Id,
    string Role,
    bool IsLeader,
    string? LeaderId,
    long Term,
    long CommitIndex,
    long LastLogIndex,
    long PeakRssBytes,
    long RedisPublished,
    long Errors);

/// <summary>Latency samples in milliseconds, unsorted: the driver merges every process's samples before taking percentiles.</summary>
internal sealed record Samples(double[] Ms);

internal sealed record LockPairs(long Pairs);

internal sealed record Done(bool Ok = true);

internal sealed record NodeError(string Error);
