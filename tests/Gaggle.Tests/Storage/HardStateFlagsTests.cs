using Gaggle.Raft;
using Gaggle.Storage;
using NUnit.Framework;

namespace Gaggle.Tests.Storage;

[TestFixture]
public sealed class HardStateFlagsTests
{
    [Test]
    public async Task TheRejoiningFlagSurvivesAReopen()
    {
        string directory = Path.Combine(Path.GetTempPath(), "gaggle-flags-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var storage = await FileRaftStorage.OpenAsync(new FileRaftStorageOptions { Directory = directory, NodeId = "a" }))
            {
                await storage.SaveAsync(new HardState(3, "b", 0, Rejoining: true), []);
            }

            using (var reopened = await FileRaftStorage.OpenAsync(new FileRaftStorageOptions { Directory = directory, NodeId = "a" }))
            {
                Assert.That((await reopened.LoadAsync()).HardState, Is.EqualTo(new HardState(3, "b", 0, Rejoining: true)));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
