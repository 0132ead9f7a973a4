namespace Gaggle.Runtime;

/// <summary>
/// The application's state machines (<see cref="GaggleOptions.StateMachines"/>) as one node state
/// machine: every committed application entry goes to each of them, and to the node's Committed
/// event and readers when someone listens.
/// </summary>
internal sealed class ApplicationStateMachines(IDictionary<string, IGaggleStateMachine> machines, NodeEvents events) : INodeStateMachine
{
    /// <summary>Whether committed entries are handed out to the Committed event and readers.</summary>
    public bool Publish { get; set; }

    public IEnumerable<(string Name, ISnapshotPart Part)> SnapshotParts
        => machines.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => (m.Key, (ISnapshotPart)new Part(m.Value)));

    public void Apply(long index, long term, in EntryEnvelope envelope)
    {
        events.AppliedCount++;
        if (machines.Count == 0 && !Publish)
        {
            return;
        }

        var entry = new GaggleLogEntry(index, term, Raft.EntryKind.Normal, envelope.Payload, envelope.Origin);
        foreach (var machine in machines.Values)
        {
            // A state machine that throws would leave replicas diverged: the node stops.
            machine.Apply(entry);
        }

        if (Publish)
        {
            events.Published.Add(entry);
        }
    }

    private sealed class Part(IGaggleStateMachine machine) : ISnapshotPart
    {
        public void WriteSnapshot(Stream output) => machine.WriteSnapshot(output);

        public void ReadSnapshot(Stream input) => machine.ReadSnapshot(input);
    }
}
