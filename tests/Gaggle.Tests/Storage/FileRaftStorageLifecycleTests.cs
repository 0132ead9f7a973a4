using System.Text;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Storage;
using Microsoft.Extensions.Options;
using NUnit.Framework;
using static Gaggle.Tests.Storage.StorageTestSupport;

namespace Gaggle.Tests.Storage;

/// <summary>Identity, ownership of the directory, the open/close life cycle and options.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class FileRaftStorageLifecycleTests
{
    [Test]
    public async Task IsNewIsTrueOnlyForTheOpenThatCreatedTheState()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            Assert.That(storage.IsNew, Is.True);
            Assert.That(directory.FileNames(), Is.EqualTo(new[] { "identity", "lock", "wal-00000000000000000001.log" }));
        }

        using (var storage = await Open(directory.Path))
        {
            Assert.That(storage.IsNew, Is.False);
        }
    }

    [Test]
    public async Task TheFirstLoadOpensAStorageCreatedWithItsConstructor()
    {
        using var directory = new TempDirectory();
        using var storage = new FileRaftStorage(Options(Path.Combine(directory.Path, "nested", "node-a")));
        Assert.Throws<InvalidOperationException>(() => _ = storage.IsNew);
        var early = await Assert.ThrowsAsync<InvalidOperationException>(async () => await storage.SaveAsync(new HardState(1, null, 0), []));
        Assert.That(early!.Message, Does.Contain("call LoadAsync"));

        var state = await storage.LoadAsync();
        Assert.That(state.Entries, Is.Empty);
        Assert.That(storage.IsNew, Is.True);
        Assert.That(storage.Directory, Is.EqualTo(Path.Combine(directory.Path, "nested", "node-a")));
        await storage.SaveAsync(new HardState(1, "a", 0), Entries(1, 1, 2));
        Assert.That((await storage.LoadAsync()).Entries, Has.Count.EqualTo(2), "a later load reads the files again");
    }

    [Test]
    public async Task ADirectoryOfAnotherNodeIsRefused()
    {
        using var directory = new TempDirectory();
        using (await Open(directory.Path, nodeId: "node-a"))
        {
        }

        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await Open(directory.Path, nodeId: "node-b"));
        Assert.That(error!.Message, Does.Contain("belongs to node 'node-a', not to node 'node-b'").And.Contain(directory.Path));
        using var owner = await Open(directory.Path, nodeId: "node-a");
        Assert.That(owner.IsNew, Is.False, "a refused open changes nothing");
    }

    [Test]
    public async Task ADirectoryIsUsedByOneOpenStorageAtATime()
    {
        using var directory = new TempDirectory();
        var first = await Open(directory.Path);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await Open(directory.Path));
        Assert.That(error!.Message, Does.Contain("is in use by another open FileRaftStorage").And.Contain(directory.Path));
        first.Dispose();
        first.Dispose();
        using var second = await Open(directory.Path);
        Assert.That(second.IsNew, Is.False);
    }

    [Test]
    public async Task ALogWithoutItsIdentityFileIsRefused()
    {
        using var directory = new TempDirectory();
        using (var storage = await Open(directory.Path))
        {
            await storage.SaveAsync(new HardState(1, "a", 0), Entries(1, 1, 1));
        }

        File.Delete(directory.File("identity"));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await Open(directory.Path));
        Assert.That(error!.Message, Does.Contain("holds a Raft log but no identity file"));
    }

    [Test]
    public async Task AnIdentityWhoseLogIsGoneIsReportedAsLostStorage()
    {
        using var directory = new TempDirectory();
        using (await Open(directory.Path))
        {
        }

        File.Delete(directory.File("wal-00000000000000000001.log"));
        var error = await Assert.ThrowsAsync<RaftStorageCorruptException>(async () => await Open(directory.Path));
        Assert.That(error!.Message, Does.Contain("no log segment").And.Contain("lost"));
    }

    [Test]
    public async Task AnInterruptedFirstOpenStartsOver()
    {
        // The identity file is written last: without it, an empty segment is a leftover of an open that never finished.
        using var directory = new TempDirectory();
        using (await Open(directory.Path))
        {
        }

        File.Delete(directory.File("identity"));
        using var storage = await Open(directory.Path);
        Assert.That(storage.IsNew, Is.True);
    }

    [Test]
    public async Task CallsAfterDisposeAreRefused()
    {
        using var directory = new TempDirectory();
        var storage = await Open(directory.Path);
        storage.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await storage.LoadAsync());
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await storage.SaveAsync(null, []));
    }

    [Test]
    public async Task OverlappingCallsAreSerializedRatherThanInterleaved()
    {
        using var directory = new TempDirectory();
        HardState last;
        using (var storage = await Open(directory.Path, flush: FlushPolicy.None))
        {
            await Task.WhenAll(Enumerable.Range(1, 64).Select(term => Task.Run(async () => await storage.SaveAsync(new HardState(term, null, 0), []))));
            last = (await storage.LoadAsync()).HardState;
        }

        using var reopened = await Open(directory.Path);
        Assert.That((await reopened.LoadAsync()).HardState, Is.EqualTo(last));
        Assert.That(last.Term, Is.InRange(1, 64));
    }

    [Test]
    public async Task ANodeRestartedOnItsDirectoryRemembersItsLogAndTerm()
    {
        using var directory = new TempDirectory();
        var options = new GaggleOptions
        {
            NodeId = "a",
            Members = ["a"],
            HeartbeatInterval = TimeSpan.FromMilliseconds(5),
            ElectionTimeoutMin = TimeSpan.FromMilliseconds(20),
            ElectionTimeoutMax = TimeSpan.FromMilliseconds(30),
        };
        long index, term;
        // The node does not own the storage: whoever creates it disposes it, after the node.
        using (var storage = new FileRaftStorage(Options(directory.Path)))
        await using (var node = new GaggleNode(options, new InMemoryNetwork(1).CreateChannel("a"), storage))
        {
            await node.StartAsync();
            Assert.That(storage.IsNew, Is.True);
            index = await node.AppendAsync(Encoding.UTF8.GetBytes("remember me"), TimeSpan.FromSeconds(10));
            term = node.Term;
        }

        using (var storage = new FileRaftStorage(Options(directory.Path)))
        await using (var node = new GaggleNode(options, new InMemoryNetwork(1).CreateChannel("a"), storage))
        {
            await node.StartAsync();
            Assert.That(storage.IsNew, Is.False);
            var log = await node.GetLogAsync();
            Assert.That(log.Single(e => e.Index == index).Data.ToArray(), Is.EqualTo(Encoding.UTF8.GetBytes("remember me")));
            Assert.That(node.Term, Is.GreaterThanOrEqualTo(term));
        }
    }

    private static IEnumerable<TestCaseData> InvalidOptions()
    {
        yield return Case("Directory is ''; it must be the path of the directory", o => o.Directory = "");
        yield return Case("Directory is 'bad\0path'; it must not contain characters that are invalid in a path", o => o.Directory = "bad\0path");
        yield return Case("NodeId is 'has space'; it must be 1 to 64 characters", o => o.NodeId = "has space");
        yield return Case("NodeId is ''; it must be 1 to 64 characters", o => o.NodeId = "");
        yield return Case("FlushPolicy is 7; it must be EveryBatch or None", o => o.FlushPolicy = (FlushPolicy)7);
        yield return Case("SegmentBytes is 1000; it must be between 65536 (64 KiB) and 1073741824 (1 GiB)", o => o.SegmentBytes = 1000);
        yield return Case("SegmentBytes is 2147483648; it must be between 65536 (64 KiB) and 1073741824 (1 GiB)", o => o.SegmentBytes = 2L << 30);
    }

    private static TestCaseData Case(string expected, Action<FileRaftStorageOptions> breakIt)
        => new TestCaseData(breakIt, expected).SetArgDisplayNames(expected.Replace("\0", "\\0", StringComparison.Ordinal));

    [TestCaseSource(nameof(InvalidOptions))]
    public void AnInvalidSettingIsNamedWithItsValueAndRule(Action<FileRaftStorageOptions> breakIt, string expected)
    {
        var options = Options("some-dir");
        breakIt(options);
        var error = Assert.Throws<OptionsValidationException>(() => _ = new FileRaftStorage(options));
        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public void EveryInvalidSettingIsListedAtOnce()
    {
        var options = new FileRaftStorageOptions { SegmentBytes = 1 };
        var result = new FileRaftStorageOptionsValidator().Validate(null, options);
        Assert.That(result.Failures!.Count(), Is.EqualTo(3), "Directory, NodeId and SegmentBytes");
        Assert.That(new FileRaftStorageOptions().FlushPolicy, Is.EqualTo(FlushPolicy.EveryBatch), "durable by default");
    }
}
