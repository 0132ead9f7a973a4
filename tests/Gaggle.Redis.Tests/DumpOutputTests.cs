using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>The condensed instance output a failed process-level test writes.</summary>
[TestFixture]
public sealed class DumpOutputTests
{
    [Test]
    public void ALogEntryRepeatedBackToBackIsWrittenOnceWithItsCount()
    {
        string[] lines = ["start", "info: Job", "  ran", "info: Job", "  ran", "info: Job", "  ran", "x", "x", "end"];
        Assert.That(ElasticCluster.Condensed(lines), Is.EqualTo(new[]
        {
            "start", "info: Job", "  ran", "  (the two lines above 3 times in a row)", "x", "  (the line above 2 times in a row)", "end",
        }));
    }

    [Test]
    public void OutputWithoutRepeatsIsUnchanged()
    {
        string[] lines = ["a", "b", "a", "c", ""];
        Assert.That(ElasticCluster.Condensed(lines), Is.EqualTo(lines));
    }
}
