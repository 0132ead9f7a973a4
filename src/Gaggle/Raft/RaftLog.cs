namespace Gaggle.Raft;

/// <summary>
/// The in-memory log of a Raft node with its commit and apply cursors, and the record of what
/// changed since the driver last persisted it.
/// </summary>
internal sealed class RaftLog
{
    private readonly List<LogEntry> _entries;

    /// <summary>The index before the first entry held: the last index covered by the snapshot (0 without one).</summary>
    private long _offset;

    /// <summary>The term of the entry at <see cref="_offset"/>.</summary>
    private long _offsetTerm;

    /// <summary>The lowest index written since the last <see cref="TakeUnpersisted"/>; long.MaxValue when nothing.</summary>
    private long _unpersistedFrom = long.MaxValue;

    public RaftLog(IReadOnlyList<LogEntry> entries, long commit, long applied, RaftSnapshot? snapshot = null)
    {
        _entries = new List<LogEntry>(entries);
        _offset = snapshot?.Index ?? 0;
        _offsetTerm = snapshot?.Term ?? 0;
        for (int i = 0; i < _entries.Count; i++)
        {
            if (_entries[i].Index != _offset + i + 1)
            {
                throw new ArgumentException(
                    $"Log entry at position {i} has index {_entries[i].Index}; entries must be contiguous from {_offset + 1}.",
                    nameof(entries));
            }
        }

        Committed = Math.Max(Math.Min(commit, LastIndex), _offset);
        Applied = Math.Max(Math.Min(applied, Committed), _offset);
    }

    /// <summary>The first index held in memory (entries before it live only in the snapshot).</summary>
    public long FirstIndex => _offset + 1;

    /// <summary>The last index the snapshot covers (0 without one).</summary>
    public long SnapshotIndex => _offset;

    /// <summary>
    /// Log compaction (Raft §7): drops the entries up to <paramref name="index"/>, which a snapshot
    /// now covers. Only applied entries can be compacted.
    /// </summary>
    public void Compact(long index)
    {
        if (index <= _offset)
        {
            return;
        }

        if (index > Applied)
        {
            throw new InvalidOperationException($"Cannot compact to {index}: only entries up to {Applied} are applied.");
        }

        _offsetTerm = Term(index);
        _entries.RemoveRange(0, (int)(index - _offset));
        _offset = index;
    }

    /// <summary>Replaces the whole log by a snapshot received from the leader (its entries are all committed).</summary>
    public void Restore(RaftSnapshot snapshot)
    {
        _entries.Clear();
        _offset = snapshot.Index;
        _offsetTerm = snapshot.Term;
        Committed = snapshot.Index;
        Applied = snapshot.Index;
        _unpersistedFrom = long.MaxValue;
    }

    public long Committed { get; private set; }

    public long Applied { get; private set; }

    public long LastIndex => _offset + _entries.Count;

    public long LastTerm => Term(LastIndex);

    public int Count => _entries.Count;

    /// <summary>The term of the entry at <paramref name="index"/>, 0 for index 0, -1 when not in the log.</summary>
    public long Term(long index)
    {
        if (index == _offset)
        {
            return _offsetTerm;
        }

        if (index < _offset || index > LastIndex)
        {
            return -1;
        }

        return _entries[(int)(index - _offset - 1)].Term;
    }

    public LogEntry Entry(long index) => _entries[(int)(index - _offset - 1)];

    public bool MatchTerm(long index, long term) => Term(index) == term;

    /// <summary>Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours?</summary>
    public bool IsUpToDate(long lastIndex, long lastTerm)
        => lastTerm > LastTerm || (lastTerm == LastTerm && lastIndex >= LastIndex);

    /// <summary>First index of the term of the entry at <paramref name="index"/> (for conflict hints).</summary>
    public long FirstIndexOfTerm(long index)
    {
        long term = Term(index);
        long i = index;
        while (i - 1 > _offset && Term(i - 1) == term)
        {
            i--;
        }

        return i;
    }

    /// <summary>The last index whose term is <paramref name="term"/>, or 0 when the log has none.</summary>
    public long LastIndexOfTerm(long term)
    {
        for (long i = LastIndex; i > _offset; i--)
        {
            long t = Term(i);
            if (t == term)
            {
                return i;
            }

            if (t < term)
            {
                break;
            }
        }

        return 0;
    }

    /// <summary>Appends entries created by this node as leader.</summary>
    public void AppendNew(LogEntry entry)
    {
        _entries.Add(entry);
        _unpersistedFrom = Math.Min(_unpersistedFrom, entry.Index);
    }

    /// <summary>
    /// Receiver rules 3 and 4 of AppendEntries (Raft Figure 2): skip entries we already hold, cut the
    /// log at the first conflicting entry (wherever it is, the first entry included) and append the rest.
    /// A stale or duplicated message therefore never truncates anything.
    /// </summary>
    public void Merge(IReadOnlyList<LogEntry> entries)
    {
        for (int i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (entry.Index <= LastIndex && MatchTerm(entry.Index, entry.Term))
            {
                continue;
            }

            if (entry.Index <= Committed)
            {
                throw new InvalidOperationException(
                    $"Entry {entry.Index} (term {entry.Term}) conflicts with the committed entry (term {Term(entry.Index)}); "
                    + "this violates Raft's Log Matching property.");
            }

            if (entry.Index <= LastIndex)
            {
                _entries.RemoveRange((int)(entry.Index - _offset - 1), (int)(LastIndex - entry.Index + 1));
            }

            if (entry.Index != LastIndex + 1)
            {
                throw new InvalidOperationException($"Entry {entry.Index} does not follow the last index {LastIndex}.");
            }

            for (int j = i; j < entries.Count; j++)
            {
                _entries.Add(entries[j]);
            }

            _unpersistedFrom = Math.Min(_unpersistedFrom, entry.Index);
            return;
        }
    }

    /// <summary>Drops the entries after <paramref name="index"/>, none of them committed (a forced new cluster moves them behind its start).</summary>
    public void TruncateAfter(long index)
    {
        if (index < Committed || index > LastIndex)
        {
            throw new InvalidOperationException($"Cannot cut the log after {index}: only entries after the commit index {Committed} and up to the last index {LastIndex} can be.");
        }

        _entries.RemoveRange((int)(index - _offset), (int)(LastIndex - index));
        _unpersistedFrom = Math.Min(_unpersistedFrom, index + 1);
    }

    public void CommitTo(long index)
    {
        if (index > Committed)
        {
            if (index > LastIndex)
            {
                throw new InvalidOperationException($"Cannot commit {index}: the last index is {LastIndex}.");
            }

            Committed = index;
        }
    }

    /// <summary>Entries in [from, to], at most <paramref name="maxCount"/> and about <paramref name="maxBytes"/> (at least one).</summary>
    public LogEntry[] Slice(long from, long to, int maxCount, long maxBytes)
    {
        if (from > to)
        {
            return [];
        }

        int count = (int)Math.Min(to - from + 1, maxCount);
        long bytes = 0;
        int start = (int)(from - _offset - 1);
        int taken = 0;
        while (taken < count)
        {
            bytes += _entries[start + taken].Data.Length + 16;
            if (taken > 0 && bytes > maxBytes)
            {
                break;
            }

            taken++;
        }

        var slice = new LogEntry[taken];
        _entries.CopyTo(start, slice, 0, taken);
        return slice;
    }

    /// <summary>Entries written since the last call (the first may overwrite a persisted index).</summary>
    public IReadOnlyList<LogEntry> TakeUnpersisted()
    {
        if (_unpersistedFrom > LastIndex)
        {
            _unpersistedFrom = long.MaxValue;
            return [];
        }

        var result = _entries.GetRange((int)(_unpersistedFrom - _offset - 1), (int)(LastIndex - _unpersistedFrom + 1));
        _unpersistedFrom = long.MaxValue;
        return result;
    }

    public bool HasUnpersisted => _unpersistedFrom <= LastIndex;

    /// <summary>Committed entries not yet handed out for applying; marks them applied.</summary>
    public IReadOnlyList<LogEntry> TakeCommittedToApply()
    {
        if (Applied >= Committed)
        {
            return [];
        }

        var result = _entries.GetRange((int)(Applied - _offset), (int)(Committed - Applied));
        Applied = Committed;
        return result;
    }

    public IReadOnlyList<LogEntry> All() => _entries.ToArray();
}
