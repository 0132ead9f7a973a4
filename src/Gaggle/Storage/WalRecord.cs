using System.Buffers.Binary;
using System.Text;
using Gaggle.Raft;

namespace Gaggle.Storage;

/// <summary>What a write-ahead log record holds.</summary>
internal enum WalRecordType : byte
{
    /// <summary>The hard state: term, commit, vote.</summary>
    HardState = 1,

    /// <summary>Contiguous entries from a first index; a first index already stored truncates the log there first.</summary>
    Entries = 2,

    /// <summary>A snapshot (index, term) was saved: the entries it covers are discarded, as <see cref="IRaftStorage.SaveSnapshotAsync"/> says.</summary>
    SnapshotMarker = 3,
}

/// <summary>A record's fixed-size header, parsed.</summary>
/// <param name="PayloadLength">The payload's length in bytes.</param>
/// <param name="Checksum">The stored CRC-32C.</param>
/// <param name="Write">The number of the write (one save call) the record belongs to.</param>
/// <param name="Type">What the payload holds.</param>
/// <param name="EndsWrite">Whether this is the last record of its write.</param>
internal readonly record struct WalRecordHeader(int PayloadLength, uint Checksum, ulong Write, WalRecordType Type, bool EndsWrite)
{
    /// <summary>Parses a header; false when the type is unknown or the length impossible.</summary>
    public static bool TryParse(ReadOnlySpan<byte> header, out WalRecordHeader parsed)
    {
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        byte typeAndFlags = header[16];
        byte type = (byte)(typeAndFlags & ~WalRecord.EndOfWriteFlag);
        parsed = new WalRecordHeader(
            (int)Math.Min(length, int.MaxValue),
            BinaryPrimitives.ReadUInt32LittleEndian(header[4..]),
            BinaryPrimitives.ReadUInt64LittleEndian(header[8..]),
            (WalRecordType)type,
            (typeAndFlags & WalRecord.EndOfWriteFlag) != 0);
        return length <= WalRecord.MaxPayloadBytes && type is >= 1 and <= 3;
    }
}

/// <summary>
/// The record layout of the write-ahead log. All integers are little-endian.
/// <code>
/// [0, 4)   payload length (u32)
/// [4, 8)   CRC-32C of bytes [0, 4) and [8, 17 + length)
/// [8, 16)  write number (u64): every save call is one write of one or more records; numbers rise by 1
/// [16]     record type (low 7 bits) | 0x80 on the last record of a write
/// [17, ..) payload
///
/// hard state:      term (i64), commit (i64), vote length (i32, -1 for none), vote (UTF-8)
/// entries:         first index (i64), count (i32), then per entry: term (i64), kind (u8), data length (i32), data
/// snapshot marker: index (i64), term (i64)
/// </code>
/// </summary>
internal static class WalRecord
{
    /// <summary>The size of a record's header.</summary>
    public const int HeaderSize = 17;

    /// <summary>Set in the type byte of the last record of a write.</summary>
    public const byte EndOfWriteFlag = 0x80;

    /// <summary>The largest payload a record may have (what one array can hold).</summary>
    public const int MaxPayloadBytes = 0x7FFFFFC7 - HeaderSize;

    /// <summary>The size of an entries payload's header: first index, count.</summary>
    public const int EntriesHeaderSize = 12;

    /// <summary>The size of an encoded entry without its data: term, kind, data length.</summary>
    public const int EntryHeaderSize = 13;

    /// <summary>The size of a snapshot marker's payload.</summary>
    public const int SnapshotMarkerSize = 16;

    /// <summary>The checksum of a record whose 17-byte header is <paramref name="header"/>.</summary>
    public static uint Checksum(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        uint state = Crc32C.Append(Crc32C.Initial, header[..4]);
        state = Crc32C.Append(state, header[8..HeaderSize]);
        return Crc32C.Finish(Crc32C.Append(state, payload));
    }

    /// <summary>Decodes a hard state payload.</summary>
    /// <exception cref="FormatException">The payload is malformed.</exception>
    public static HardState ReadHardState(ReadOnlySpan<byte> payload)
    {
        Require(payload.Length >= 20, "a hard state record is shorter than 20 bytes");
        long term = BinaryPrimitives.ReadInt64LittleEndian(payload);
        long commit = BinaryPrimitives.ReadInt64LittleEndian(payload[8..]);
        int voteLength = BinaryPrimitives.ReadInt32LittleEndian(payload[16..]);
        int voteBytes = Math.Max(voteLength, 0);
        Require(voteLength >= -1 && payload.Length == 21 + voteBytes, "a hard state record's vote length does not match its size");
        string? vote = voteLength < 0 ? null : Encoding.UTF8.GetString(payload.Slice(20, voteLength));
        byte flags = payload[20 + voteBytes];
        Require(flags <= 1, "a hard state record has unknown flags");
        return new HardState(term, vote, commit, Rejoining: flags == 1);
    }

    /// <summary>Decodes a snapshot marker payload.</summary>
    /// <exception cref="FormatException">The payload is malformed.</exception>
    public static (long Index, long Term) ReadSnapshotMarker(ReadOnlySpan<byte> payload)
    {
        Require(payload.Length == SnapshotMarkerSize, "a snapshot marker record is not 16 bytes long");
        return (BinaryPrimitives.ReadInt64LittleEndian(payload), BinaryPrimitives.ReadInt64LittleEndian(payload[8..]));
    }

    /// <summary>
    /// Decodes an entries payload. Each entry's data is a slice of <paramref name="payload"/> (no copy);
    /// its position is reported relative to the payload's start so the caller can index it.
    /// </summary>
    /// <exception cref="FormatException">The payload is malformed.</exception>
    public static DecodedEntry[] ReadEntries(ReadOnlyMemory<byte> payload)
    {
        var span = payload.Span;
        Require(span.Length >= EntriesHeaderSize, "an entries record is shorter than its header");
        long first = BinaryPrimitives.ReadInt64LittleEndian(span);
        int count = BinaryPrimitives.ReadInt32LittleEndian(span[8..]);
        Require(first >= 1 && count >= 1 && count <= (span.Length - EntriesHeaderSize) / EntryHeaderSize, "an entries record has an impossible first index or count");
        var entries = new DecodedEntry[count];
        int at = EntriesHeaderSize;
        for (int i = 0; i < count; i++)
        {
            Require(span.Length - at >= EntryHeaderSize, "an entries record ends inside an entry");
            long term = BinaryPrimitives.ReadInt64LittleEndian(span[at..]);
            var kind = (EntryKind)span[at + 8];
            int dataLength = BinaryPrimitives.ReadInt32LittleEndian(span[(at + 9)..]);
            Require(Enum.IsDefined(kind) && dataLength >= 0 && dataLength <= span.Length - at - EntryHeaderSize, "an entries record holds an entry with an unknown kind or impossible length");
            var entry = new LogEntry(first + i, term, kind, payload.Slice(at + EntryHeaderSize, dataLength));
            entries[i] = new DecodedEntry(entry, at, EntryHeaderSize + dataLength);
            at += EntryHeaderSize + dataLength;
        }

        Require(at == span.Length, "an entries record has bytes after its last entry");
        return entries;
    }

    private static void Require(bool condition, string problem)
    {
        if (!condition)
        {
            throw new FormatException(problem);
        }
    }
}

/// <summary>An entry read from a record, with where its encoding sits in the record's payload.</summary>
/// <param name="Entry">The entry.</param>
/// <param name="PayloadOffset">Where the encoded entry starts, relative to the payload.</param>
/// <param name="EncodedLength">The encoded entry's length (header and data).</param>
internal readonly record struct DecodedEntry(LogEntry Entry, int PayloadOffset, int EncodedLength);
