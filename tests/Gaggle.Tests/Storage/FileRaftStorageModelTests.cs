using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;
using static Gaggle.Tests.Storage.StorageTestSupport;

namespace Gaggle.Tests.Storage;

/// <summary>
/// Seeded random operations fed to the file storage and to the in-memory reference; after every
/// restart (and at random points without one) both must hold the same state.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class FileRaftStorageModelTests
{
    private const int Steps = 400;

    private static IEnumerable<TestCaseData> Seeds()
    {
        for (int seed = 1; seed <= 10; seed++)
        {
            var flush = seed <= 8 ? FlushPolicy.None : FlushPolicy.EveryBatch;
            yield return new TestCaseData(seed, flush).SetArgDisplayNames($"seed {seed}", flush.ToString());
        }
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task BehavesLikeTheInMemoryStorage(int seed, FlushPolicy flush)
    {
        var random = new Random(seed);
        using var directory = new TempDirectory();
        var model = new InMemoryRaftStorage();
        var file = await Open(directory.Path, flush: flush, segmentBytes: FileRaftStorageOptions.MinSegmentBytes);
        var history = new List<string>();
        long term = 1;
        int mostSegments = 0;
        try
        {
            for (int step = 0; step < Steps; step++)
            {
                var expected = await model.LoadAsync();
                long first = (expected.Snapshot?.Index ?? 0) + 1;
                long next = first + expected.Entries.Count;
                term += random.Next(10) == 0 ? 1 : 0;
                int roll = random.Next(100);
                if (roll < 60)
                {
                    long from = random.Next(3) == 0 ? first + random.NextInt64(next - first + 1) : next;
                    var entries = RandomEntries(random, from, random.Next(1, 11), term);
                    var hardState = random.Next(2) == 0 ? RandomHardState(random, term, next) : (HardState?)null;
                    history.Add($"save {(hardState is null ? "" : "hard state + ")}{entries.Length} entries from {from}");
                    await model.SaveAsync(hardState, entries);
                    await file.SaveAsync(hardState, entries);
                }
                else if (roll < 67)
                {
                    var hardState = RandomHardState(random, term, next);
                    history.Add($"save hard state {hardState}");
                    await model.SaveAsync(hardState, []);
                    await file.SaveAsync(hardState, []);
                }
                else if (roll < 71)
                {
                    var snapshot = RandomSnapshot(random, expected, next);
                    history.Add($"snapshot at {snapshot.Index}/{snapshot.Term}");
                    await model.SaveSnapshotAsync(snapshot);
                    await file.SaveSnapshotAsync(snapshot);
                }
                else if (roll < 76)
                {
                    long from = random.Next(2) == 0 || first == 1 ? next + 1 + random.Next(3) : random.NextInt64(1, first);
                    history.Add($"invalid save from {from}");
                    var entries = RandomEntries(random, from, 1, term);
                    await Assert.ThrowsAsync<ArgumentException>(async () => await model.SaveAsync(null, entries));
                    await Assert.ThrowsAsync<ArgumentException>(async () => await file.SaveAsync(null, entries), $"seed {seed}, step {step}");
                }
                else if (roll < 90)
                {
                    history.Add("restart");
                    file.Dispose();
                    file = await Open(directory.Path, flush: flush, segmentBytes: FileRaftStorageOptions.MinSegmentBytes);
                    await AssertSame(model, file, seed, step, history);
                }
                else
                {
                    history.Add("load");
                    await AssertSame(model, file, seed, step, history);
                }

                mostSegments = Math.Max(mostSegments, directory.FileNames("wal-*.log").Length);
            }

            file.Dispose();
            file = await Open(directory.Path, flush: flush, segmentBytes: FileRaftStorageOptions.MinSegmentBytes);
            await AssertSame(model, file, seed, Steps, history);
            Assert.That(directory.FileNames("*.tmp"), Is.Empty, "no temporary file is left behind");
            Assert.That(mostSegments, Is.GreaterThan(1), "the run crossed segment boundaries");
            TestContext.Out.WriteLine($"seed {seed}: {history.Count(h => h.StartsWith("snapshot", StringComparison.Ordinal))} snapshots, {history.Count(h => h == "restart")} restarts, up to {mostSegments} segments");
        }
        finally
        {
            file.Dispose();
        }
    }

    private static async Task AssertSame(InMemoryRaftStorage model, FileRaftStorage file, int seed, int step, List<string> history)
    {
        var expected = Describe(await model.LoadAsync());
        var actual = Describe(await file.LoadAsync());
        Assert.That(actual, Is.EqualTo(expected), $"seed {seed}, step {step}, after: {string.Join("; ", history.TakeLast(8))}");
    }

    private static LogEntry[] RandomEntries(Random random, long from, int count, long term)
    {
        var entries = new LogEntry[count];
        for (int i = 0; i < count; i++)
        {
            if (random.Next(15) == 0)
            {
                entries[i] = new LogEntry(from + i, term, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty);
                continue;
            }

            var data = new byte[random.Next(5) == 0 ? random.Next(8000) : random.Next(65)];
            random.NextBytes(data);
            entries[i] = new LogEntry(from + i, term, EntryKind.Normal, data);
        }

        return entries;
    }

    private static HardState RandomHardState(Random random, long term, long next)
        => new(term, random.Next(3) switch { 0 => null, 1 => "a", _ => "node-b" }, random.NextInt64(next));

    private static RaftSnapshot RandomSnapshot(Random random, PersistedState state, long next)
    {
        long oldest = Math.Max(state.Snapshot?.Index ?? 1, 1);
        long index = oldest + random.NextInt64(next + 3 - oldest);
        long first = (state.Snapshot?.Index ?? 0) + 1;
        long term = index >= first && index < next && random.Next(4) != 0
            ? state.Entries[(int)(index - first)].Term
            : random.Next(1, 100);
        var data = new byte[random.Next(200)];
        random.NextBytes(data);
        return new RaftSnapshot(index, term, data);
    }
}
