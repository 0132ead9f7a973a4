using Gaggle.Channels;
using Gaggle.Locks;

namespace Gaggle.Runtime;

/// <summary>
/// The content of a node's snapshot: the duplicate-append table and each registered state
/// machine's own snapshot, by name. Versioned like the wire format.
/// </summary>
internal static class NodeSnapshot
{
    private const byte FormatVersion = 1;

    public static byte[] Write(ProposalDeduplicator deduplicator, LockTable locks, IDictionary<string, IGaggleStateMachine> machines)
    {
        var writer = new WireWriter();
        writer.Byte(FormatVersion);
        deduplicator.Write(writer);
        using (var lockStream = new MemoryStream())
        {
            locks.Write(lockStream);
            writer.Bytes(lockStream.GetBuffer().AsSpan(0, (int)lockStream.Length));
        }

        writer.VarUInt((ulong)machines.Count);
        foreach (var (name, machine) in machines.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            using var stream = new MemoryStream();
            machine.WriteSnapshot(stream);
            writer.String(name);
            writer.Bytes(stream.GetBuffer().AsSpan(0, (int)stream.Length));
        }

        return writer.ToArray();
    }

    /// <summary>Restores everything from <paramref name="data"/>; throws <see cref="FormatException"/> when it is not a snapshot of this format.</summary>
    public static void Read(ReadOnlyMemory<byte> data, ProposalDeduplicator deduplicator, LockTable locks, IDictionary<string, IGaggleStateMachine> machines)
    {
        var reader = new WireReader(data);
        byte version = reader.Byte();
        if (version != FormatVersion)
        {
            throw new FormatException($"Unsupported snapshot format version {version}; this node reads version {FormatVersion}.");
        }

        deduplicator.Read(ref reader);
        using (var lockStream = new MemoryStream(reader.Bytes().ToArray(), writable: false))
        {
            locks.Read(lockStream);
        }

        ulong count = reader.VarUInt();
        for (ulong i = 0; i < count; i++)
        {
            string name = reader.String();
            var bytes = reader.Bytes();
            if (machines.TryGetValue(name, out var machine))
            {
                using var stream = new MemoryStream(bytes.ToArray(), writable: false);
                machine.ReadSnapshot(stream);
            }
        }

        reader.End();
    }
}
