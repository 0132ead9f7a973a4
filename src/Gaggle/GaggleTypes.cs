using Gaggle.Raft;

namespace Gaggle;

/// <summary>A log entry as the application sees it.</summary>
/// <param name="Index">The entry's position in the log (1-based).</param>
/// <param name="Term">The term in which a leader created it.</param>
/// <param name="Kind">Application data, or the no-op a new leader appends.</param>
/// <param name="Data">The bytes given to <see cref="GaggleNode.AppendAsync(ReadOnlyMemory{byte}, TimeSpan?, CancellationToken)"/>; empty for a no-op.</param>
/// <param name="OriginNodeId">The node on which the entry was appended, or null for a no-op.</param>
public sealed record GaggleLogEntry(long Index, long Term, EntryKind Kind, ReadOnlyMemory<byte> Data, string? OriginNodeId);

/// <summary>A change of the known leader.</summary>
/// <param name="Term">The term the change happened in.</param>
/// <param name="LeaderId">The new leader's id, or null while none is known.</param>
/// <param name="IsLeader">Whether this node is now the leader.</param>
public sealed record LeaderChange(long Term, string? LeaderId, bool IsLeader);

/// <summary>A leader RPC failed on the leader: the handler threw, or no handler has that name.</summary>
public sealed class GaggleRpcException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="method">The RPC method called.</param>
    /// <param name="message">What went wrong, as reported by the leader.</param>
    public GaggleRpcException(string method, string message)
        : base(message)
    {
        Method = method;
    }

    /// <summary>The RPC method called.</summary>
    public string Method { get; }
}
