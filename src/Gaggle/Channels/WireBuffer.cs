using System.Buffers;
using System.Text;

namespace Gaggle.Channels;

/// <summary>Unsigned LEB128 varints: 7 bits a byte, least significant first, high bit set on all but the last.</summary>
internal static class VarInt
{
    public const int MaxBytes = 10;

    /// <summary>How many bytes <paramref name="value"/> takes.</summary>
    public static int Size(ulong value)
    {
        int size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }

        return size;
    }

    /// <summary>Writes <paramref name="value"/> at the start of <paramref name="span"/>; returns the bytes written.</summary>
    public static int Write(Span<byte> span, ulong value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            span[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[i++] = (byte)value;
        return i;
    }
}

/// <summary>Appends the primitives of the wire format: unsigned LEB128 varints, length-prefixed bytes and UTF-8 strings.</summary>
internal sealed class WireWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;

    public WireWriter(int initialCapacity = 256)
    {
        _buffer = new ArrayBufferWriter<byte>(initialCapacity);
    }

    public void Byte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    public void VarUInt(ulong value) => _buffer.Advance(VarInt.Write(_buffer.GetSpan(VarInt.MaxBytes), value));

    public void VarLong(long value)
    {
        if (value < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, "Wire integers must not be negative.");
        }

        VarUInt((ulong)value);
    }

    public void Bytes(ReadOnlySpan<byte> value)
    {
        VarUInt((ulong)value.Length);
        _buffer.Write(value);
    }

    public void Raw(ReadOnlySpan<byte> value) => _buffer.Write(value);

    public void String(string value) => Bytes(Encoding.UTF8.GetBytes(value));

    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();
}

/// <summary>Reads what <see cref="WireWriter"/> wrote; any inconsistency throws <see cref="FormatException"/>.</summary>
internal struct WireReader
{
    /// <summary>Strict UTF-8: invalid bytes throw instead of becoming replacement characters.</summary>
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    private readonly ReadOnlyMemory<byte> _data;
    private int _position;

    public WireReader(ReadOnlyMemory<byte> data)
    {
        _data = data;
        _position = 0;
    }

    public readonly int Remaining => _data.Length - _position;

    public byte Byte()
    {
        if (_position >= _data.Length)
        {
            throw new FormatException($"Message truncated at byte {_position}.");
        }

        return _data.Span[_position++];
    }

    public ulong VarUInt()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = Byte();
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return result;
            }
        }

        throw new FormatException($"Varint longer than 10 bytes at byte {_position}.");
    }

    public long VarLong()
    {
        ulong value = VarUInt();
        if (value > long.MaxValue)
        {
            throw new FormatException($"Integer {value} at byte {_position} is out of range.");
        }

        return (long)value;
    }

    public int Length()
    {
        ulong length = VarUInt();
        if (length > (ulong)Remaining)
        {
            throw new FormatException($"Length {length} at byte {_position} exceeds the {Remaining} bytes left.");
        }

        return (int)length;
    }

    public ReadOnlyMemory<byte> Bytes()
    {
        int length = Length();
        var slice = _data.Slice(_position, length);
        _position += length;
        return slice;
    }

    public string String()
    {
        int length = Length();
        try
        {
            var value = StrictUtf8.GetString(_data.Span.Slice(_position, length));
            _position += length;
            return value;
        }
        catch (DecoderFallbackException e)
        {
            throw new FormatException($"Invalid UTF-8 string at byte {_position}.", e);
        }
    }

    public ReadOnlyMemory<byte> Rest()
    {
        var rest = _data[_position..];
        _position = _data.Length;
        return rest;
    }

    public readonly void End()
    {
        if (Remaining != 0)
        {
            throw new FormatException($"{Remaining} unexpected trailing bytes.");
        }
    }
}
