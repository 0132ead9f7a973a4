using Gaggle.Raft;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>The duplicate table across membership changes.</summary>
[TestFixture]
public sealed class DuplicateTableMembershipTests
{
    /// <summary>
    /// A member paused past the member timeout is removed; on resuming it retries an append applied
    /// before its removal and asks to join, and the leader adds it back before it learns of its removal
    /// (the same life: same id and incarnation). However many members were removed meanwhile, the retry
    /// landing in the log after it was added back is a duplicate. (Elastic seed 78, run with removed
    /// members' sessions forgotten at once: the append applied twice.)
    /// </summary>
    [Test]
    public void A_member_added_back_in_the_same_life_finds_its_applied_appends_still_applied()
    {
        var machines = new NodeStateMachines("leader", 1, new Dictionary<string, IGaggleStateMachine>(), new NodeEvents());
        long index = 0;
        var retried = Append(++index, "w4", 7);
        Assert.That(machines.TryApply(retried, out _), Is.True, "applied the first time");

        machines.TryApply(Configuration(++index, ["leader"], []), out _);
        for (int i = 0; i < 200; i++)
        {
            // Instances come and go meanwhile: each appends, then is removed.
            machines.TryApply(Append(++index, $"gone-{i}", 1), out _);
            machines.TryApply(Configuration(++index, ["leader"], [$"gone-{i}"]), out _);
            machines.TryApply(Configuration(++index, ["leader"], []), out _);
        }

        machines.TryApply(Configuration(++index, ["leader"], ["w4"]), out _);
        Assert.That(machines.TryApply(retried with { Index = ++index }, out _), Is.False, "the retry is a duplicate");
    }

    private static LogEntry Append(long index, string origin, long sequence)
        => new(index, 1, EntryKind.Normal, new EntryEnvelope(EntryPayloadKind.User, 0, origin, 1, sequence, "x"u8.ToArray()).Encode());

    private static LogEntry Configuration(long index, string[] voters, string[] learners)
        => new(index, 1, EntryKind.Configuration, new ClusterConfig(voters, learners).Encode());
}
