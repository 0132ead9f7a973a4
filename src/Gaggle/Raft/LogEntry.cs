namespace Gaggle.Raft;

/// <summary>What a log entry carries.</summary>
public enum EntryKind : byte
{
    /// <summary>An application entry: its data is an opaque payload for the state machines.</summary>
    Normal = 0,

    /// <summary>The empty entry a new leader appends at the start of its term (Raft §8); carries no data.</summary>
    NoOp = 1,

    /// <summary>A cluster configuration (voters and learners), logged by a membership change; in force from the moment it is in a node's log.</summary>
    Configuration = 2,
}

/// <summary>One entry of the replicated log. Indexes start at 1; index 0 is the empty log's sentinel.</summary>
/// <param name="Index">The entry's position in the log (1-based).</param>
/// <param name="Term">The term of the leader that created the entry.</param>
/// <param name="Kind">Whether the entry carries application data.</param>
/// <param name="Data">The entry's payload; empty for <see cref="EntryKind.NoOp"/>.</param>
public readonly record struct LogEntry(long Index, long Term, EntryKind Kind, ReadOnlyMemory<byte> Data);

/// <summary>The state every node must persist before it answers a message that depends on it (Raft Figure 2).</summary>
/// <param name="Term">The latest term the node has seen.</param>
/// <param name="VotedFor">The candidate the node voted for in <paramref name="Term"/>, or null.</param>
/// <param name="Commit">The highest log index the node knows to be committed.</param>
/// <param name="Rejoining">
/// The node started without any saved state and has not yet proven it may vote: it might have lost a
/// vote or entries it had acknowledged (see <c>RaftCore</c>'s rejoin rules). Kept across restarts.
/// </param>
public readonly record struct HardState(long Term, string? VotedFor, long Commit, bool Rejoining = false)
{
    /// <summary>The state of a node that has never run.</summary>
    public static HardState Empty => new(0, null, 0);
}

/// <summary>
/// The state machines' state as of a log index: it replaces every entry up to <paramref name="Index"/>.
/// </summary>
/// <param name="Index">The last log index the snapshot includes.</param>
/// <param name="Term">The term of the entry at <paramref name="Index"/>.</param>
/// <param name="Data">The serialized state (opaque to Raft and storage).</param>
public sealed record RaftSnapshot(long Index, long Term, ReadOnlyMemory<byte> Data);
