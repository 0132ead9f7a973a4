using System.Runtime.CompilerServices;
using Gaggle.Channels;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Gaggle.Tests;

[TestFixture]
public sealed class OptionsValidationTests
{
    private static GaggleOptions Valid() => new() { NodeId = "a", Members = ["a", "b", "c"] };

    private static IEnumerable<TestCaseData> InvalidSettings()
    {
        yield return Case("NodeId is ''", o => o.NodeId = "");
        yield return Case("NodeId is 'has space'", o => o.NodeId = "has space");
        yield return Case("in elastic mode (no Members, no ClusterSize) it is a display name of at most 55 characters", o => { o.Members = []; o.NodeId = new string('n', 56); });
        yield return Case("MemberTimeout is 1000 ms; it must be between 4 x ElectionTimeoutMax (2000 ms)", o => { o.Members = []; o.MemberTimeout = TimeSpan.FromSeconds(1); });
        yield return Case("must include this node's NodeId 'a'", o => o.Members = ["b", "c"]);
        yield return Case("Members lists 'b' more than once", o => o.Members = ["a", "b", "b"]);
        yield return Case("Members contains 'b c'", o => o.Members = ["a", "b c"]);
        yield return Case("Members (3 ids) and ClusterSize (3) are both set", o => o.ClusterSize = 3);
        yield return Case("ClusterSize is 0; it must be between 1 and 1000", o => { o.Members = []; o.ClusterSize = 0; });
        yield return Case("HeartbeatInterval is 0 ms; it must be at least 1 ms", o => o.HeartbeatInterval = TimeSpan.Zero);
        yield return Case("ElectionTimeoutMin is 40 ms; it must be greater than HeartbeatInterval (50 ms)", o => o.ElectionTimeoutMin = TimeSpan.FromMilliseconds(40));
        yield return Case("ElectionTimeoutMax is 200 ms; it must be at least ElectionTimeoutMin (300 ms)", o => o.ElectionTimeoutMax = TimeSpan.FromMilliseconds(200));
        yield return Case("MaxInflightMessages is 0; it must be between 1 and 1024", o => o.MaxInflightMessages = 0);
        yield return Case("MaxInflightBytes is 1000; it must be between 65536 and 1073741824", o => o.MaxInflightBytes = 1000);
        yield return Case("MaxEntriesPerMessage is 0; it must be between 1 and 65536", o => o.MaxEntriesPerMessage = 0);
        yield return Case("MaxMessageBytes is 10; it must be between 1024 and 67108864", o => o.MaxMessageBytes = 10);
        yield return Case("RpcHandlers has the method ' '", o => o.RpcHandlers[" "] = (_, _) => ValueTask.FromResult(Array.Empty<byte>()));
    }

    private static TestCaseData Case(string expected, Action<GaggleOptions> breakIt)
        => new TestCaseData(breakIt, expected).SetArgDisplayNames(expected);

    [TestCaseSource(nameof(InvalidSettings))]
    public void InvalidSettingIsNamedWithItsValueAndRule(Action<GaggleOptions> breakIt, string expected)
    {
        var options = Valid();
        breakIt(options);
        var error = Assert.Throws<OptionsValidationException>(() => GaggleOptionsValidator.ThrowIfInvalid(options));
        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public void ValidOptionsPass()
    {
        Assert.DoesNotThrow(() => GaggleOptionsValidator.ThrowIfInvalid(Valid()));
        Assert.DoesNotThrow(() => GaggleOptionsValidator.ThrowIfInvalid(new GaggleOptions { NodeId = "x", ClusterSize = 3 }));
    }

    [Test]
    public void EveryProblemIsListedAtOnce()
    {
        var options = new GaggleOptions { NodeId = "", Members = [], ClusterSize = 0, MaxInflightMessages = 0 };
        var error = Assert.Throws<OptionsValidationException>(() => GaggleOptionsValidator.ThrowIfInvalid(options));
        Assert.That(error!.Failures.Count(), Is.EqualTo(3));
    }

    [Test]
    public async Task NodeRefusesInvalidOptionsAndAMismatchedChannel()
    {
        var network = new InMemoryNetwork(1);
        Assert.Throws<OptionsValidationException>(() => _ = new GaggleNode(new GaggleOptions { NodeId = "a", ClusterSize = 0 }, network.CreateChannel("a")));
        var error = Assert.Throws<ArgumentException>(() => _ = new GaggleNode(Valid(), network.CreateChannel("b")));
        Assert.That(error!.Message, Does.Contain("'b'").And.Contain("'a'"));
        await using var node = new GaggleNode(Valid(), network.CreateChannel("a"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => node.AppendAsync(new byte[1]));
        var tooBig = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => node.AppendAsync(new byte[600 * 1024]));
        Assert.That(tooBig!.Message, Does.Contain("614400 bytes").And.Contain("MaxMessageBytes"));
    }

    [Test]
    public async Task ANodeValidatesItsOptionsOnceWhetherConstructedOrBuilt()
    {
        var validations = new StrongBox<int>();
        GaggleOptionsValidator.CountedValidations.Value = validations;
        await using (new GaggleNode(Valid(), new InMemoryNetwork(1).CreateChannel("a")))
        {
            Assert.That(validations.Value, Is.EqualTo(1), "constructed directly");
        }

        validations.Value = 0;
        var options = Valid();
        await using (new GaggleNodeBuilder(options).UseInMemory(new InMemoryNetwork(1)).Build())
        {
            Assert.That(validations.Value, Is.EqualTo(1), "built: the builder validates, the constructor does not again");
        }

        // The builder's check covered the node it built, nothing after it.
        options.MaxInflightMessages = 0;
        var error = Assert.Throws<OptionsValidationException>(() => _ = new GaggleNode(options, new InMemoryNetwork(1).CreateChannel("a")));
        Assert.That(error!.Message, Does.Contain("MaxInflightMessages is 0; it must be between 1 and 1024"));
    }
}
