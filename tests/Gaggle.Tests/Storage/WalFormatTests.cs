using System.Buffers.Binary;
using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;

namespace Gaggle.Tests.Storage;

/// <summary>The on-disk record format, byte by byte: changing it breaks every existing directory.</summary>
[TestFixture]
public sealed class WalFormatTests
{
    [Test]
    public void TheChecksumIsCrc32C()
    {
        // The standard check value of CRC-32C (Castagnoli) for "123456789".
        Assert.That(Crc32C.Compute("123456789"u8), Is.EqualTo(0xE3069283u));
        Assert.That(Crc32C.Compute([]), Is.EqualTo(0u));
    }

    [Test]
    public void AWriteIsEntriesThenHardStateWithTheLastRecordFlagged()
    {
        var writer = new WalBatchWriter();
        writer.Begin(7);
        writer.AddEntry(new LogEntry(5, 2, EntryKind.Normal, new byte[] { 0xAA, 0xBB }));
        writer.AddEntry(new LogEntry(6, 2, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty));
        writer.AddHardState(new HardState(2, "b", 4));
        byte[] bytes = writer.Finish().ToArray();

        // Entries record: header, first index 5, count 2, then (term, kind, length, data) per entry.
        int entriesPayload = 12 + (13 + 2) + 13;
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes), Is.EqualTo((uint)entriesPayload));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(8)), Is.EqualTo(7UL), "write number");
        Assert.That(bytes[16], Is.EqualTo((byte)WalRecordType.Entries), "type, not the last record of the write");
        Assert.That(Convert.ToHexString(bytes, 17, entriesPayload), Is.EqualTo(
            "0500000000000000" + "02000000" +
            "0200000000000000" + "00" + "02000000" + "AABB" +
            "0200000000000000" + "01" + "00000000"));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)), Is.EqualTo(ExpectedChecksum(bytes.AsSpan(0, 17 + entriesPayload))));

        // Hard state record: term 2, commit 4, vote length 1, "b", flags (1 = rejoining); the type byte carries the end-of-write flag.
        var hard = bytes.AsSpan(17 + entriesPayload);
        Assert.That(hard.Length, Is.EqualTo(17 + 22));
        Assert.That(hard[16], Is.EqualTo((byte)(0x80 | (byte)WalRecordType.HardState)));
        Assert.That(Convert.ToHexString(hard[17..]), Is.EqualTo("0200000000000000" + "0400000000000000" + "01000000" + "62" + "00"));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(hard[4..]), Is.EqualTo(ExpectedChecksum(hard)));
    }

    [Test]
    public void ManyEntriesAreCutIntoRecordsOfAboutOneMebibyte()
    {
        var writer = new WalBatchWriter();
        writer.Begin(1);
        for (int i = 1; i <= 300; i++)
        {
            writer.AddEntry(new LogEntry(i, 1, EntryKind.Normal, new byte[10_000]));
        }

        var bytes = writer.Finish().ToArray().AsMemory();
        var records = new List<(long First, int Count, bool Last)>();
        while (bytes.Length > 0)
        {
            Assert.That(WalRecordHeader.TryParse(bytes.Span, out var header), Is.True);
            Assert.That(header.PayloadLength, Is.LessThanOrEqualTo(WalBatchWriter.TargetEntriesPayloadBytes));
            var entries = WalRecord.ReadEntries(bytes.Slice(17, header.PayloadLength));
            records.Add((entries[0].Entry.Index, entries.Length, header.EndsWrite));
            bytes = bytes[(17 + header.PayloadLength)..];
        }

        Assert.That(records, Has.Count.EqualTo(3));
        Assert.That(records.Sum(r => r.Count), Is.EqualTo(300));
        Assert.That(records.Select(r => r.Last), Is.EqualTo(new[] { false, false, true }));
        Assert.That(records[1].First, Is.EqualTo(1 + records[0].Count), "each record continues where the previous one stopped");
    }

    /// <summary>CRC-32C over the length field and everything from the write number on (the checksum field itself excluded).</summary>
    private static uint ExpectedChecksum(ReadOnlySpan<byte> record)
    {
        var covered = new byte[record.Length - 4];
        record[..4].CopyTo(covered);
        record[8..].CopyTo(covered.AsSpan(4));
        return Crc32C.Compute(covered);
    }
}
