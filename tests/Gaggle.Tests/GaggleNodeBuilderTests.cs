using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Storage;
using Gaggle.Tests.Storage;
using Gaggle.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Gaggle.Tests;

[TestFixture]
public sealed class GaggleNodeBuilderTests
{
    [Test]
    public async Task FileStorageFromTheBuilderLogsItsRecoveryThroughTheLoggerFactory()
    {
        using var directory = new TempDirectory();
        using (var storage = await StorageTestSupport.Open(directory.Path, "solo"))
        {
            await storage.SaveAsync(new HardState(1, "solo", 0), StorageTestSupport.Entries(1, 1, 3));
        }

        // An interrupted last write: junk after the last complete record, cut off when the storage opens.
        string segment = Directory.GetFiles(directory.Path, "wal-*.log").Single();
        await using (var file = new FileStream(segment, FileMode.Append))
        {
            file.Write(new byte[100]);
        }

        var logging = new CapturingLoggerFactory();
        var options = new GaggleOptions { NodeId = "solo", Members = ["solo"] };
        await using var node = new GaggleNodeBuilder(options).UseInMemory(new InMemoryNetwork(1)).UseFileStorage(directory.Path).UseLoggerFactory(logging).Build();
        await node.StartAsync();

        Assert.That(
            logging.Lines.Where(l => l.Category == typeof(FileRaftStorage).FullName && l.Level == LogLevel.Warning).Select(l => l.Message),
            Has.One.Contains("interrupted write").And.Contains("cut off 100"));
    }

    [Test]
    public void BuildRefusesInvalidOptionsBeforeTheChannelIsCreated()
    {
        bool channelCreated = false;
        var builder = new GaggleNodeBuilder(new GaggleOptions { NodeId = "a", Members = ["a"], HeartbeatInterval = TimeSpan.FromSeconds(1) })
            .UseChannel(options =>
            {
                channelCreated = true;
                return new InMemoryNetwork(1).CreateChannel(options.NodeId);
            });
        var error = Assert.Throws<OptionsValidationException>(() => builder.Build());
        Assert.That(error!.Message, Does.Contain("ElectionTimeoutMin is 300 ms; it must be greater than HeartbeatInterval (1000 ms)"));
        Assert.That(channelCreated, Is.False);
    }
}
