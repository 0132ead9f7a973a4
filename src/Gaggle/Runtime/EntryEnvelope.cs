using System.Buffers.Binary;
using System.Text;
using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>What an application entry carries.</summary>
internal enum EntryPayloadKind : byte
{
    /// <summary>Data appended by the application.</summary>
    User = 0,

    /// <summary>A command of the replicated lock table.</summary>
    Lock = 1,
}

/// <summary>
/// The header in front of every application entry's data: its kind, the leader's timestamp, which
/// node appended it (id and incarnation) and its sequence number there. The id lets the origin
/// recognise its entry when it commits, and every replica drop a duplicate of a retried append
/// deterministically. The timestamp (milliseconds on the cluster's lease clock) is written by the
/// leader when it proposes the entry, at a fixed offset, so state machines never read a clock.
/// </summary>
internal readonly record struct EntryEnvelope(EntryPayloadKind Kind, long Stamp, string Origin, ulong Incarnation, long Sequence, ReadOnlyMemory<byte> Payload)
{
    private const byte FormatVersion = 2;
    private const int StampOffset = 2;

    /// <summary>The envelope's bytes, in one array of exactly the encoded size.</summary>
    public byte[] Encode()
    {
        int originBytes = Encoding.UTF8.GetByteCount(Origin);
        int size = StampOffset + 8 + VarInt.Size((ulong)originBytes) + originBytes + VarInt.Size(Incarnation) + VarInt.Size((ulong)Sequence) + Payload.Length;
        var bytes = new byte[size];
        bytes[0] = FormatVersion;
        bytes[1] = (byte)Kind;
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(StampOffset, 8), Stamp);
        int at = StampOffset + 8;
        at += VarInt.Write(bytes.AsSpan(at), (ulong)originBytes);
        at += Encoding.UTF8.GetBytes(Origin, bytes.AsSpan(at));
        at += VarInt.Write(bytes.AsSpan(at), Incarnation);
        at += VarInt.Write(bytes.AsSpan(at), checked((ulong)Sequence));
        Payload.Span.CopyTo(bytes.AsSpan(at));
        return bytes;
    }

    /// <summary>A copy of an encoded envelope with the leader's timestamp written in.</summary>
    public static byte[] WithStamp(ReadOnlyMemory<byte> encoded, long stamp)
    {
        var copy = encoded.ToArray();
        BinaryPrimitives.WriteInt64LittleEndian(copy.AsSpan(StampOffset, 8), stamp);
        return copy;
    }

    public static bool TryDecode(ReadOnlyMemory<byte> data, out EntryEnvelope envelope)
    {
        envelope = default;
        try
        {
            var reader = new WireReader(data);
            if (reader.Byte() != FormatVersion || data.Length < StampOffset + 8)
            {
                return false;
            }

            byte kind = reader.Byte();
            if (kind > (byte)EntryPayloadKind.Lock)
            {
                return false;
            }

            long stamp = BinaryPrimitives.ReadInt64LittleEndian(data.Span.Slice(StampOffset, 8));
            for (int i = 0; i < 8; i++)
            {
                reader.Byte();
            }

            envelope = new EntryEnvelope((EntryPayloadKind)kind, stamp, reader.String(), reader.VarUInt(), reader.VarLong(), reader.Rest());
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
