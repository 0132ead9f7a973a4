using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

[TestFixture]
public sealed class InflightsTests
{
    [Test]
    public void FullByCountOrByBytesButOneMessageIsAlwaysAllowed()
    {
        var window = new Inflights(capacity: 3, maxBytes: 100);
        Assert.That(window.Full, Is.False);
        window.Add(5, bytes: 500);
        Assert.That(window.Full, Is.True, "one oversized message fills the byte budget");
        window.FreeUpTo(5);
        Assert.That((window.Full, window.Count, window.Bytes), Is.EqualTo((false, 0, 0L)));
        window.Add(6, 10);
        window.Add(7, 10);
        window.Add(8, 10);
        Assert.That(window.Full, Is.True, "three messages fill the count");
        window.FreeUpTo(7);
        Assert.That((window.Full, window.Count, window.Bytes), Is.EqualTo((false, 1, 10L)));
    }

    [Test]
    public void TheLeaderStopsStreamingAtTheByteBudget()
    {
        var config = new RaftConfig { Id = "a", Members = ["a", "b"], MaxInflightMessages = 64, MaxEntriesPerMessage = 1, MaxInflightBytes = 3 * (1000 + 16), ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, Random = new Random(1) };
        var leader = new RaftCore(config, HardState.Empty, []);
        var follower = new RaftCore(new RaftConfig { Id = "b", Members = ["a", "b"], Random = new Random(2) }, HardState.Empty, []);
        for (int i = 0; i < 20 && leader.Role != RaftRole.Leader; i++)
        {
            leader.Tick();
            foreach (var message in leader.TakeReady()?.Messages ?? [])
            {
                follower.Step(message);
            }

            foreach (var message in follower.TakeReady()?.Messages ?? [])
            {
                leader.Step(message);
            }
        }

        // Let the no-op's probe succeed so the follower is streamed to.
        for (int round = 0; round < 3; round++)
        {
            foreach (var message in leader.TakeReady()?.Messages ?? [])
            {
                follower.Step(message);
            }

            foreach (var message in follower.TakeReady()?.Messages ?? [])
            {
                leader.Step(message);
            }
        }

        Assert.That(leader.ProgressOf("b")!.State, Is.EqualTo(ProgressState.Replicate));
        leader.Propose(Enumerable.Range(0, 10).Select(_ => (ReadOnlyMemory<byte>)new byte[1000]).ToArray());
        var appends = leader.TakeReady()!.Messages.Where(m => m.Type == MessageType.Append).ToList();
        Assert.That(appends, Has.Count.EqualTo(3), "3 KB of budget holds three 1 KB entries, one per message");
    }
}
