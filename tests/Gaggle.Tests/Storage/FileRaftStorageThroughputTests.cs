using System.Diagnostics;
using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;
using static Gaggle.Tests.Storage.StorageTestSupport;

namespace Gaggle.Tests.Storage;

/// <summary>
/// Prints what group commit costs on this machine. Not an assertion: timings belong to the
/// benchmark, and a slow disk must not fail the build.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FileRaftStorageThroughputTests
{
    private const int Batches = 10_000;
    private const int EntriesPerBatch = 10;
    private const int EntryBytes = 64;

    [TestCase(FlushPolicy.EveryBatch)]
    [TestCase(FlushPolicy.None)]
    public async Task PrintsTheTimeForTenThousandBatches(FlushPolicy flush)
    {
        using var directory = new TempDirectory();
        var storage = await Open(directory.Path, flush: flush);
        var data = new byte[EntryBytes];
        var batch = new LogEntry[EntriesPerBatch];
        var watch = Stopwatch.StartNew();
        for (int b = 0; b < Batches; b++)
        {
            for (int i = 0; i < EntriesPerBatch; i++)
            {
                batch[i] = new LogEntry((b * EntriesPerBatch) + i + 1, 1, EntryKind.Normal, data);
            }

            await storage.SaveAsync(new HardState(1, "a", b * EntriesPerBatch), batch);
        }

        watch.Stop();
        storage.Dispose();
        long bytes = directory.FileNames("wal-*.log").Sum(f => new FileInfo(directory.File(f)).Length);
        TestContext.Out.WriteLine(
            $"FlushPolicy.{flush}: {Batches} batches of {EntriesPerBatch} x {EntryBytes}-byte entries + hard state in {watch.Elapsed.TotalMilliseconds:0} ms = " +
            $"{Batches / watch.Elapsed.TotalSeconds:0} batches/s, {Batches * EntriesPerBatch / watch.Elapsed.TotalSeconds:0} entries/s, " +
            $"{watch.Elapsed.TotalMilliseconds * 1000 / Batches:0.0} µs per batch; {bytes / 1024} KiB written");

        using var reopened = await Open(directory.Path);
        Assert.That((await reopened.LoadAsync()).Entries, Has.Count.EqualTo(Batches * EntriesPerBatch));
    }
}
