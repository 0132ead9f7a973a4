using System.Buffers.Binary;
using System.Numerics;

namespace Gaggle.Storage;

/// <summary>
/// CRC-32C (Castagnoli), as used by iSCSI, ext4 and most write-ahead logs. <see cref="BitOperations.Crc32C(uint, ulong)"/>
/// uses the CPU's crc32 instruction where there is one (SSE4.2, ARMv8) and a table otherwise.
/// </summary>
internal static class Crc32C
{
    /// <summary>The state to start a checksum from.</summary>
    public const uint Initial = 0xFFFFFFFF;

    /// <summary>The checksum of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Initial, data));

    /// <summary>The checksum whose running state is <paramref name="state"/>.</summary>
    public static uint Finish(uint state) => ~state;

    /// <summary>Continues a running checksum over <paramref name="data"/>.</summary>
    public static uint Append(uint state, ReadOnlySpan<byte> data)
    {
        while (data.Length >= sizeof(ulong))
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[sizeof(ulong)..];
        }

        foreach (byte b in data)
        {
            state = BitOperations.Crc32C(state, b);
        }

        return state;
    }
}
