using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace Gaggle.Storage;

/// <summary>
/// One segment file of the write-ahead log: a 24-byte header, then records (<see cref="WalRecord"/>).
/// Header: magic "GWAL", format version (u16), flags (u16; 1 = base: the segment holds the whole
/// state, so replay starts here and older segments are obsolete), sequence number (u64), zero (u32),
/// CRC-32C of the first 20 bytes (u32). A segment is built under a temporary name and renamed into
/// place, so a segment file always has a complete header.
/// </summary>
internal sealed class WalSegment : IDisposable
{
    /// <summary>The size of a segment's header.</summary>
    public const int HeaderSize = 24;

    private const ushort FormatVersion = 1;
    private const ushort BaseFlag = 1;
    private const string Prefix = "wal-";
    private const string Extension = ".log";

    private SafeFileHandle _handle;

    private WalSegment(string directory, long sequence, string path, SafeFileHandle handle, long length)
    {
        Directory = directory;
        Sequence = sequence;
        Path = path;
        _handle = handle;
        Length = length;
    }

    /// <summary>The directory that holds the segment.</summary>
    public string Directory { get; }

    /// <summary>The segment's sequence number (its position in the log's history).</summary>
    public long Sequence { get; }

    /// <summary>The segment's file (a temporary name until <see cref="Publish"/>).</summary>
    public string Path { get; private set; }

    /// <summary>The segment's length: where the next write goes.</summary>
    public long Length { get; private set; }

    /// <summary>The file name of segment <paramref name="sequence"/>.</summary>
    public static string FileName(long sequence) => $"{Prefix}{sequence.ToString("D20", CultureInfo.InvariantCulture)}{Extension}";

    /// <summary>Parses a segment file name.</summary>
    public static bool TryParseFileName(string fileName, out long sequence)
    {
        sequence = 0;
        return fileName.Length == Prefix.Length + 20 + Extension.Length
            && fileName.StartsWith(Prefix, StringComparison.Ordinal)
            && fileName.EndsWith(Extension, StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(Prefix.Length, 20), NumberStyles.None, CultureInfo.InvariantCulture, out sequence)
            && sequence >= 1;
    }

    /// <summary>
    /// Starts segment <paramref name="sequence"/> under a temporary name with its header written; append its
    /// first records, then <see cref="Publish"/> it.
    /// </summary>
    public static async ValueTask<WalSegment> StartAsync(string directory, long sequence, bool isBase)
    {
        string temporary = System.IO.Path.Combine(directory, FileName(sequence) + ".tmp");
        var handle = File.OpenHandle(temporary, FileMode.Create, FileAccess.ReadWrite, FileShare.Read, FileOptions.Asynchronous);
        var segment = new WalSegment(directory, sequence, temporary, handle, 0);
        try
        {
            var header = new byte[HeaderSize];
            "GWAL"u8.CopyTo(header);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), FormatVersion);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), isBase ? BaseFlag : (ushort)0);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), sequence);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), Crc32C.Compute(header.AsSpan(0, 20)));
            await segment.AppendAsync(header, flush: false).ConfigureAwait(false);
            return segment;
        }
        catch
        {
            segment.Dispose();
            throw;
        }
    }

    /// <summary>Gives a started segment its real name: flush, rename, flush the directory (when <paramref name="flush"/>).</summary>
    public void Publish(bool flush)
    {
        if (flush)
        {
            RandomAccess.FlushToDisk(_handle);
        }

        // Renaming an open file is not portable; close it, rename, reopen.
        _handle.Dispose();
        string path = System.IO.Path.Combine(Directory, FileName(Sequence));
        File.Move(Path, path, overwrite: true);
        if (flush)
        {
            DirectorySync.Flush(Directory);
        }

        Path = path;
        _handle = OpenHandle(path);
    }

    /// <summary>Opens an existing segment to append at <paramref name="length"/>, cutting off anything after it.</summary>
    public static WalSegment OpenForAppend(string directory, long sequence, long length, bool flush)
    {
        string path = System.IO.Path.Combine(directory, FileName(sequence));
        var handle = OpenHandle(path);
        try
        {
            if (RandomAccess.GetLength(handle) != length)
            {
                RandomAccess.SetLength(handle, length);
                if (flush)
                {
                    RandomAccess.FlushToDisk(handle);
                }
            }

            return new WalSegment(directory, sequence, path, handle, length);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Reads and checks a segment's header.</summary>
    /// <returns>Whether the segment is a base segment.</returns>
    /// <exception cref="RaftStorageCorruptException">The header is damaged or names another sequence number.</exception>
    public static bool ReadHeader(SafeFileHandle handle, string path, long sequence)
    {
        Span<byte> header = stackalloc byte[HeaderSize];
        if (RandomAccess.Read(handle, header, 0) < HeaderSize)
        {
            throw new RaftStorageCorruptException(path, 0, $"the file is shorter than a segment header ({HeaderSize} bytes).");
        }

        if (!header[..4].SequenceEqual("GWAL"u8) || Crc32C.Compute(header[..20]) != BinaryPrimitives.ReadUInt32LittleEndian(header[20..]))
        {
            throw new RaftStorageCorruptException(path, 0, "the segment header is damaged (wrong magic number or checksum).");
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        if (version != FormatVersion)
        {
            throw new RaftStorageCorruptException(path, 4, $"the segment's format version is {version}; this version of Gaggle reads version {FormatVersion}.");
        }

        long stored = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        if (stored != sequence)
        {
            throw new RaftStorageCorruptException(path, 8, $"the header holds sequence number {stored} but the file name says {sequence}.");
        }

        return (BinaryPrimitives.ReadUInt16LittleEndian(header[6..]) & BaseFlag) != 0;
    }

    /// <summary>Writes <paramref name="data"/> at the end and, when <paramref name="flush"/>, forces it to the disk.</summary>
    public async ValueTask AppendAsync(ReadOnlyMemory<byte> data, bool flush)
    {
        await RandomAccess.WriteAsync(_handle, data, Length).ConfigureAwait(false);
        Length += data.Length;
        if (flush)
        {
            RandomAccess.FlushToDisk(_handle);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _handle.Dispose();

    private static SafeFileHandle OpenHandle(string path)
        => File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, FileOptions.Asynchronous);
}
