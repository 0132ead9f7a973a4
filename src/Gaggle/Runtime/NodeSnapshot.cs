using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>
/// The content of a node's snapshot: the duplicate-append table, then the node's own state machines
/// (the lock table) and the application's, each by name in its own section so their names never
/// collide. Versioned like the wire format.
/// </summary>
/// <remarks>
/// Version 2 holds any number of the node's own parts by name. While the lock table is the only one,
/// snapshots are written in version 1 (the lock table's bytes in a fixed place), which nodes of earlier
/// releases read: during a rolling upgrade a leader of this release may send its snapshot to a
/// follower of the previous one, which would otherwise fail to install it and stop. Both are read.
/// </remarks>
internal static class NodeSnapshot
{
    private const byte FormatVersion = 2;
    private const byte LockTableInFixedPlace = 1;

    public static byte[] Write(ProposalDeduplicator deduplicator, IEnumerable<(string Name, ISnapshotPart Part)> nodeParts, IEnumerable<(string Name, ISnapshotPart Part)> applicationParts)
    {
        var own = nodeParts.ToList();
        var writer = new WireWriter();
        bool lockTableOnly = own.Count == 1 && own[0].Name == Locks.LockStateMachine.SnapshotName;
        writer.Byte(lockTableOnly ? LockTableInFixedPlace : FormatVersion);
        deduplicator.Write(writer);
        if (lockTableOnly)
        {
            using var stream = new MemoryStream();
            own[0].Part.WriteSnapshot(stream);
            writer.Bytes(stream.GetBuffer().AsSpan(0, (int)stream.Length));
        }
        else
        {
            WriteSection(writer, own);
        }

        WriteSection(writer, applicationParts);
        return writer.ToArray();
    }

    /// <summary>Writes in version 2 whatever the parts (for tests of the reader).</summary>
    internal static byte[] WriteVersion2(ProposalDeduplicator deduplicator, IEnumerable<(string Name, ISnapshotPart Part)> nodeParts, IEnumerable<(string Name, ISnapshotPart Part)> applicationParts)
    {
        var writer = new WireWriter();
        writer.Byte(FormatVersion);
        deduplicator.Write(writer);
        WriteSection(writer, nodeParts);
        WriteSection(writer, applicationParts);
        return writer.ToArray();
    }

    /// <summary>
    /// Restores everything from <paramref name="data"/>; a part this node does not know is skipped.
    /// Throws <see cref="FormatException"/> when the bytes are not a snapshot of a known format.
    /// </summary>
    public static void Read(ReadOnlyMemory<byte> data, ProposalDeduplicator deduplicator, IEnumerable<(string Name, ISnapshotPart Part)> nodeParts, IEnumerable<(string Name, ISnapshotPart Part)> applicationParts)
    {
        var reader = new WireReader(data);
        byte version = reader.Byte();
        if (version is not (FormatVersion or LockTableInFixedPlace))
        {
            throw new FormatException($"Unsupported snapshot format version {version}; this node reads versions {LockTableInFixedPlace} and {FormatVersion}.");
        }

        deduplicator.Read(ref reader);
        var nodeByName = ByName(nodeParts);
        if (version == LockTableInFixedPlace)
        {
            ReadPart(nodeByName, Locks.LockStateMachine.SnapshotName, reader.Bytes());
        }
        else
        {
            ReadSection(ref reader, nodeByName);
        }

        ReadSection(ref reader, ByName(applicationParts));
        reader.End();
    }

    private static void WriteSection(WireWriter writer, IEnumerable<(string Name, ISnapshotPart Part)> parts)
    {
        var named = parts.ToList();
        writer.VarUInt((ulong)named.Count);
        foreach (var (name, part) in named)
        {
            using var stream = new MemoryStream();
            part.WriteSnapshot(stream);
            writer.String(name);
            writer.Bytes(stream.GetBuffer().AsSpan(0, (int)stream.Length));
        }
    }

    private static void ReadSection(ref WireReader reader, Dictionary<string, ISnapshotPart> parts)
    {
        ulong count = reader.VarUInt();
        for (ulong i = 0; i < count; i++)
        {
            string name = reader.String();
            ReadPart(parts, name, reader.Bytes());
        }
    }

    private static Dictionary<string, ISnapshotPart> ByName(IEnumerable<(string Name, ISnapshotPart Part)> parts)
        => parts.ToDictionary(p => p.Name, p => p.Part, StringComparer.Ordinal);

    private static void ReadPart(Dictionary<string, ISnapshotPart> parts, string name, ReadOnlyMemory<byte> bytes)
    {
        if (parts.TryGetValue(name, out var part))
        {
            using var stream = new MemoryStream(bytes.ToArray(), writable: false);
            part.ReadSnapshot(stream);
        }
    }
}
