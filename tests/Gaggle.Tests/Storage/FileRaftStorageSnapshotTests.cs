using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;
using static Gaggle.Tests.Storage.StorageTestSupport;

namespace Gaggle.Tests.Storage;

/// <summary>Snapshots on disk: atomic files, compaction of the log behind them, and crashes at each step.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class FileRaftStorageSnapshotTests
{
    private static readonly HardState Hard = new(2, "a", 7);

    private static LogEntry[] TwoTerms() => [.. Entries(1, 1, 5), .. Entries(6, 2, 5)];

    [Test]
    public async Task ASnapshotCompactsTheLogAndKeepsTheSuffixAfterIt()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(Hard, TwoTerms());
            await storage.SaveSnapshotAsync(new RaftSnapshot(7, 2, "at 7"u8.ToArray()));
            Assert.That(directory.FileNames("wal-*.log"), Is.EqualTo(new[] { "wal-00000000000000000002.log" }), "the old segment is gone");
            Assert.That(directory.FileNames("snapshot-*"), Is.EqualTo(new[] { "snapshot-00000000000000000007-00000000000000000002.snap" }));
        }

        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot, Has.Property(nameof(RaftSnapshot.Index)).EqualTo(7).And.Property(nameof(RaftSnapshot.Term)).EqualTo(2));
            Assert.That(state.Snapshot!.Data.ToArray(), Is.EqualTo("at 7"u8.ToArray()));
            Assert.That(Describe(state), Is.EqualTo(Describe(new PersistedState(Hard, Entries(8, 2, 3), state.Snapshot))));

            await storage.SaveAsync(null, Entries(11, 3, 2));
            await storage.SaveSnapshotAsync(new RaftSnapshot(10, 2, "at 10"u8.ToArray()));
            Assert.That(directory.FileNames("wal-*.log"), Is.EqualTo(new[] { "wal-00000000000000000003.log" }));
            Assert.That(directory.FileNames("snapshot-*"), Is.EqualTo(new[] { "snapshot-00000000000000000010-00000000000000000002.snap" }), "the older snapshot is gone");
        }

        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot!.Index, Is.EqualTo(10));
            Assert.That(state.Entries.Select(e => (e.Index, e.Term)), Is.EqualTo(new[] { (11L, 3L), (12L, 3L) }));
        }
    }

    [Test]
    public async Task ASnapshotThatDivergesFromTheLogReplacesIt()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(Hard, TwoTerms());
            await storage.SaveSnapshotAsync(new RaftSnapshot(7, 4, "leader's"u8.ToArray()));
        }

        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot!.Term, Is.EqualTo(4));
            Assert.That(state.Entries, Is.Empty);
            Assert.That(state.HardState, Is.EqualTo(Hard));
            await storage.SaveAsync(null, Entries(8, 4, 1));
        }

        using (var storage = await Open(directory.Path))
        {
            Assert.That((await storage.LoadAsync()).Entries.Single().Index, Is.EqualTo(8));
        }
    }

    [Test]
    public async Task TornTemporaryFilesAreIgnoredAndRemoved()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(Hard, TwoTerms());
            await storage.SaveSnapshotAsync(new RaftSnapshot(7, 2, "at 7"u8.ToArray()));
        }

        // A crash while writing a newer snapshot, and while building the next base segment.
        await File.WriteAllBytesAsync(directory.File("snapshot-00000000000000000009-00000000000000000002.snap.tmp"), [0x47, 0x53, 0x4E]);
        await File.WriteAllBytesAsync(directory.File("wal-00000000000000000003.log.tmp"), new byte[10]);

        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot!.Index, Is.EqualTo(7));
            Assert.That(state.Entries.Select(e => e.Index), Is.EqualTo(new long[] { 8, 9, 10 }));
        }

        Assert.That(directory.FileNames("*.tmp"), Is.Empty);
    }

    [Test]
    public async Task ASnapshotFileTheLogNeverRecordedIsIgnoredAndRemoved()
    {
        // A crash after the snapshot file was renamed into place but before its marker reached the log.
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(Hard, TwoTerms());
        }

        using (var elsewhere = new TempDirectory())
        {
            using (var other = await Open(elsewhere.Path))
            {
                await other.SaveAsync(null, TwoTerms());
                await other.SaveSnapshotAsync(new RaftSnapshot(9, 2, "never recorded"u8.ToArray()));
            }

            string orphan = elsewhere.FileNames("snapshot-*").Single();
            File.Copy(elsewhere.File(orphan), directory.File(orphan));
        }

        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot, Is.Null);
            Assert.That(state.Entries, Has.Count.EqualTo(10));
        }

        Assert.That(directory.FileNames("snapshot-*"), Is.Empty);
    }

    [Test]
    public async Task ACrashAfterTheMarkerButBeforeCompactionKeepsTheSnapshot()
    {
        // The marker is the commit point: after it, replaying the old segment gives the snapshot's state.
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(Hard, TwoTerms());
        }

        var snapshot = new RaftSnapshot(7, 2, "at 7"u8.ToArray());
        await SnapshotFiles.WriteAsync(directory.Path, snapshot, flush: false, CancellationToken.None);
        var writer = new WalBatchWriter();
        writer.Begin(2);
        writer.AddSnapshotMarker(7, 2);
        await using (var stream = new FileStream(OnlySegment(directory), FileMode.Append))
        {
            await stream.WriteAsync(writer.Finish());
        }

        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot!.Index, Is.EqualTo(7));
            Assert.That(state.Entries.Select(e => e.Index), Is.EqualTo(new long[] { 8, 9, 10 }));
            await storage.SaveSnapshotAsync(new RaftSnapshot(9, 2, "at 9"u8.ToArray()));
        }

        using (var storage = await Open(directory.Path))
        {
            Assert.That((await storage.LoadAsync()).Entries.Single().Index, Is.EqualTo(10));
        }
    }

    [Test]
    public async Task SegmentsACompactionDidNotGetToDeleteAreIgnoredAndRemoved()
    {
        using var directory = new TempDirectory();
        byte[] oldSegment;
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(Hard, TwoTerms());
            oldSegment = await File.ReadAllBytesAsync(OnlySegment(directory));
            await storage.SaveSnapshotAsync(new RaftSnapshot(7, 2, "at 7"u8.ToArray()));
        }

        await File.WriteAllBytesAsync(directory.File("wal-00000000000000000001.log"), oldSegment);
        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot!.Index, Is.EqualTo(7));
            Assert.That(state.Entries.Select(e => e.Index), Is.EqualTo(new long[] { 8, 9, 10 }));
        }

        Assert.That(directory.FileNames("wal-*.log"), Is.EqualTo(new[] { "wal-00000000000000000002.log" }));
    }

    [Test]
    public async Task ALargeRetainedSuffixIsCopiedIntact()
    {
        // Over 4 MiB of entries after the snapshot, spread over several segments: compaction copies them in parts.
        using var directory = new TempDirectory();
        var random = new Random(3);
        var entries = new List<LogEntry>();
        using (var storage = await Open(directory.Path, flush: FlushPolicy.None, segmentBytes: 1024 * 1024))
        {
            for (int batch = 0; batch < 80; batch++)
            {
                var saved = new LogEntry[10];
                for (int i = 0; i < saved.Length; i++)
                {
                    var data = new byte[random.Next(2000, 12000)];
                    random.NextBytes(data);
                    saved[i] = new LogEntry(entries.Count + i + 1, 1 + (batch / 20), EntryKind.Normal, data);
                }

                await storage.SaveAsync(new HardState(1 + (batch / 20), "a", entries.Count), saved);
                entries.AddRange(saved);
            }

            Assert.That(directory.FileNames("wal-*.log"), Has.Length.GreaterThan(3));
            await storage.SaveSnapshotAsync(new RaftSnapshot(100, 1, new byte[] { 1 }));
            Assert.That(directory.FileNames("wal-*.log"), Has.Length.EqualTo(1));
            Assert.That(new FileInfo(OnlySegment(directory)).Length, Is.GreaterThan(4 * 1024 * 1024));
        }

        using (var storage = await Open(directory.Path, segmentBytes: 1024 * 1024))
        {
            var state = await storage.LoadAsync();
            var expected = new PersistedState(new HardState(4, "a", 790), entries.Skip(100).ToArray(), state.Snapshot);
            Assert.That(Describe(state), Is.EqualTo(Describe(expected)));
        }
    }
}
