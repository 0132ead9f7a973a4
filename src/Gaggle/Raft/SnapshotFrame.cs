using Gaggle.Channels;

namespace Gaggle.Raft;

/// <summary>
/// The Raft core's part of a snapshot's bytes: the cluster configuration as of the snapshot's last
/// included index (Raft thesis §7: a snapshot carries the latest configuration it covers, never a
/// later, uncommitted one), in front of the state machines' bytes. Storage and the wire carry the
/// whole as opaque bytes, so the configuration can never be lost on the way.
/// </summary>
/// <remarks>
/// Layout: the four bytes "GRCF", a version byte, the configuration entry's index (varint), the
/// configuration (as a configuration entry encodes it, length-prefixed), then the state machines'
/// bytes. Bytes without the marker are a snapshot written before configurations were logged (or
/// while none was): all of them are the state machines' and the configuration is the seed one.
/// </remarks>
internal static class SnapshotFrame
{
    private static ReadOnlySpan<byte> Marker => "GRCF"u8;

    private const byte FormatVersion = 1;

    /// <summary>Frames <paramref name="machines"/> with <paramref name="config"/> (logged at <paramref name="configIndex"/>); without a configuration the bytes are returned as they are.</summary>
    public static byte[] Wrap(ClusterConfig? config, long configIndex, ReadOnlySpan<byte> machines)
    {
        if (config is null)
        {
            return machines.ToArray();
        }

        var writer = new WireWriter(machines.Length + 64);
        writer.Raw(Marker);
        writer.Byte(FormatVersion);
        writer.VarLong(configIndex);
        writer.Bytes(config.Encode());
        writer.Raw(machines);
        return writer.ToArray();
    }

    /// <summary>
    /// Splits a snapshot's bytes. Throws <see cref="FormatException"/> when they carry the marker but
    /// the configuration is malformed.
    /// </summary>
    public static (ClusterConfig? Config, long ConfigIndex, ReadOnlyMemory<byte> Machines) Unwrap(ReadOnlyMemory<byte> data)
    {
        if (!data.Span.StartsWith(Marker))
        {
            return (null, 0, data);
        }

        var reader = new WireReader(data[Marker.Length..]);
        byte version = reader.Byte();
        if (version != FormatVersion)
        {
            throw new FormatException($"The snapshot's configuration frame has version {version}; this release reads version {FormatVersion}.");
        }

        long index = reader.VarLong();
        if (index < 0 || !ClusterConfig.TryDecode(reader.Bytes(), out var config))
        {
            throw new FormatException($"The snapshot's configuration (logged at index {index}) is malformed.");
        }

        return (config, index, reader.Rest());
    }

    /// <summary>The state machines' bytes of a snapshot.</summary>
    public static ReadOnlyMemory<byte> Machines(ReadOnlyMemory<byte> data) => Unwrap(data).Machines;
}
