using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>
/// The header in front of every application entry's data: which node appended it (id and
/// incarnation) and its sequence number there. It lets the origin recognise its entry when it
/// commits, and every replica drop a duplicate of a retried append deterministically.
/// </summary>
internal readonly record struct EntryEnvelope(string Origin, ulong Incarnation, long Sequence, ReadOnlyMemory<byte> Payload)
{
    private const byte FormatVersion = 1;

    public byte[] Encode()
    {
        var writer = new WireWriter(Payload.Length + Origin.Length + 24);
        writer.Byte(FormatVersion);
        writer.String(Origin);
        writer.VarUInt(Incarnation);
        writer.VarLong(Sequence);
        writer.Raw(Payload.Span);
        return writer.ToArray();
    }

    public static bool TryDecode(ReadOnlyMemory<byte> data, out EntryEnvelope envelope)
    {
        envelope = default;
        try
        {
            var reader = new WireReader(data);
            if (reader.Byte() != FormatVersion)
            {
                return false;
            }

            envelope = new EntryEnvelope(reader.String(), reader.VarUInt(), reader.VarLong(), reader.Rest());
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
