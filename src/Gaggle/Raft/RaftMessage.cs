namespace Gaggle.Raft;

/// <summary>The kinds of message Raft nodes exchange.</summary>
internal enum MessageType : byte
{
    /// <summary>Pre-vote request (Raft thesis §9.6): Term is the term the candidate would campaign in.</summary>
    PreVote = 1,
    PreVoteResponse = 2,
    Vote = 3,
    VoteResponse = 4,
    /// <summary>AppendEntries: Index/LogTerm are prevLogIndex/prevLogTerm, Commit the leader's commit,
    /// RejectHint the index of the leader's configuration (0 for the seed; see RaftCore.CommitWithLeader).</summary>
    Append = 5,
    /// <summary>Index is the last index matched on success, Commit then the sender's commit index (it may
    /// have committed on storing, see RaftCore.FollowerCommit.cs); on reject, Index echoes the rejected
    /// prevLogIndex and RejectHint/LogTerm carry the conflict index and term for fast backtracking.</summary>
    AppendResponse = 6,
    /// <summary>Leader liveness; Commit is min(follower's match, leader commit), Index the heartbeat round
    /// (echoed by the response, for the leadership lease), RejectHint what a rejoining follower must
    /// catch up to (the leader's full commit index, or with follower commits what it sent that
    /// follower), LogTerm the index of the leader's configuration (as AppendEntries' RejectHint) when
    /// addressed to one member.</summary>
    Heartbeat = 7,
    HeartbeatResponse = 8,
    /// <summary>Tells the receiver to campaign at once, ignoring its election timeout and leader lease.</summary>
    TimeoutNow = 9,
    /// <summary>A new commit index for a follower (no response expected); Commit is min(match, commit).</summary>
    CommitNotice = 10,
    /// <summary>InstallSnapshot (Raft §7), one chunk: Index/LogTerm identify the snapshot, Offset/Data the chunk, Done the last one.</summary>
    Snapshot = 11,
    /// <summary>Offset is the next byte the follower expects; Reject when the chunk did not fit there.</summary>
    SnapshotResponse = 12,
    /// <summary>A rejoining node asks for the receiver's term (answered whatever the terms).</summary>
    TermQuery = 13,
    /// <summary>Term is the sender's current term; a rejoining receiver records it and moves to it when later than its own.</summary>
    TermReport = 14,
}

/// <summary>
/// A Raft message. One flat shape for every type (as etcd/raft does) keeps encoding and the
/// simulation simple; the meaning of the numeric fields depends on <see cref="Type"/>.
/// </summary>
internal sealed class RaftMessage
{
    public required MessageType Type { get; init; }

    public required string From { get; init; }

    /// <summary>The target node, or null for a broadcast to every member.</summary>
    public string? To { get; init; }

    public long Term { get; init; }

    public long LogTerm { get; init; }

    public long Index { get; init; }

    public long Commit { get; set; }

    public bool Reject { get; init; }

    public long RejectHint { get; init; }

    /// <summary>Vote requests caused by leadership transfer: receivers ignore their leader lease.</summary>
    public bool Force { get; init; }

    public IReadOnlyList<LogEntry> Entries { get; init; } = [];

    /// <summary>Snapshot messages: the byte offset of the chunk (or the next expected byte).</summary>
    public long Offset { get; init; }

    /// <summary>Snapshot messages: the chunk's bytes.</summary>
    public ReadOnlyMemory<byte> Data { get; init; }

    /// <summary>Snapshot messages: this chunk is the last.</summary>
    public bool Done { get; init; }

    /// <summary>
    /// AppendResponse and HeartbeatResponse: the sender's run (<see cref="RaftConfig.Incarnation"/>, stamped
    /// on sending); Heartbeat: the run of the receiver whose acknowledgements the leader counts, so a
    /// rejoining node trusts only a catch-up target set after the leader heard from this run of it.
    /// </summary>
    public ulong Incarnation { get; set; }

    /// <inheritdoc />
    public override string ToString()
    {
        var entries = Entries.Count == 0 ? "" : $" entries=[{Entries[0].Index}..{Entries[^1].Index}]";
        return $"{From}->{To ?? "*"} {Type} term={Term} logTerm={LogTerm} index={Index} commit={Commit}"
            + (Reject ? $" reject hint={RejectHint}" : "") + (Force ? " force" : "") + (Incarnation != 0 ? $" run={Incarnation}" : "") + entries
            + (Type is MessageType.Snapshot or MessageType.SnapshotResponse ? $" offset={Offset} bytes={Data.Length}{(Done ? " done" : "")}" : "");
    }
}
