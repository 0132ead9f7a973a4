using Gaggle.Locks;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle.Tests.Locks;

/// <summary>Log entries and elastic state machines for the tests of gone nodes' waits.</summary>
internal static class GoneNodeLogs
{
    public static LogEntry Lock(long index, string origin, ulong incarnation, long sequence, long stamp, LockCommand command)
        => new(index, 1, EntryKind.Normal, new EntryEnvelope(EntryPayloadKind.Lock, stamp, origin, incarnation, sequence, command.Encode()).Encode());

    public static LogEntry Config(long index, string[] voters, string[] learners, Dictionary<string, long> admissions)
        => new(index, 1, EntryKind.Configuration, new ClusterConfig(voters, learners, admissions).Encode());

    /// <summary>The state machines of elastic node <paramref name="id"/> (a configuration forgets and ends what its removed members left).</summary>
    public static NodeStateMachines Elastic(string id, ulong incarnation, NodeEvents? events = null)
        => new(id, incarnation, new Dictionary<string, IGaggleStateMachine>(), events ?? new NodeEvents(), forgetRemovedMembers: true);

    /// <summary>
    /// Indexes 1 to 6 of a cluster founded by a, with x a learner: a holds the reader-writer lock "rw"
    /// for reading, x waits to write, and a's second read waits behind x (a forced generation of a alone
    /// would end x's wait, after which that read fits).
    /// </summary>
    public static void ApplyLostWriterAhead(NodeStateMachines machines)
    {
        machines.TryApply(Config(1, ["a"], [], new() { ["a"] = 1 }), out _);
        machines.TryApply(Lock(2, "a", 1, 1, 1000, new LockCommand(LockCommandType.Generation, "", Token: 1, LeaseMs: 1)), out _);
        machines.TryApply(Config(3, ["a"], ["x"], new() { ["a"] = 1, ["x"] = 3 }), out _);
        var read = new LockCommand(LockCommandType.AcquireRead, "rw", 0, 10_000, 600_000);
        machines.TryApply(Lock(4, "a", 1, 2, 2000, read), out _);
        machines.TryApply(Lock(5, "x", 1, 1, 2000, new LockCommand(LockCommandType.AcquireWrite, "rw", 0, 10_000, 600_000)), out _);
        machines.TryApply(Lock(6, "a", 1, 3, 2000, read), out _);
    }
}
