using System.Buffers.Binary;
using System.Text;
using Gaggle.Raft;

namespace Gaggle.Storage;

/// <summary>
/// Encodes one write (the records of one save call) into a reusable buffer, so that a batch reaches
/// the file in a single write call. See <see cref="WalRecord"/> for the layout.
/// </summary>
internal sealed class WalBatchWriter
{
    /// <summary>Entries records are cut near this payload size, so replay reads many small entries in bounded chunks.</summary>
    public const int TargetEntriesPayloadBytes = 1024 * 1024;

    /// <summary>The largest entry data a record can hold.</summary>
    public const int MaxEntryDataBytes = WalRecord.MaxPayloadBytes - WalRecord.EntriesHeaderSize - WalRecord.EntryHeaderSize;

    private const int InitialCapacity = 64 * 1024;
    private const int RetainedCapacity = 4 * 1024 * 1024;

    private byte[] _buffer = new byte[InitialCapacity];
    private int _length;
    private ulong _write;
    private int _recordStart = -1;
    private WalRecordType _recordType;
    private int _entriesCount;
    private long _entriesNext;

    /// <summary>The number of bytes encoded so far.</summary>
    public int Length => _length;

    /// <summary>Starts encoding write number <paramref name="write"/>, discarding what the buffer held.</summary>
    public void Begin(ulong write)
    {
        _write = write;
        Restart();
    }

    /// <summary>Empties the buffer but stays in the same write (a write too large for one buffer is written in parts).</summary>
    public void Restart()
    {
        if (_buffer.Length > RetainedCapacity)
        {
            _buffer = new byte[InitialCapacity];
        }

        _length = 0;
        _recordStart = -1;
    }

    /// <summary>Adds a hard state record.</summary>
    public void AddHardState(HardState state)
    {
        int voteBytes = state.VotedFor is null ? 0 : Encoding.UTF8.GetByteCount(state.VotedFor);
        int at = OpenRecord(WalRecordType.HardState, 21 + voteBytes);
        var payload = _buffer.AsSpan(at, 21 + voteBytes);
        payload[20 + voteBytes] = state.Rejoining ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt64LittleEndian(payload, state.Term);
        BinaryPrimitives.WriteInt64LittleEndian(payload[8..], state.Commit);
        BinaryPrimitives.WriteInt32LittleEndian(payload[16..], state.VotedFor is null ? -1 : voteBytes);
        if (state.VotedFor is not null)
        {
            Encoding.UTF8.GetBytes(state.VotedFor, payload[20..]);
        }
    }

    /// <summary>Adds a snapshot marker record.</summary>
    public void AddSnapshotMarker(long index, long term)
    {
        int at = OpenRecord(WalRecordType.SnapshotMarker, WalRecord.SnapshotMarkerSize);
        BinaryPrimitives.WriteInt64LittleEndian(_buffer.AsSpan(at), index);
        BinaryPrimitives.WriteInt64LittleEndian(_buffer.AsSpan(at + 8), term);
    }

    /// <summary>Adds an entry, continuing the open entries record when it is contiguous and not too large.</summary>
    /// <returns>Where the encoded entry starts in the buffer.</returns>
    public int AddEntry(in LogEntry entry)
    {
        var data = entry.Data.Span;
        int at = ReserveEntry(entry.Index, WalRecord.EntryHeaderSize + data.Length);
        var target = _buffer.AsSpan(at, WalRecord.EntryHeaderSize + data.Length);
        BinaryPrimitives.WriteInt64LittleEndian(target, entry.Term);
        target[8] = (byte)entry.Kind;
        BinaryPrimitives.WriteInt32LittleEndian(target[9..], data.Length);
        data.CopyTo(target[WalRecord.EntryHeaderSize..]);
        return at;
    }

    /// <summary>Adds an entry already encoded (term, kind, length, data), as copied from another segment.</summary>
    /// <returns>Where the encoded entry starts in the buffer.</returns>
    public int AddEncodedEntry(long index, ReadOnlySpan<byte> encoded)
    {
        int at = ReserveEntry(index, encoded.Length);
        encoded.CopyTo(_buffer.AsSpan(at));
        return at;
    }

    /// <summary>Closes the open record and returns the encoded bytes.</summary>
    /// <param name="endsWrite">Whether the last record ends the write (false when more parts of the write follow).</param>
    public ReadOnlyMemory<byte> Finish(bool endsWrite = true)
    {
        CloseRecord(endsWrite);
        return _buffer.AsMemory(0, _length);
    }

    private int ReserveEntry(long index, int size)
    {
        bool continues = _recordStart >= 0
            && _recordType == WalRecordType.Entries
            && index == _entriesNext
            && (long)_length - _recordStart - WalRecord.HeaderSize + size <= TargetEntriesPayloadBytes;
        if (!continues)
        {
            int header = OpenRecord(WalRecordType.Entries, WalRecord.EntriesHeaderSize);
            BinaryPrimitives.WriteInt64LittleEndian(_buffer.AsSpan(header), index);
            _entriesCount = 0;
            _entriesNext = index;
        }

        _entriesCount++;
        _entriesNext++;
        return Grow(size);
    }

    private int OpenRecord(WalRecordType type, int payloadSize)
    {
        CloseRecord(endsWrite: false);
        _recordStart = Grow(WalRecord.HeaderSize);
        _recordType = type;
        return Grow(payloadSize);
    }

    private void CloseRecord(bool endsWrite)
    {
        if (_recordStart < 0)
        {
            return;
        }

        var record = _buffer.AsSpan(_recordStart, _length - _recordStart);
        if (_recordType == WalRecordType.Entries)
        {
            BinaryPrimitives.WriteInt32LittleEndian(record[(WalRecord.HeaderSize + 8)..], _entriesCount);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)(record.Length - WalRecord.HeaderSize));
        BinaryPrimitives.WriteUInt64LittleEndian(record[8..], _write);
        record[16] = (byte)((byte)_recordType | (endsWrite ? WalRecord.EndOfWriteFlag : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], WalRecord.Checksum(record[..WalRecord.HeaderSize], record[WalRecord.HeaderSize..]));
        _recordStart = -1;
    }

    private int Grow(int size)
    {
        long needed = (long)_length + size;
        if (needed > _buffer.Length)
        {
            if (needed > Array.MaxLength)
            {
                throw new InvalidOperationException($"One write would need {needed} bytes; a batch must stay below {Array.MaxLength} bytes.");
            }

            Array.Resize(ref _buffer, (int)Math.Min(Array.MaxLength, Math.Max(needed, 2L * _buffer.Length)));
        }

        int at = _length;
        _length = (int)needed;
        return at;
    }
}
