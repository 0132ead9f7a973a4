using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>
/// An elastic node that starts over under the member id of an earlier life (removed while paused or
/// cut off, or a learner that heard no voter) replays the cluster's log from scratch: the
/// configurations of its earlier life must not make it a voter again (<see cref="RaftCore.NoVoterThrough"/>).
/// </summary>
[TestFixture]
public sealed class StartOverTests
{
    /// <summary>
    /// The log b replays: b founded the cluster as its sole voter (1), a was added and promoted and b
    /// removed (2..4, b's earlier life ends at 4), then b, started over, is added again (5) and promoted (6).
    /// </summary>
    private static readonly LogEntry[] Log =
    [
        Configuration(1, new ClusterConfig(["b"], [])),
        Configuration(2, new ClusterConfig(["b"], ["a"])),
        Configuration(3, new ClusterConfig(["a", "b"], [])),
        Configuration(4, new ClusterConfig(["a"], [])),
        Configuration(5, new ClusterConfig(["a"], ["b"])),
        Configuration(6, new ClusterConfig(["a", "b"], [])),
    ];

    private static LogEntry Configuration(long index, ClusterConfig config) => new(index, 2, EntryKind.Configuration, config.Encode());

    /// <summary>b, started over after its removal at 4 (keeping its term), having received the log up to <paramref name="upTo"/> from a, then cut off.</summary>
    private static (RaftCore Core, List<RaftMessage> Sent) StartedOverAndCutOffAt(long upTo)
    {
        var b = new RaftCore(
            new RaftConfig { Id = "b", Members = [], Joining = true, ElectionTicksMin = 10, ElectionTicksMax = 10, HeartbeatTicks = 2, Random = new Random(2) },
            new HardState(2, null, 0),
            []);
        b.NoVoterThrough(4);
        b.Step(new RaftMessage { Type = MessageType.Append, From = "a", To = "b", Term = 2, Index = 0, LogTerm = 0, Commit = upTo, Entries = Log[..(int)upTo] });
        var sent = new List<RaftMessage>();
        for (int i = 0; i < 100; i++)
        {
            b.Tick();
            if (b.TakeReady() is { } ready)
            {
                sent.AddRange(ready.Messages);
            }
        }

        return (b, sent);
    }

    /// <summary>
    /// Found by the simulation (elastic seed 155, with lock reads): a removed founder replaying the log
    /// met the configuration in which it had been the sole voter, was cut off there, elected itself
    /// and overwrote committed entries.
    /// </summary>
    [Test]
    public void A_configuration_of_its_earlier_life_never_makes_it_a_voter()
    {
        var (b, sent) = StartedOverAndCutOffAt(1);

        Assert.That(b.Configuration.IsVoter("b"), Is.True, "entry 1 lists b as the sole voter");
        Assert.That(b.IsVoter, Is.False, "but it is of b's earlier life");
        Assert.That(b.Role, Is.Not.EqualTo(RaftRole.Leader));
        Assert.That(sent.Where(m => m.Type is MessageType.Vote or MessageType.PreVote), Is.Empty, "it never campaigns");
    }

    [Test]
    public void A_configuration_logged_after_its_earlier_life_makes_it_a_voter_again()
    {
        var (b, sent) = StartedOverAndCutOffAt(6);

        Assert.That(b.IsVoter, Is.True, "promoted at 6, after its removal at 4");
        Assert.That(sent.Where(m => m.Type is MessageType.Vote or MessageType.PreVote), Is.Not.Empty, "cut off from a, it campaigns");
    }
}
