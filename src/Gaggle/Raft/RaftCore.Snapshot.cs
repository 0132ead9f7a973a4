using System.Buffers;

namespace Gaggle.Raft;

/// <summary>Snapshots and log compaction (Raft §7): compacting locally, sending and installing InstallSnapshot chunks.</summary>
internal sealed partial class RaftCore
{
    private RaftSnapshot? _snapshot;
    private RaftSnapshot? _snapshotToInstall;
    private IncomingSnapshot? _incoming;

    /// <summary>The latest snapshot this node holds (taken locally or installed), or null.</summary>
    public RaftSnapshot? Snapshot => _snapshot;

    /// <summary>
    /// Records a snapshot of the state machines at <see cref="RaftSnapshot.Index"/> (which must be
    /// applied) and compacts the in-memory log up to <c>Index - retainEntries</c>: the retained
    /// entries let a slightly lagging follower catch up without a snapshot.
    /// </summary>
    public void CompactTo(RaftSnapshot snapshot, long retainEntries = 0)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (snapshot.Index > _log.Applied)
        {
            throw new ArgumentException($"The snapshot's index {snapshot.Index} is past the applied index {_log.Applied}.", nameof(snapshot));
        }

        if (_snapshot is not null && snapshot.Index <= _snapshot.Index)
        {
            return;
        }

        if (_log.Term(snapshot.Index) != snapshot.Term)
        {
            throw new ArgumentException($"The snapshot's term {snapshot.Term} differs from the term {_log.Term(snapshot.Index)} of entry {snapshot.Index}.", nameof(snapshot));
        }

        var (framed, framedIndex, _) = SnapshotFrame.Unwrap(snapshot.Data);
        var (expected, expectedIndex) = ConfigAt(snapshot.Index);
        if (expected is not null && (framed is null || framedIndex != expectedIndex || !framed.Equals(expected)))
        {
            throw new ArgumentException(
                $"The snapshot at {snapshot.Index} must carry the configuration logged at {expectedIndex} ({expected}); take it with CreateSnapshot.", nameof(snapshot));
        }

        _snapshot = snapshot;
        CompactConfigs(snapshot.Index);
        _log.Compact(Math.Max(_log.SnapshotIndex, snapshot.Index - Math.Max(0, retainEntries)));
    }

    /// <summary>Sends the chunk the follower needs next; one chunk is in flight at a time.</summary>
    private void SendSnapshotChunk(string peer, Progress progress)
    {
        var snapshot = _snapshot;
        if (snapshot is null)
        {
            return;
        }

        if (progress.State != ProgressState.Snapshot || progress.PendingSnapshotIndex != snapshot.Index)
        {
            progress.BecomeSnapshot(snapshot.Index);
        }

        long offset = Math.Min(progress.SnapshotOffset, snapshot.Data.Length);
        int length = (int)Math.Min(_config.MaxBytesPerMessage, snapshot.Data.Length - offset);
        Send(new RaftMessage
        {
            Type = MessageType.Snapshot, From = Id, To = peer, Term = Term, Index = snapshot.Index, LogTerm = snapshot.Term,
            Offset = offset, Data = snapshot.Data.Slice((int)offset, length), Done = offset + length >= snapshot.Data.Length,
        });
        progress.ProbeSent = true;
    }

    private void HandleSnapshotResponse(RaftMessage message, Progress progress)
    {
        if (progress.State != ProgressState.Snapshot || message.Index != progress.PendingSnapshotIndex || _snapshot is null)
        {
            return;
        }

        // Either an acknowledgement up to Offset, or a rejection naming the offset it expects. Only one
        // that moves the transfer on (or a rejection that moves it elsewhere) sends a chunk: answering
        // duplicated or stale ones would keep one more chunk circulating per duplicate.
        long offset = Math.Clamp(message.Offset, 0, _snapshot.Data.Length);
        if ((offset == progress.SnapshotOffset && progress.ProbeSent) || (!message.Reject && offset < progress.SnapshotOffset))
        {
            return;
        }

        progress.SnapshotOffset = offset;
        progress.ProbeSent = false;
        SendAppends(message.From);
    }

    /// <summary>
    /// The InstallSnapshot receiver: chunks are accepted in order (a lost one is asked for again by
    /// offset, so a transfer resumes where it stopped); the last one installs the snapshot.
    /// </summary>
    private void HandleSnapshotChunk(RaftMessage message)
    {
        if (message.Index <= _log.Committed)
        {
            // We have everything it covers already.
            Acknowledge(message.From, _log.Committed);
            return;
        }

        if (_incoming is null || _incoming.Index != message.Index || _incoming.Term != message.LogTerm || _incoming.From != message.From)
        {
            if (message.Offset != 0)
            {
                Send(new RaftMessage { Type = MessageType.SnapshotResponse, From = Id, To = message.From, Term = Term, Index = message.Index, Offset = 0, Reject = true });
                return;
            }

            _incoming = new IncomingSnapshot(message.Index, message.LogTerm, message.From);
        }

        if (message.Offset > _incoming.Received)
        {
            Send(new RaftMessage { Type = MessageType.SnapshotResponse, From = Id, To = message.From, Term = Term, Index = message.Index, Offset = _incoming.Received, Reject = true });
            return;
        }

        if (message.Offset == _incoming.Received)
        {
            _incoming.Data.Write(message.Data.Span);
        }

        if (message.Done && message.Offset + message.Data.Length == _incoming.Received)
        {
            var snapshot = new RaftSnapshot(message.Index, message.LogTerm, _incoming.Data.WrittenMemory.ToArray());
            _incoming = null;
            if (!InstallSnapshot(snapshot))
            {
                DroppedMessages++;
                return;
            }


            // Only the snapshot's entries are known to match the leader's: a log that already held the
            // snapshot's last entry keeps what follows it unchecked (it may conflict).
            Acknowledge(message.From, snapshot.Index);
            return;
        }

        Send(new RaftMessage { Type = MessageType.SnapshotResponse, From = Id, To = message.From, Term = Term, Index = message.Index, Offset = _incoming.Received });
    }

    /// <summary>Installs a complete snapshot from the leader; false when its configuration frame is malformed (then nothing changes).</summary>
    private bool InstallSnapshot(RaftSnapshot snapshot)
    {
        ClusterConfig? config;
        long configIndex;
        try
        {
            (config, configIndex, _) = SnapshotFrame.Unwrap(snapshot.Data);
        }
        catch (FormatException)
        {
            return false;
        }

        if (_log.MatchTerm(snapshot.Index, snapshot.Term))
        {
            // Our log holds the snapshot's last entry, so it holds everything before it too (Log Matching).
            _log.CommitTo(snapshot.Index);
            return true;
        }

        _log.Restore(snapshot);
        _snapshot = snapshot;
        _snapshotToInstall = snapshot;

        // §7: the snapshot's configuration (as of its last index) replaces whatever the discarded log held.
        RestoreConfigs(config, configIndex);
        return true;
    }

    /// <summary>
    /// A snapshot being received, named by its last entry and its sender. One leader's chunks never
    /// continue another's: in one cluster a snapshot's (index, term) names one state, but a node that
    /// joins another cluster with this core (an elastic newcomer adopting a generation while a transfer
    /// from the previous one was cut short) would otherwise splice two clusters' snapshots of the same
    /// (index, term) into one (elastic seed 753: the state machines diverged).
    /// </summary>
    private sealed class IncomingSnapshot(long index, long term, string from)
    {
        public long Index { get; } = index;

        public long Term { get; } = term;

        public string From { get; } = from;

        public ArrayBufferWriter<byte> Data { get; } = new();

        public long Received => Data.WrittenCount;
    }
}
