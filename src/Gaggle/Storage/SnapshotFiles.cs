using System.Buffers.Binary;
using System.Globalization;
using Gaggle.Raft;

namespace Gaggle.Storage;

/// <summary>
/// Snapshot files: <c>snapshot-{index:D20}-{term:D20}.snap</c>, each written whole under a temporary
/// name, flushed and renamed into place, so a snapshot file is either complete or absent.
/// Layout (little-endian): magic "GSNP", format version (u32), index (i64), term (i64),
/// data length (i64), data, CRC-32C of everything before it (u32).
/// </summary>
internal static class SnapshotFiles
{
    private const int HeaderSize = 32;
    private const int TrailerSize = 4;
    private const uint FormatVersion = 1;
    private const string Prefix = "snapshot-";
    private const string Extension = ".snap";

    /// <summary>The file name of the snapshot at (<paramref name="index"/>, <paramref name="term"/>).</summary>
    public static string FileName(long index, long term)
        => $"{Prefix}{index.ToString("D20", CultureInfo.InvariantCulture)}-{term.ToString("D20", CultureInfo.InvariantCulture)}{Extension}";

    /// <summary>Parses a snapshot file name.</summary>
    public static bool TryParseFileName(string fileName, out long index, out long term)
    {
        index = term = 0;
        return fileName.Length == Prefix.Length + 41 + Extension.Length
            && fileName.StartsWith(Prefix, StringComparison.Ordinal)
            && fileName.EndsWith(Extension, StringComparison.Ordinal)
            && fileName[Prefix.Length + 20] == '-'
            && long.TryParse(fileName.AsSpan(Prefix.Length, 20), NumberStyles.None, CultureInfo.InvariantCulture, out index)
            && long.TryParse(fileName.AsSpan(Prefix.Length + 21, 20), NumberStyles.None, CultureInfo.InvariantCulture, out term);
    }

    /// <summary>Writes <paramref name="snapshot"/> atomically; returns its path.</summary>
    public static async ValueTask<string> WriteAsync(string directory, RaftSnapshot snapshot, bool flush, CancellationToken cancellationToken)
    {
        string path = Path.Combine(directory, FileName(snapshot.Index, snapshot.Term));
        string temporary = path + ".tmp";
        var header = new byte[HeaderSize];
        "GSNP"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), FormatVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), snapshot.Index);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), snapshot.Term);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(24), snapshot.Data.Length);
        var trailer = new byte[TrailerSize];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Initial, header), snapshot.Data.Span)));

        var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024, FileOptions.Asynchronous);
        await using (stream.ConfigureAwait(false))
        {
            await stream.WriteAsync(header, cancellationToken).ConfigureAwait(false);
            await stream.WriteAsync(snapshot.Data, cancellationToken).ConfigureAwait(false);
            await stream.WriteAsync(trailer, cancellationToken).ConfigureAwait(false);
            stream.Flush(flushToDisk: flush);
        }

        File.Move(temporary, path, overwrite: true);
        if (flush)
        {
            DirectorySync.Flush(directory);
        }

        return path;
    }

    /// <summary>Reads and checks the snapshot file at (<paramref name="index"/>, <paramref name="term"/>).</summary>
    /// <exception cref="RaftStorageCorruptException">The file is missing or damaged.</exception>
    public static async ValueTask<RaftSnapshot> ReadAsync(string directory, long index, long term, CancellationToken cancellationToken)
    {
        string path = Path.Combine(directory, FileName(index, term));
        if (!File.Exists(path))
        {
            throw new RaftStorageCorruptException(path, $"the log refers to the snapshot at index {index}, term {term}, but its file is missing.");
        }

        byte[] bytes = await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
        if (bytes.Length < HeaderSize + TrailerSize || !bytes.AsSpan(0, 4).SequenceEqual("GSNP"u8))
        {
            throw new RaftStorageCorruptException(path, 0, "the file is not a snapshot (too short or wrong magic number).");
        }

        uint version = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4));
        if (version != FormatVersion)
        {
            throw new RaftStorageCorruptException(path, 4, $"the snapshot's format version is {version}; this version of Gaggle reads version {FormatVersion}.");
        }

        long length = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(24));
        if (length != bytes.Length - HeaderSize - TrailerSize)
        {
            throw new RaftStorageCorruptException(path, 24, $"the header announces {length} bytes of data but the file holds {bytes.Length - HeaderSize - TrailerSize}.");
        }

        int crcAt = bytes.Length - TrailerSize;
        if (Crc32C.Compute(bytes.AsSpan(0, crcAt)) != BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(crcAt)))
        {
            throw new RaftStorageCorruptException(path, crcAt, "the snapshot's checksum does not match its content.");
        }

        long storedIndex = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8));
        long storedTerm = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16));
        if (storedIndex != index || storedTerm != term)
        {
            throw new RaftStorageCorruptException(path, 8, $"the file holds the snapshot at index {storedIndex}, term {storedTerm}, not the one its name says.");
        }

        return new RaftSnapshot(index, term, bytes.AsMemory(HeaderSize, (int)length));
    }
}
