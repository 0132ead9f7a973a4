using System.Buffers.Binary;
using System.Text;

namespace Gaggle.Storage;

/// <summary>
/// The <c>identity</c> file: which node a storage directory belongs to. Written once, atomically, as
/// the last step of creating a directory's state, so its presence means "this directory was
/// initialized". Layout (little-endian): magic "GGID", format version (u32), node id length (u16),
/// node id (UTF-8), CRC-32C of everything before it (u32).
/// </summary>
internal static class IdentityFile
{
    /// <summary>The identity file's name.</summary>
    public const string FileName = "identity";

    private const uint FormatVersion = 1;

    /// <summary>Reads the node id recorded in <paramref name="directory"/>, or null when there is no identity file.</summary>
    /// <exception cref="RaftStorageCorruptException">The identity file is damaged.</exception>
    public static async ValueTask<string?> ReadAsync(string directory, CancellationToken cancellationToken)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        byte[] bytes = await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
        if (bytes.Length < 14 || !bytes.AsSpan(0, 4).SequenceEqual("GGID"u8))
        {
            throw new RaftStorageCorruptException(path, 0, "the file is not a Gaggle identity file (too short or wrong magic number).");
        }

        int idLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        int crcAt = 10 + idLength;
        if (bytes.Length != crcAt + 4 || Crc32C.Compute(bytes.AsSpan(0, crcAt)) != BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(crcAt)))
        {
            throw new RaftStorageCorruptException(path, 0, "the identity file is damaged (its length or checksum is wrong).");
        }

        uint version = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4));
        if (version != FormatVersion)
        {
            throw new RaftStorageCorruptException(path, 4, $"the identity file's format version is {version}; this version of Gaggle reads version {FormatVersion}.");
        }

        return Encoding.UTF8.GetString(bytes, 10, idLength);
    }

    /// <summary>Records <paramref name="nodeId"/> as the owner of <paramref name="directory"/> (temporary file, flush, rename).</summary>
    public static async ValueTask WriteAsync(string directory, string nodeId, bool flush, CancellationToken cancellationToken)
    {
        byte[] id = Encoding.UTF8.GetBytes(nodeId);
        var bytes = new byte[10 + id.Length + 4];
        "GGID"u8.CopyTo(bytes);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), checked((ushort)id.Length));
        id.CopyTo(bytes, 10);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(10 + id.Length), Crc32C.Compute(bytes.AsSpan(0, 10 + id.Length)));

        string path = Path.Combine(directory, FileName);
        string temporary = path + ".tmp";
        var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.Asynchronous);
        await using (stream.ConfigureAwait(false))
        {
            await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            stream.Flush(flushToDisk: flush);
        }

        File.Move(temporary, path, overwrite: true);
        if (flush)
        {
            DirectorySync.Flush(directory);
        }
    }
}
