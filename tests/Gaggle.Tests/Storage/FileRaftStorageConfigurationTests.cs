using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;
using static Gaggle.Tests.Storage.StorageTestSupport;

namespace Gaggle.Tests.Storage;

/// <summary>The cluster configuration on disk: recovered from the snapshot plus the log (Raft thesis §4, §7).</summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class FileRaftStorageConfigurationTests
{
    private static readonly string[] Seed = ["a", "b", "c"];

    private static LogEntry ConfigEntry(long index, long term, string[] voters, string[] learners)
        => new(index, term, EntryKind.Configuration, new ClusterConfig(voters, learners).Encode());

    private static RaftCore Core(PersistedState state) => new(
        new RaftConfig { Id = "a", Members = Seed, Random = new Random(1) }, state.HardState, state.Entries, snapshot: state.Snapshot);

    [Test]
    public async Task The_latest_configuration_entry_in_the_log_is_recovered()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(new HardState(1, "a", 3), [Entry(1, 1), ConfigEntry(2, 1, Seed, ["d"]), Entry(3, 1), ConfigEntry(4, 1, [.. Seed, "d"], [])]);
        }

        using (var storage = await Open(directory.Path))
        {
            var core = Core(await storage.LoadAsync());
            Assert.That(core.Configuration.Voters, Is.EqualTo(new[] { "a", "b", "c", "d" }), "uncommitted, but the latest in the log");
            Assert.That(core.ConfigurationIndex, Is.EqualTo(4));
        }
    }

    [Test]
    public async Task A_truncated_configuration_entry_takes_its_configuration_away_after_a_restart()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(new HardState(1, "a", 1), [Entry(1, 1), ConfigEntry(2, 1, Seed, ["d"])]);
            await storage.SaveAsync(new HardState(2, "b", 1), [Entry(2, 2)]); // a new leader's entry replaced it
        }

        using (var storage = await Open(directory.Path))
        {
            var core = Core(await storage.LoadAsync());
            Assert.That(core.Configuration.Learners, Is.Empty);
            Assert.That(core.ConfigurationIndex, Is.EqualTo(0), "back to the seed");
        }
    }

    [Test]
    public async Task The_snapshot_carries_the_configuration_as_of_its_index_and_the_log_what_follows()
    {
        using var directory = new TempDirectory();
        var entries = new[] { Entry(1, 1), ConfigEntry(2, 1, Seed, ["d"]), Entry(3, 1), ConfigEntry(4, 1, Seed, ["d", "e"]) };
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(new HardState(1, "a", 3), entries);
            var core = Core(await storage.LoadAsync());
            core.TakeReady(); // hands entries up to the commit index (3) out for applying
            var snapshot = core.CreateSnapshot(3, "machines"u8);
            await storage.SaveSnapshotAsync(snapshot);
        }

        using (var storage = await Open(directory.Path))
        {
            var state = await storage.LoadAsync();
            Assert.That(state.Snapshot!.Index, Is.EqualTo(3));
            var (framed, framedIndex, machines) = SnapshotFrame.Unwrap(state.Snapshot.Data);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(framed!.Learners, Is.EqualTo(new[] { "d" }), "the configuration at index 3, not the later one at 4");
                Assert.That(framedIndex, Is.EqualTo(2));
                Assert.That(machines.ToArray(), Is.EqualTo("machines"u8.ToArray()));
            }

            var core = Core(state);
            Assert.That(core.Configuration.Learners, Is.EqualTo(new[] { "d", "e" }), "the log's later entry wins over the snapshot's");
            Assert.That(core.ConfigurationIndex, Is.EqualTo(4));
        }
    }
}
