using Gaggle.Raft;

namespace Gaggle.Tests.Raft;

/// <summary>Hand-built Raft messages for scenarios that talk to one node directly.</summary>
internal static class Msg
{
    public static RaftMessage Vote(string from, string to, long term, long lastIndex, long lastTerm)
        => new() { Type = MessageType.Vote, From = from, To = to, Term = term, Index = lastIndex, LogTerm = lastTerm };

    public static RaftMessage PreVote(string from, string to, long term, long lastIndex, long lastTerm)
        => new() { Type = MessageType.PreVote, From = from, To = to, Term = term, Index = lastIndex, LogTerm = lastTerm };

    /// <summary>AppendEntries: <paramref name="prevIndex"/>/<paramref name="prevTerm"/> are prevLogIndex/prevLogTerm.</summary>
    public static RaftMessage Append(string from, string to, long term, long prevIndex, long prevTerm, long commit, params LogEntry[] entries)
        => new() { Type = MessageType.Append, From = from, To = to, Term = term, Index = prevIndex, LogTerm = prevTerm, Commit = commit, Entries = entries };

    public static RaftMessage AppendResponse(string from, string to, long term, long index, bool reject = false, long hint = 0, long hintTerm = 0)
        => new() { Type = MessageType.AppendResponse, From = from, To = to, Term = term, Index = index, Reject = reject, RejectHint = hint, LogTerm = hintTerm };

    public static RaftMessage Heartbeat(string from, string to, long term, long commit)
        => new() { Type = MessageType.Heartbeat, From = from, To = to, Term = term, Commit = commit };

    public static RaftMessage HeartbeatResponse(string from, string to, long term)
        => new() { Type = MessageType.HeartbeatResponse, From = from, To = to, Term = term };

    public static bool IsAppendTo(this RaftMessage message, string to) => message.Type == MessageType.Append && message.To == to;

    public static bool IsAppendWithEntriesTo(this RaftMessage message, string to) => message.IsAppendTo(to) && message.Entries.Count > 0;
}
