using Gaggle.Channels;

namespace Gaggle.Locks;

/// <summary>The lock table's snapshot: every lock with its holders and queue, the clock, the generation and its hold-off.</summary>
internal sealed partial class LockTable
{
    public void Write(Stream output)
    {
        var writer = new WireWriter();
        writer.VarLong(Now);
        writer.VarUInt((ulong)_locks.Count);
        foreach (var (name, state) in _locks.OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            writer.String(name);
            writer.VarLong(state.MaxCount);
            writer.VarUInt((ulong)state.Holders.Count);
            foreach (var holder in state.Holders)
            {
                WriteRequest(writer, holder.Request);
                writer.VarLong(holder.Token);
                writer.VarLong(holder.Since);
                writer.VarLong(holder.Expiry);
            }

            writer.VarUInt((ulong)state.Waiters.Count);
            foreach (var waiter in state.Waiters)
            {
                WriteRequest(writer, waiter.Request);
                writer.VarLong(waiter.LeaseMs);
                writer.VarLong(waiter.Deadline);
            }
        }

        writer.VarLong(Generation);
        writer.VarLong(GrantsFrom);
        WriteReaderWriterModes(writer);
        output.Write(writer.ToArray());
    }

    public void Read(Stream input)
    {
        using var buffer = new MemoryStream();
        input.CopyTo(buffer);
        var reader = new WireReader(buffer.ToArray());
        _locks.Clear();
        _events.Clear();
        _touched.Clear();
        _waiting.Clear();
        Now = reader.VarLong();
        ulong count = reader.VarUInt();
        for (ulong i = 0; i < count; i++)
        {
            string name = reader.String();
            long maxCount = reader.VarLong();
            if (maxCount is < 0 or > int.MaxValue)
            {
                throw new FormatException($"The lock table snapshot gives '{name}' a maximum of {maxCount} holders; it must be 0 (a reader-writer lock) to {int.MaxValue}.");
            }

            var state = new LockState((int)maxCount);
            ulong holders = reader.VarUInt();
            for (ulong j = 0; j < holders; j++)
            {
                var request = ReadRequest(ref reader);
                state.Holders.Add(new LockHolder(reader.VarLong(), request, reader.VarLong(), reader.VarLong()));
            }

            ulong waiters = reader.VarUInt();
            for (ulong j = 0; j < waiters; j++)
            {
                state.Waiters.Add(new LockWaiter(ReadRequest(ref reader), reader.VarLong(), reader.VarLong()));
            }

            _locks[name] = state;
        }

        // Snapshots written before generations existed end here.
        Generation = reader.Remaining > 0 ? reader.VarLong() : 0;
        GrantsFrom = reader.Remaining > 0 ? reader.VarLong() : 0;
        ReadReaderWriterModes(ref reader);
        reader.End();
        LinkGroups();
        _deadlines.Clear();
        foreach (var (name, state) in _locks)
        {
            foreach (var holder in state.Holders)
            {
                _deadlines.Enqueue(name, holder.Expiry);
            }

            foreach (var waiter in state.Waiters)
            {
                _deadlines.Enqueue(name, waiter.Deadline);
            }

            if (state.Waiters.Count > 0 && Now < GrantsFrom)
            {
                _deadlines.Enqueue(name, GrantsFrom);
            }

            if (HasGrantable(name, state))
            {
                // The entry that wrote it ran out of tokens for its first waiter: due at once, as in the table that wrote it.
                _deadlines.Enqueue(name, Now);
            }
        }

        SettleNextDeadline();
    }

    private static void WriteRequest(WireWriter writer, RequestId request)
    {
        writer.String(request.Node);
        writer.VarUInt(request.Incarnation);
        writer.VarLong(request.Sequence);
    }

    private static RequestId ReadRequest(ref WireReader reader) => new(reader.String(), reader.VarUInt(), reader.VarLong());

    /// <summary>
    /// Which holders and waiters of each reader-writer lock are writers, after everything else: a
    /// table without reader-writer locks writes nothing here, so its snapshot reads as before.
    /// </summary>
    private void WriteReaderWriterModes(WireWriter writer)
    {
        var readerWriters = _locks.Where(l => l.Value.ReaderWriter).OrderBy(l => l.Key, StringComparer.Ordinal).ToList();
        if (readerWriters.Count == 0)
        {
            return;
        }

        writer.VarUInt((ulong)readerWriters.Count);
        foreach (var (name, state) in readerWriters)
        {
            writer.String(name);
            foreach (var holder in state.Holders)
            {
                writer.Byte(holder.Writer ? (byte)1 : (byte)0);
            }

            foreach (var waiter in state.Waiters)
            {
                writer.Byte(waiter.Writer ? (byte)1 : (byte)0);
            }
        }
    }

    private void ReadReaderWriterModes(ref WireReader reader)
    {
        var unread = _locks.Where(l => l.Value.ReaderWriter).Select(l => l.Key).ToHashSet(StringComparer.Ordinal);
        if (reader.Remaining == 0)
        {
            if (unread.Count == 0)
            {
                return;
            }

            throw new FormatException($"The lock table snapshot has {unread.Count} reader-writer locks ('{unread.First()}', ...) but does not say which of their holders and waiters are writers.");
        }

        ulong count = reader.VarUInt();
        for (ulong i = 0; i < count; i++)
        {
            string name = reader.String();
            if (!unread.Remove(name) || !_locks.TryGetValue(name, out var state))
            {
                throw new FormatException($"The lock table snapshot names '{name}' as a reader-writer lock, but has no such lock (or names it twice).");
            }

            for (int j = 0; j < state.Holders.Count; j++)
            {
                state.Holders[j] = state.Holders[j] with { Writer = ReadFlag(ref reader) };
            }

            for (int j = 0; j < state.Waiters.Count; j++)
            {
                state.Waiters[j] = state.Waiters[j] with { Writer = ReadFlag(ref reader) };
            }
        }

        if (unread.Count > 0)
        {
            throw new FormatException($"The lock table snapshot does not say which holders and waiters of the reader-writer lock '{unread.First()}' are writers.");
        }
    }

    private static bool ReadFlag(ref WireReader reader) => reader.Byte() switch
    {
        0 => false,
        1 => true,
        var other => throw new FormatException($"A reader-writer flag in the lock table snapshot is {other}; it must be 0 or 1."),
    };
}
