using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;
using static Gaggle.Tests.Storage.StorageTestSupport;

namespace Gaggle.Tests.Storage;

/// <summary>What every <see cref="IRaftStorage"/> must do; run against each implementation.</summary>
public abstract class RaftStorageContractTests
{
    /// <summary>A new, empty storage, already loaded.</summary>
    protected abstract ValueTask<IRaftStorage> CreateAsync();

    /// <summary>The storage as a restarted node finds it: a durable one is closed and opened again.</summary>
    protected abstract ValueTask<IRaftStorage> RestartAsync(IRaftStorage storage);

    [Test]
    public async Task ANewStorageIsEmpty()
    {
        var storage = await CreateAsync();
        var state = await storage.LoadAsync();
        Assert.That(state.HardState, Is.EqualTo(HardState.Empty));
        Assert.That(state.Entries, Is.Empty);
        Assert.That(state.Snapshot, Is.Null);
    }

    [Test]
    public async Task HardStateAndEntriesSurviveARestart()
    {
        // Raft Figure 2: currentTerm, votedFor and log[] are persistent state, updated on stable storage before responding to RPCs.
        var storage = await CreateAsync();
        await storage.SaveAsync(new HardState(2, "b", 0), Entries(1, 1, 3));
        await storage.SaveAsync(new HardState(2, "b", 3), Entries(4, 2, 2));
        await storage.SaveAsync(null, [Entry(6, 2, "")]);
        storage = await RestartAsync(storage);
        var state = await storage.LoadAsync();
        Assert.That(state.HardState, Is.EqualTo(new HardState(2, "b", 3)));
        Assert.That(Describe(state), Is.EqualTo(Describe(new PersistedState(new HardState(2, "b", 3), [.. Entries(1, 1, 3), .. Entries(4, 2, 2), Entry(6, 2, "")]))));
    }

    [Test]
    public async Task AConflictingSuffixIsReplaced()
    {
        // Raft §5.3: if an existing entry conflicts with a new one (same index, different terms), delete it and all that follow it.
        var storage = await CreateAsync();
        await storage.SaveAsync(new HardState(1, "a", 0), Entries(1, 1, 5));
        await storage.SaveAsync(new HardState(3, null, 0), Entries(3, 3, 1, "new"));
        storage = await RestartAsync(storage);
        var state = await storage.LoadAsync();
        Assert.That(state.Entries.Select(e => (e.Index, e.Term)), Is.EqualTo(new[] { (1L, 1L), (2L, 1L), (3L, 3L) }));
        Assert.That(state.Entries[2].Data.ToArray(), Is.EqualTo("new3"u8.ToArray()));
    }

    [Test]
    public async Task EntriesMustStartWithinOrRightAfterTheStoredLog()
    {
        var storage = await CreateAsync();
        await storage.SaveAsync(null, Entries(1, 1, 3));
        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await storage.SaveAsync(null, Entries(5, 1, 1)));
        Assert.That(error!.Message, Does.Contain("The first entry's index is 5; it must be between 1 and 4"));
        Assert.That((await storage.LoadAsync()).Entries, Has.Count.EqualTo(3), "nothing was stored");
    }

    [Test]
    public async Task ASnapshotKeepsTheEntriesAfterItWhenItsTermMatches()
    {
        // Raft §7: if an existing entry has the same index and term as the snapshot's last included entry, retain the entries following it.
        var storage = await CreateAsync();
        await storage.SaveAsync(new HardState(2, "a", 4), [.. Entries(1, 1, 3), .. Entries(4, 2, 3)]);
        await storage.SaveSnapshotAsync(new RaftSnapshot(4, 2, "state@4"u8.ToArray()));
        storage = await RestartAsync(storage);
        var state = await storage.LoadAsync();
        Assert.That(state.Snapshot!.Index, Is.EqualTo(4));
        Assert.That(state.Snapshot.Data.ToArray(), Is.EqualTo("state@4"u8.ToArray()));
        Assert.That(state.Entries.Select(e => e.Index), Is.EqualTo(new long[] { 5, 6 }));
        Assert.That(state.HardState, Is.EqualTo(new HardState(2, "a", 4)));
    }

    [Test]
    public async Task ASnapshotThatDisagreesWithTheLogReplacesAllOfIt()
    {
        // Raft §7: otherwise discard the entire log; the snapshot alone is the state.
        var storage = await CreateAsync();
        await storage.SaveAsync(new HardState(3, null, 1), Entries(1, 1, 6));
        await storage.SaveSnapshotAsync(new RaftSnapshot(4, 3, "leader's"u8.ToArray()));
        storage = await RestartAsync(storage);
        var state = await storage.LoadAsync();
        Assert.That(state.Snapshot!.Term, Is.EqualTo(3));
        Assert.That(state.Entries, Is.Empty);
        await storage.SaveAsync(null, Entries(5, 3, 2));
        storage = await RestartAsync(storage);
        Assert.That((await storage.LoadAsync()).Entries.Select(e => e.Index), Is.EqualTo(new long[] { 5, 6 }), "the log continues after the snapshot");
    }

    [Test]
    public async Task ASnapshotOlderThanTheStoredOneIsRefused()
    {
        var storage = await CreateAsync();
        await storage.SaveAsync(null, Entries(1, 1, 5));
        await storage.SaveSnapshotAsync(new RaftSnapshot(4, 1, new byte[] { 4 }));
        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await storage.SaveSnapshotAsync(new RaftSnapshot(3, 1, new byte[] { 3 })));
        Assert.That(error!.Message, Does.Contain("The snapshot's index 3 is older than the stored snapshot's 4"));
        var error2 = await Assert.ThrowsAsync<ArgumentException>(async () => await storage.SaveAsync(null, Entries(4, 1, 1)));
        Assert.That(error2!.Message, Does.Contain("it must be between 5 and 6"), "entries the snapshot covers cannot be rewritten");
    }
}

[TestFixture]
public sealed class InMemoryRaftStorageContractTests : RaftStorageContractTests
{
    protected override ValueTask<IRaftStorage> CreateAsync() => ValueTask.FromResult<IRaftStorage>(new InMemoryRaftStorage());

    protected override ValueTask<IRaftStorage> RestartAsync(IRaftStorage storage) => ValueTask.FromResult(storage);
}

[TestFixture]
public sealed class FileRaftStorageContractTests : RaftStorageContractTests
{
    private TempDirectory _directory = null!;
    private FileRaftStorage? _open;

    [SetUp]
    public void CreateDirectory() => _directory = new TempDirectory();

    [TearDown]
    public void RemoveDirectory()
    {
        _open?.Dispose();
        _directory.Dispose();
    }

    protected override async ValueTask<IRaftStorage> CreateAsync() => _open = await Open(_directory.Path);

    protected override async ValueTask<IRaftStorage> RestartAsync(IRaftStorage storage)
    {
        ((FileRaftStorage)storage).Dispose();
        return _open = await Open(_directory.Path);
    }
}
