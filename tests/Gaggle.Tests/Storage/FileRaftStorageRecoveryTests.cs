using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;
using static Gaggle.Tests.Storage.StorageTestSupport;

namespace Gaggle.Tests.Storage;

/// <summary>
/// Crashes and damage: an interrupted last write is cut off (no call acknowledged it); damage to
/// acknowledged data is reported with the file and offset, never silently repaired.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class FileRaftStorageRecoveryTests
{
    private const int RecordHeader = 17;

    [TestCase(false, TestName = "A crash at every byte of the last write (one record) leaves the state before it")]
    [TestCase(true, TestName = "A crash at every byte of the last write (entries and hard state) leaves the state before it")]
    public async Task CrashAtEveryByteOfTheLastWrite(bool withHardState)
    {
        using var directory = new TempDirectory();
        PersistedState before, after;
        long start, end;
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(new HardState(1, "a", 0), Entries(1, 1, 3));
            await storage.SaveAsync(new HardState(2, "b", 2), Entries(4, 2, 2));
            before = await storage.LoadAsync();
            start = new FileInfo(OnlySegment(directory)).Length;
            await storage.SaveAsync(withHardState ? new HardState(3, "c", 5) : null, Entries(6, 3, 2, "last"));
            after = await storage.LoadAsync();
            end = new FileInfo(OnlySegment(directory)).Length;
        }

        Assert.That(Describe(after), Is.Not.EqualTo(Describe(before)));
        string segmentName = Path.GetFileName(OnlySegment(directory));
        byte[] full = await File.ReadAllBytesAsync(OnlySegment(directory));
        for (long length = start; length <= end; length++)
        {
            using var copy = directory.Copy();
            string segment = copy.File(segmentName);
            await File.WriteAllBytesAsync(segment, full[..(int)length]);
            bool complete = length == end;
            using (var storage = await Open(copy.Path))
            {
                var state = await storage.LoadAsync();
                Assert.That(Describe(state), Is.EqualTo(Describe(complete ? after : before)), $"the file cut to {length} bytes ({start} to {end} is the last write)");
                Assert.That(new FileInfo(segment).Length, Is.EqualTo(complete ? end : start), "the interrupted write is cut off the file");
                await storage.SaveAsync(new HardState(9, null, 0), [Entry(6, 9, "again")]);
            }

            using (var reopened = await Open(copy.Path))
            {
                var state = await reopened.LoadAsync();
                Assert.That(state.Entries[^1], Has.Property(nameof(LogEntry.Index)).EqualTo(6).And.Property(nameof(LogEntry.Term)).EqualTo(9), $"writing after the cut at {length} works");
                Assert.That(state.HardState.Term, Is.EqualTo(9));
            }
        }
    }

    [TestCase(1, false)]
    [TestCase(16, false)]
    [TestCase(4096, false)]
    [TestCase(100, true)]
    public async Task JunkAfterTheLastCompleteWriteIsCutOff(int bytes, bool random)
    {
        using var directory = new TempDirectory();
        long end;
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(new HardState(1, "a", 0), Entries(1, 1, 3));
            end = new FileInfo(OnlySegment(directory)).Length;
        }

        var junk = new byte[bytes];
        if (random)
        {
            new Random(7).NextBytes(junk);
        }

        await using (var stream = new FileStream(OnlySegment(directory), FileMode.Append))
        {
            await stream.WriteAsync(junk);
        }

        using var reopened = await Open(directory.Path);
        Assert.That((await reopened.LoadAsync()).Entries, Has.Count.EqualTo(3));
        Assert.That(new FileInfo(OnlySegment(directory)).Length, Is.EqualTo(end));
    }

    [Test]
    public async Task ALastWriteWithAHoleBeforeAnIntactRecordIsStillAnInterruptedWrite()
    {
        // The disk may persist a write's pages in any order: the hard state record made it, the entries before it did not.
        using var directory = new TempDirectory();
        PersistedState before;
        long start;
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(new HardState(1, "a", 0), Entries(1, 1, 3));
            before = await storage.LoadAsync();
            start = new FileInfo(OnlySegment(directory)).Length;
            await storage.SaveAsync(new HardState(2, "b", 5), Entries(4, 2, 2));
        }

        byte[] bytes = await File.ReadAllBytesAsync(OnlySegment(directory));
        int entriesRecord = RecordHeader + 12 + (2 * (13 + 2));
        Array.Clear(bytes, (int)start, entriesRecord);
        await File.WriteAllBytesAsync(OnlySegment(directory), bytes);

        using var reopened = await Open(directory.Path);
        Assert.That(Describe(await reopened.LoadAsync()), Is.EqualTo(Describe(before)), "the write is all or nothing: the intact hard state is not applied alone");
        Assert.That(new FileInfo(OnlySegment(directory)).Length, Is.EqualTo(start));
    }

    [TestCase(0, 0, TestName = "A flipped bit in a record's length is reported with the file and offset")]
    [TestCase(3, 7, TestName = "A flipped bit making a record's length run past the end is reported with the file and offset")]
    [TestCase(5, 2, TestName = "A flipped bit in a record's checksum is reported with the file and offset")]
    [TestCase(9, 0, TestName = "A flipped bit in a record's write number is reported with the file and offset")]
    [TestCase(16, 6, TestName = "A flipped bit in a record's type is reported with the file and offset")]
    [TestCase(40, 3, TestName = "A flipped bit in a record's payload is reported with the file and offset")]
    public async Task AFlippedBitInTheMiddleOfTheLastSegment(int byteInRecord, int bit)
    {
        using var directory = new TempDirectory();
        var writeStarts = new List<long>();
        using (var storage = await Open(directory.Path))
        {
            for (int i = 0; i < 10; i++)
            {
                writeStarts.Add(new FileInfo(OnlySegment(directory)).Length);
                await storage.SaveAsync(null, Entries(1 + (3 * i), 1, 3, "payload"));
            }
        }

        string segment = OnlySegment(directory);
        long length = new FileInfo(segment).Length;
        long damaged = writeStarts[5];
        FlipBit(segment, damaged + byteInRecord, bit);

        var error = await Assert.ThrowsAsync<RaftStorageCorruptException>(async () => await Open(directory.Path));
        Assert.That(error!.Message, Does.Contain(Path.GetFileName(segment)).And.Contain($"byte offset {damaged}"));
        Assert.That(error.FilePath, Is.EqualTo(segment));
        Assert.That(error.Offset, Is.EqualTo(damaged));
        TestContext.Out.WriteLine(error.Message);
        Assert.That(new FileInfo(segment).Length, Is.EqualTo(length), "nothing was cut off");
    }

    [Test]
    public async Task DamageAtTheEndOfAnOlderSegmentIsReported()
    {
        using var directory = new TempDirectory();
        await FillSegments(directory, 3);
        string first = directory.File(directory.FileNames("wal-*.log")[0]);
        long length = new FileInfo(first).Length;
        await using (var stream = new FileStream(first, FileMode.Open))
        {
            stream.SetLength(length - 1);
        }

        var error = await Assert.ThrowsAsync<RaftStorageCorruptException>(async () => await Open(directory.Path, segmentBytes: FileRaftStorageOptions.MinSegmentBytes));
        Assert.That(error!.Message, Does.Contain(Path.GetFileName(first)).And.Contain("only the last segment may end in an interrupted write"));
    }

    [Test]
    public async Task AMissingSegmentIsReported()
    {
        using var directory = new TempDirectory();
        await FillSegments(directory, 3);
        string middle = directory.FileNames("wal-*.log")[1];
        File.Delete(directory.File(middle));

        var error = await Assert.ThrowsAsync<RaftStorageCorruptException>(async () => await Open(directory.Path, segmentBytes: FileRaftStorageOptions.MinSegmentBytes));
        Assert.That(error!.Message, Does.Contain($"the log segment {middle} is missing"));
    }

    [Test]
    public async Task ManySegmentsReplayInOrder()
    {
        using var directory = new TempDirectory();
        int count = await FillSegments(directory, 4);
        using var storage = await Open(directory.Path, segmentBytes: FileRaftStorageOptions.MinSegmentBytes);
        var state = await storage.LoadAsync();
        Assert.That(state.Entries.Select(e => e.Index), Is.EqualTo(Enumerable.Range(1, count).Select(i => (long)i)));
        Assert.That(state.Entries.All(e => e.Data.Length == 4000), Is.True);
    }

    [Test]
    public async Task ADamagedSnapshotFileIsReported()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(null, Entries(1, 1, 5));
            await storage.SaveSnapshotAsync(new RaftSnapshot(3, 1, new byte[100]));
        }

        string snapshot = directory.File(directory.FileNames("snapshot-*.snap").Single());
        FlipBit(snapshot, 60, 1);
        var error = await Assert.ThrowsAsync<RaftStorageCorruptException>(async () => await Open(directory.Path));
        Assert.That(error!.Message, Does.Contain(Path.GetFileName(snapshot)).And.Contain("checksum"));

        File.Delete(snapshot);
        var missing = await Assert.ThrowsAsync<RaftStorageCorruptException>(async () => await Open(directory.Path));
        Assert.That(missing!.Message, Does.Contain(Path.GetFileName(snapshot)).And.Contain("file is missing"));
    }

    /// <summary>Writes 4000-byte entries until the log spans <paramref name="segments"/> segments of 64 KiB; returns the entry count.</summary>
    private static async Task<int> FillSegments(TempDirectory directory, int segments)
    {
        using var storage = await Open(directory.Path, flush: FlushPolicy.None, segmentBytes: FileRaftStorageOptions.MinSegmentBytes);
        int index = 0;
        while (directory.FileNames("wal-*.log").Length < segments || index % 5 != 0)
        {
            index++;
            await storage.SaveAsync(new HardState(1, "a", index - 1), [new LogEntry(index, 1, EntryKind.Normal, new byte[4000])]);
        }

        return index;
    }

    private static void FlipBit(string path, long offset, int bit)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        int value = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(value ^ (1 << bit)));
    }
}
