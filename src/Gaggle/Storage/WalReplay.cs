using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace Gaggle.Storage;

/// <summary>
/// Reads segments back into a <see cref="WalIndex"/>, one complete write at a time (a write's
/// records are applied only once its last record is read, so a batch survives whole or not at all).
/// </summary>
/// <remarks>
/// Only the last segment may end in an interrupted write: the bytes of the one write that was in
/// progress when the process or machine stopped, which no call acknowledged. They may be cut short,
/// zeroed or, since the disk can persist a write's pages in any order, have holes with intact records
/// after them. So damage in the last segment counts as such a torn tail when every valid record after
/// it belongs to that same write; a valid record of any other write after the damage means data that
/// was acknowledged is damaged, and that is reported, never repaired.
/// </remarks>
internal static class WalReplay
{
    private const int ScanWindowBytes = 1024 * 1024;

    /// <summary>Replays segment <paramref name="sequence"/>; returns the length of its intact part.</summary>
    /// <exception cref="RaftStorageCorruptException">Acknowledged data is damaged.</exception>
    public static async ValueTask<long> ReplaySegmentAsync(
        string directory, long sequence, WalIndex index, bool isLast, ILogger logger, CancellationToken cancellationToken)
    {
        string path = Path.Combine(directory, WalSegment.FileName(sequence));
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.Asynchronous);
        long fileLength = RandomAccess.GetLength(handle);
        var header = new byte[WalRecord.HeaderSize];
        var pending = new List<ReadRecord>();
        long offset = WalSegment.HeaderSize;
        long writeStart = offset;
        string? damage = null;
        while (offset < fileLength)
        {
            (var record, damage) = await ReadRecordAsync(handle, offset, fileLength, header, cancellationToken).ConfigureAwait(false);
            if (record is null)
            {
                break;
            }

            ulong write = record.Header.Write;
            ulong expected = pending.Count > 0 ? pending[0].Header.Write : index.LastWrite + 1;
            if (write != expected && (pending.Count > 0 || index.LastWrite > 0))
            {
                damage = $"the record belongs to write {write} where write {expected} was expected";
                break;
            }

            pending.Add(record);
            offset += WalRecord.HeaderSize + record.Payload.Length;
            if (record.Header.EndsWrite)
            {
                Apply(path, sequence, pending, index);
                index.LastWrite = write;
                pending.Clear();
                writeStart = offset;
            }
        }

        if (damage is null && pending.Count == 0)
        {
            return offset;
        }

        string reason = damage ?? $"the file ends inside write {pending[0].Header.Write}";
        if (!isLast)
        {
            throw new RaftStorageCorruptException(path, damage is null ? writeStart : offset, $"{reason}; only the last segment may end in an interrupted write.");
        }

        if (damage is not null)
        {
            ulong? tornWrite = pending.Count > 0 ? pending[0].Header.Write : index.LastWrite > 0 ? index.LastWrite + 1 : null;
            if (await FindRecordOfAnotherWriteAsync(handle, offset, fileLength, tornWrite, cancellationToken).ConfigureAwait(false) is { } later)
            {
                throw new RaftStorageCorruptException(
                    path,
                    offset,
                    $"{reason}, yet a valid record of write {later.Write} follows at byte offset {later.Offset}, so this is damaged data rather than an interrupted write.");
            }
        }

        StorageLog.CutTornTail(logger, directory, Path.GetFileName(path), writeStart, reason, fileLength - writeStart);
        return writeStart;
    }

    private static void Apply(string path, long sequence, List<ReadRecord> records, WalIndex index)
    {
        foreach (var record in records)
        {
            try
            {
                switch (record.Header.Type)
                {
                    case WalRecordType.HardState:
                        index.HardState = WalRecord.ReadHardState(record.Payload);
                        break;
                    case WalRecordType.Entries:
                        var entries = WalRecord.ReadEntries(record.Payload);
                        long first = entries[0].Entry.Index;
                        if (index.CheckAppend(first) is { } problem)
                        {
                            throw new FormatException(problem);
                        }

                        index.TruncateFrom(first);
                        long payloadAt = record.Offset + WalRecord.HeaderSize;
                        foreach (var decoded in entries)
                        {
                            index.Add(new EntryLocation(decoded.Entry.Term, sequence, payloadAt + decoded.PayloadOffset, decoded.EncodedLength), decoded.Entry);
                        }

                        break;
                    case WalRecordType.SnapshotMarker:
                        var (snapshotIndex, snapshotTerm) = WalRecord.ReadSnapshotMarker(record.Payload);
                        if (snapshotIndex < 1 || (index.HasSnapshot && snapshotIndex < index.SnapshotIndex))
                        {
                            throw new FormatException($"a snapshot marker names index {snapshotIndex}, older than the snapshot at {index.SnapshotIndex} before it");
                        }

                        index.ApplySnapshot(snapshotIndex, snapshotTerm);
                        break;
                }
            }
            catch (FormatException e)
            {
                // The checksum matched, so these bytes are what was written: a format this code does not understand.
                throw new RaftStorageCorruptException(path, record.Offset, $"the record's checksum matches but its content is invalid: {e.Message}");
            }
        }
    }

    private static async ValueTask<(ReadRecord? Record, string? Damage)> ReadRecordAsync(
        SafeFileHandle handle, long offset, long fileLength, byte[] header, CancellationToken cancellationToken)
    {
        if (fileLength - offset < WalRecord.HeaderSize)
        {
            return (null, "the file ends inside a record header");
        }

        await ReadExactlyAsync(handle, header, offset, cancellationToken).ConfigureAwait(false);
        if (!WalRecordHeader.TryParse(header, out var parsed))
        {
            return (null, "the record header is damaged (unknown type or impossible length)");
        }

        if (parsed.PayloadLength > fileLength - offset - WalRecord.HeaderSize)
        {
            return (null, $"the record's length ({parsed.PayloadLength} bytes) runs past the end of the file");
        }

        var payload = new byte[parsed.PayloadLength];
        await ReadExactlyAsync(handle, payload, offset + WalRecord.HeaderSize, cancellationToken).ConfigureAwait(false);
        if (WalRecord.Checksum(header, payload) != parsed.Checksum)
        {
            return (null, "the record's checksum does not match its content");
        }

        return (new ReadRecord(parsed, payload, offset), null);
    }

    /// <summary>
    /// Looks at every byte offset from <paramref name="from"/> for a valid record (a header that parses and a
    /// matching checksum) whose write is not <paramref name="tornWrite"/>; valid records of the torn write are skipped.
    /// </summary>
    private static async ValueTask<(long Offset, ulong Write)?> FindRecordOfAnotherWriteAsync(
        SafeFileHandle handle, long from, long fileLength, ulong? tornWrite, CancellationToken cancellationToken)
    {
        var window = new byte[ScanWindowBytes + WalRecord.HeaderSize];
        long position = from;
        while (fileLength - position >= WalRecord.HeaderSize)
        {
            int read = (int)Math.Min(window.Length, fileLength - position);
            await ReadExactlyAsync(handle, window.AsMemory(0, read), position, cancellationToken).ConfigureAwait(false);
            long next = position + read - WalRecord.HeaderSize + 1;
            for (int i = 0; i + WalRecord.HeaderSize <= read; i++)
            {
                long at = position + i;
                var header = window.AsMemory(i, WalRecord.HeaderSize);
                if (!WalRecordHeader.TryParse(header.Span, out var parsed) || parsed.Write == 0 || parsed.PayloadLength > fileLength - at - WalRecord.HeaderSize)
                {
                    continue;
                }

                var payload = i + WalRecord.HeaderSize + parsed.PayloadLength <= read
                    ? window.AsMemory(i + WalRecord.HeaderSize, parsed.PayloadLength)
                    : await ReadPayloadAsync(handle, at, parsed.PayloadLength, cancellationToken).ConfigureAwait(false);
                if (WalRecord.Checksum(header.Span, payload.Span) != parsed.Checksum)
                {
                    continue;
                }

                tornWrite ??= parsed.Write;
                if (parsed.Write != tornWrite)
                {
                    return (at, parsed.Write);
                }

                next = at + WalRecord.HeaderSize + parsed.PayloadLength;
                break;
            }

            position = next;
        }

        return null;
    }

    private static async ValueTask<ReadOnlyMemory<byte>> ReadPayloadAsync(SafeFileHandle handle, long recordAt, int length, CancellationToken cancellationToken)
    {
        var payload = new byte[length];
        await ReadExactlyAsync(handle, payload, recordAt + WalRecord.HeaderSize, cancellationToken).ConfigureAwait(false);
        return payload;
    }

    /// <summary>Reads exactly <paramref name="buffer"/>'s length at <paramref name="offset"/>.</summary>
    public static async ValueTask ReadExactlyAsync(SafeFileHandle handle, Memory<byte> buffer, long offset, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            int read = await RandomAccess.ReadAsync(handle, buffer, offset, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException($"The file ended at byte offset {offset} while {buffer.Length} more bytes were expected.");
            }

            buffer = buffer[read..];
            offset += read;
        }
    }

    private sealed record ReadRecord(WalRecordHeader Header, byte[] Payload, long Offset);
}
