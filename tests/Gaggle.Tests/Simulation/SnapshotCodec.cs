using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The simulated state machine's snapshot format: its whole applied sequence (term, kind and payload
/// of each entry, in index order from 1), so that State Machine Safety can be checked on what a
/// snapshot carries, entry by entry.
/// </summary>
internal static class SnapshotCodec
{
    public static byte[] Encode(IReadOnlyList<LogEntry> applied)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write7BitEncodedInt(applied.Count);
            for (int i = 0; i < applied.Count; i++)
            {
                var entry = applied[i];
                if (entry.Index != i + 1)
                {
                    throw new SafetyViolationException($"the state machine holds index {entry.Index} at position {i + 1}");
                }

                writer.Write7BitEncodedInt64(entry.Term);
                writer.Write((byte)entry.Kind);
                writer.Write7BitEncodedInt(entry.Data.Length);
                writer.Write(entry.Data.Span);
            }
        }

        return stream.ToArray();
    }

    /// <summary>Reads the applied sequence back; throws <see cref="SafetyViolationException"/> when the bytes are not a whole snapshot.</summary>
    public static List<LogEntry> Decode(RaftSnapshot snapshot)
    {
        try
        {
            using var reader = new BinaryReader(new MemoryStream(snapshot.Data.ToArray()));
            int count = reader.Read7BitEncodedInt();
            var applied = new List<LogEntry>(Math.Clamp(count, 0, snapshot.Data.Length));
            for (int i = 1; i <= count; i++)
            {
                long term = reader.Read7BitEncodedInt64();
                var kind = (EntryKind)reader.ReadByte();
                int length = reader.Read7BitEncodedInt();
                byte[] data = reader.ReadBytes(length);
                if (data.Length != length)
                {
                    throw new EndOfStreamException();
                }

                applied.Add(new LogEntry(i, term, kind, data));
            }

            if (reader.BaseStream.Position != reader.BaseStream.Length)
            {
                throw new SafetyViolationException($"snapshot {snapshot.Index}/t{snapshot.Term} has {reader.BaseStream.Length - reader.BaseStream.Position} bytes after its content");
            }

            long lastTerm = applied.Count == 0 ? 0 : applied[^1].Term;
            if (applied.Count != snapshot.Index || lastTerm != snapshot.Term)
            {
                throw new SafetyViolationException(
                    $"snapshot {snapshot.Index}/t{snapshot.Term} carries a state machine that applied up to {applied.Count}/t{lastTerm}");
            }

            return applied;
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException or ArgumentOutOfRangeException)
        {
            throw new SafetyViolationException($"snapshot {snapshot.Index}/t{snapshot.Term} is cut short ({snapshot.Data.Length} bytes): its chunks were not reassembled whole");
        }
    }
}
