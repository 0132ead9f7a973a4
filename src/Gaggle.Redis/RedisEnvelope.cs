using System.Security.Cryptography;
using Gaggle.Channels;

namespace Gaggle.Redis;

/// <summary>
/// The versioned frame around every payload on Redis: version, flags, cluster, sender, sender
/// incarnation, sequence, payload, and (with a cluster key) an HMAC-SHA256 over all of it.
/// </summary>
internal readonly record struct RedisEnvelope(string Cluster, string Sender, ulong Incarnation, ulong Sequence, ReadOnlyMemory<byte> Payload)
{
    public const byte Version = 1;
    private const byte FlagSigned = 1;
    private const int MacBytes = 32;

    public byte[] Encode(byte[]? key)
    {
        var writer = new WireWriter(Payload.Length + Cluster.Length + Sender.Length + 64);
        writer.Byte(Version);
        writer.Byte(key is null ? (byte)0 : FlagSigned);
        writer.String(Cluster);
        writer.String(Sender);
        writer.VarUInt(Incarnation);
        writer.VarUInt(Sequence);
        writer.Bytes(Payload.Span);
        var body = writer.ToArray();
        if (key is null)
        {
            return body;
        }

        var signed = new byte[body.Length + MacBytes];
        body.CopyTo(signed, 0);
        HMACSHA256.HashData(key, body, signed.AsSpan(body.Length));
        return signed;
    }

    /// <summary>Decodes and authenticates; the failure reason is returned instead of thrown.</summary>
    public static DropReason? TryDecode(ReadOnlyMemory<byte> data, byte[]? key, out RedisEnvelope envelope)
    {
        envelope = default;
        try
        {
            var reader = new WireReader(data);
            if (reader.Byte() != Version)
            {
                return DropReason.Malformed;
            }

            bool signed = (reader.Byte() & FlagSigned) != 0;
            if (key is not null && !signed)
            {
                return DropReason.Unsigned;
            }

            var bodyLength = data.Length - (signed ? MacBytes : 0);
            if (bodyLength < 2)
            {
                return DropReason.Malformed;
            }

            if (signed && key is not null)
            {
                Span<byte> expected = stackalloc byte[MacBytes];
                HMACSHA256.HashData(key, data.Span[..bodyLength], expected);
                if (!CryptographicOperations.FixedTimeEquals(expected, data.Span[bodyLength..]))
                {
                    return DropReason.BadSignature;
                }
            }

            reader = new WireReader(data[..bodyLength]);
            reader.Byte();
            reader.Byte();
            envelope = new RedisEnvelope(reader.String(), reader.String(), reader.VarUInt(), reader.VarUInt(), reader.Bytes());
            reader.End();
            return null;
        }
        catch (FormatException)
        {
            return DropReason.Malformed;
        }
    }
}

/// <summary>Why an inbound envelope was dropped.</summary>
public enum DropReason
{
    /// <summary>Not a valid envelope of a known version.</summary>
    Malformed,

    /// <summary>Larger than <see cref="RedisPubSubChannelOptions.MaxEnvelopeBytes"/>.</summary>
    Oversized,

    /// <summary>Sent by a node of another cluster.</summary>
    OtherCluster,

    /// <summary>The sender is not in <see cref="RedisPubSubChannelOptions.Members"/>.</summary>
    NonMember,

    /// <summary>Already received (same sender incarnation and sequence).</summary>
    Duplicate,

    /// <summary>From an older incarnation of a sender that has since restarted.</summary>
    StaleIncarnation,

    /// <summary>A cluster key is set and the envelope is not signed.</summary>
    Unsigned,

    /// <summary>The signature does not match the content: forged or corrupted.</summary>
    BadSignature,
}
