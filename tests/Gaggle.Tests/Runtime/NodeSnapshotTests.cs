using System.Text;
using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>The node snapshot format: what earlier releases read, and both versions read back.</summary>
[TestFixture]
public sealed class NodeSnapshotTests
{
    private sealed class Text : IGaggleStateMachine
    {
        public string Value { get; set; } = "";

        public void Apply(GaggleLogEntry entry) => Value += Encoding.UTF8.GetString(entry.Data.Span);

        public void WriteSnapshot(Stream output) => output.Write(Encoding.UTF8.GetBytes(Value));

        public void ReadSnapshot(Stream input) => Value = new StreamReader(input).ReadToEnd();
    }

    /// <summary>
    /// During a rolling upgrade a leader of this release may send its snapshot to a follower of the
    /// previous one: the bytes must be what the previous release wrote (version 1), which it reads.
    /// </summary>
    [Test]
    public void ASnapshotIsWrittenAsThePreviousReleaseWroteIt()
    {
        var (machines, events) = Filled();

        byte[] written = machines.WriteSnapshot();

        Assert.That(written, Is.EqualTo(PreviousReleaseWriter(machines.Deduplicator, machines.Locks.Table, new Dictionary<string, IGaggleStateMachine> { ["text"] = Application(machines) })));
        Assert.That(events.Dropped, Is.Empty);
    }

    [TestCase(false, TestName = "A version-1 snapshot is read back whole")]
    [TestCase(true, TestName = "A version-2 snapshot is read back whole")]
    public void ASnapshotIsReadBackWhole(bool version2)
    {
        var (machines, _) = Filled();
        byte[] data = version2
            ? NodeSnapshot.WriteVersion2(machines.Deduplicator, machines.Locks.SnapshotParts, machines.Application.SnapshotParts)
            : machines.WriteSnapshot();
        var text = new Text();
        var restored = new NodeStateMachines("n2", 9, new Dictionary<string, IGaggleStateMachine> { ["text"] = text }, new NodeEvents());

        restored.ReadSnapshot(data);

        Assert.That(text.Value, Is.EqualTo("ab"));
        Assert.That(restored.Locks.Table.Describe("x", 0).Holders.Select(h => h.NodeId), Is.EqualTo(new[] { "n1" }));
        Assert.That(restored.Deduplicator.Contains("n1", 7, 3), Is.True, "the duplicate table came along");
        Assert.That(restored.WriteSnapshot(), Is.EqualTo(machines.WriteSnapshot()), "nothing was lost on the way");
    }

    /// <summary>A lock grant and two application entries, applied by node n1 (incarnation 7).</summary>
    private static (NodeStateMachines Machines, NodeEvents Events) Filled()
    {
        var events = new NodeEvents();
        var machines = new NodeStateMachines("n1", 7, new Dictionary<string, IGaggleStateMachine> { ["text"] = new Text() }, events);
        Apply(machines, 1, new EntryEnvelope(EntryPayloadKind.Lock, 100, "n1", 7, 1, new LockCommand(LockCommandType.Acquire, "x", 1, 60_000, 0).Encode()));
        Apply(machines, 2, new EntryEnvelope(EntryPayloadKind.User, 101, "n1", 7, 2, Encoding.UTF8.GetBytes("a")));
        Apply(machines, 3, new EntryEnvelope(EntryPayloadKind.User, 102, "n1", 7, 3, Encoding.UTF8.GetBytes("b")));
        return (machines, events);
    }

    private static void Apply(NodeStateMachines machines, long index, EntryEnvelope envelope)
        => Assert.That(machines.TryApply(new Gaggle.Raft.LogEntry(index, 1, Gaggle.Raft.EntryKind.Normal, envelope.Encode()), out _), Is.True);

    private static IGaggleStateMachine Application(NodeStateMachines machines)
        => new Captured(machines.Application.SnapshotParts.Single().Part);

    /// <summary>The previous release's writer (format version 1), as it shipped.</summary>
    private static byte[] PreviousReleaseWriter(ProposalDeduplicator deduplicator, LockTable locks, IDictionary<string, IGaggleStateMachine> machines)
    {
        var writer = new WireWriter();
        writer.Byte(1);
        deduplicator.Write(writer);
        using (var lockStream = new MemoryStream())
        {
            locks.Write(lockStream);
            writer.Bytes(lockStream.GetBuffer().AsSpan(0, (int)lockStream.Length));
        }

        writer.VarUInt((ulong)machines.Count);
        foreach (var (name, machine) in machines.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            using var stream = new MemoryStream();
            machine.WriteSnapshot(stream);
            writer.String(name);
            writer.Bytes(stream.GetBuffer().AsSpan(0, (int)stream.Length));
        }

        return writer.ToArray();
    }

    private sealed class Captured(ISnapshotPart part) : IGaggleStateMachine
    {
        public void Apply(GaggleLogEntry entry) => throw new NotSupportedException();

        public void WriteSnapshot(Stream output) => part.WriteSnapshot(output);

        public void ReadSnapshot(Stream input) => part.ReadSnapshot(input);
    }
}
