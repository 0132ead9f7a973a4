namespace Gaggle.Storage;

/// <summary>
/// Thrown when a durable storage finds damaged data that it cannot safely discard: a checksum
/// mismatch followed by further valid records, damage in a segment other than the last, or a file
/// the log refers to that is missing or unreadable. Nothing is repaired automatically, because doing
/// so would silently lose acknowledged writes; restore the directory from a backup or replace the
/// node (remove it from the cluster and add it back with empty storage).
/// </summary>
public sealed class RaftStorageCorruptException : IOException
{
    /// <summary>Creates the exception for damage in <paramref name="filePath"/> at <paramref name="offset"/>.</summary>
    /// <param name="filePath">The damaged file.</param>
    /// <param name="offset">The byte offset of the first damaged record or field.</param>
    /// <param name="detail">What is wrong there.</param>
    public RaftStorageCorruptException(string filePath, long offset, string detail)
        : base($"The Raft storage file '{filePath}' is corrupt at byte offset {offset}: {detail}")
    {
        FilePath = filePath;
        Offset = offset;
    }

    /// <summary>Creates the exception for a damaged or incomplete directory (a missing file, for example).</summary>
    /// <param name="filePath">The file or directory concerned.</param>
    /// <param name="detail">What is wrong.</param>
    public RaftStorageCorruptException(string filePath, string detail)
        : base($"The Raft storage at '{filePath}' is damaged: {detail}")
    {
        FilePath = filePath;
    }

    /// <summary>The damaged file (or directory, when a file is missing).</summary>
    public string FilePath { get; }

    /// <summary>The byte offset of the damage in <see cref="FilePath"/>, or null when no offset applies.</summary>
    public long? Offset { get; }
}
