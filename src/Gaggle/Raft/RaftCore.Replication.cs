namespace Gaggle.Raft;

/// <summary>The leader's replication: AppendEntries per follower or broadcast, commit counting and commit notices.</summary>
internal sealed partial class RaftCore
{
    /// <summary>Sends as many AppendEntries to <paramref name="peer"/> as its state and inflight window allow.</summary>
    private void SendAppends(string peer, bool sendIfEmpty = false)
    {
        var progress = _progress[peer];
        while (!progress.IsPaused)
        {
            if (progress.State == ProgressState.Snapshot || progress.Next <= _log.SnapshotIndex)
            {
                // The entries it needs were compacted away (Raft §7).
                SendSnapshotChunk(peer, progress);
                return;
            }

            long prevIndex = progress.Next - 1;
            var entries = _log.Slice(progress.Next, _log.LastIndex, _config.MaxEntriesPerMessage, _config.MaxBytesPerMessage);
            if (entries.Length == 0 && !sendIfEmpty)
            {
                return;
            }

            Send(new RaftMessage
            {
                Type = MessageType.Append, From = Id, To = peer, Term = Term,
                Index = prevIndex, LogTerm = _log.Term(prevIndex), Entries = entries, Commit = _log.Committed, RejectHint = ConfigurationIndex,
            });
            long lastSent = prevIndex + entries.Length;
            progress.CommitSent = Math.Max(progress.CommitSent, Math.Min(_log.Committed, lastSent));
            progress.SentEntries(lastSent, entries.Length, PayloadBytes(entries));
            sendIfEmpty = false;
            if (entries.Length == 0)
            {
                return;
            }
        }
    }

    private static long PayloadBytes(LogEntry[] entries)
    {
        long bytes = 0;
        foreach (var entry in entries)
        {
            bytes += entry.Data.Length + 16;
        }

        return bytes;
    }

    private void BroadcastAppends()
    {
        if (_config.BroadcastAppends)
        {
            SendAppendsToAll();
        }

        foreach (var peer in _progress.Keys)
        {
            SendAppends(peer, sendIfEmpty: _progress[peer].State == ProgressState.Probe);
        }
    }

    /// <summary>
    /// While every member's follower is replicating from the same next index with room in its
    /// window, and already has appends in flight (under load, where messages per commit matter; a
    /// lone append goes out point to point, which is quicker over Redis), sends the new entries as
    /// one broadcast AppendEntries (To = null): the same message each would get, for one PUBLISH. Whatever a follower still needs afterwards (it lags, probes,
    /// needs a snapshot, or its window filled) goes to it alone.
    /// </summary>
    private void SendAppendsToAll()
    {
        if (_progress.Count < 2 || (Discovering && !_members.Complete))
        {
            return;
        }

        while (true)
        {
            long next = 0;
            foreach (var progress in _progress.Values)
            {
                if (progress.State != ProgressState.Replicate || progress.IsPaused || progress.Next <= _log.SnapshotIndex
                    || progress.Inflights.Count == 0 || (next != 0 && progress.Next != next))
                {
                    return;
                }

                next = progress.Next;
            }

            if (next > _log.LastIndex)
            {
                return;
            }

            long prevIndex = next - 1;
            var entries = _log.Slice(next, _log.LastIndex, _config.MaxEntriesPerMessage, _config.MaxBytesPerMessage);
            Send(new RaftMessage
            {
                Type = MessageType.Append, From = Id, To = null, Term = Term,
                Index = prevIndex, LogTerm = _log.Term(prevIndex), Entries = entries, Commit = _log.Committed, RejectHint = ConfigurationIndex,
            });
            long lastSent = prevIndex + entries.Length;
            long bytes = PayloadBytes(entries);
            foreach (var progress in _progress.Values)
            {
                progress.CommitSent = Math.Max(progress.CommitSent, Math.Min(_log.Committed, lastSent));
                progress.SentEntries(lastSent, entries.Length, bytes);
            }
        }
    }

    /// <summary>Raft §5.4.2: commit the highest index stored on a majority, but only if it is of the current term.</summary>
    private bool MaybeCommit()
    {
        Span<long> matches = stackalloc long[_voterProgress.Length];
        int n = VoterValues(matches, _log.LastIndex, static p => p.Match);
        long index = Quorum.CommittedIndex(matches[..n], VoterCount);
        if (index > _log.Committed && _log.Term(index) == Term)
        {
            _log.CommitTo(index);
            return true;
        }

        return false;
    }

    /// <summary>
    /// When every member's follower is owed the same commit notice (each has the new commit index in
    /// its log) and has appends in flight (under load), sends it once as a broadcast; false otherwise
    /// (then each gets its own).
    /// </summary>
    private bool BroadcastCommitNotice()
    {
        if (!_config.BroadcastAppends || _progress.Count < 2 || (Discovering && !_members.Complete))
        {
            return false;
        }

        long commit = _log.Committed;
        foreach (var progress in _progress.Values)
        {
            if (progress.Match < commit || progress.CommitSent >= commit || progress.Inflights.Count == 0)
            {
                return false;
            }
        }

        foreach (var progress in _progress.Values)
        {
            progress.CommitSent = commit;
        }

        Send(new RaftMessage { Type = MessageType.CommitNotice, From = Id, To = null, Term = Term, Commit = commit });
        return true;
    }

    /// <summary>Sends what this batch of input made due: new entries, then commit notices.</summary>
    private void FlushLeader()
    {
        if (_broadcastPending)
        {
            _broadcastPending = false;
            BroadcastAppends();
        }

        if (_commitNoticePending)
        {
            _commitNoticePending = false;
            if (_config.AccelerateCommit && !BroadcastCommitNotice())
            {
                foreach (var (peer, progress) in _progress)
                {
                    long commit = Math.Min(progress.Match, _log.Committed);
                    if (commit > progress.CommitSent)
                    {
                        progress.CommitSent = commit;
                        Send(new RaftMessage { Type = MessageType.CommitNotice, From = Id, To = peer, Term = Term, Commit = commit });
                    }
                }
            }
        }
    }
}
