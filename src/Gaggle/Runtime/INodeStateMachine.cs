namespace Gaggle.Runtime;

/// <summary>
/// A state machine of the node, fed from the committed log: the lock table and the application's
/// state machines alike. The driver applies every committed entry, once (after the duplicate table),
/// to the machine registered for the entry's payload kind, and snapshots every machine by name.
/// </summary>
internal interface INodeStateMachine
{
    /// <summary>Applies the committed entry at <paramref name="index"/> (its envelope decoded).</summary>
    void Apply(long index, long term, in EntryEnvelope envelope);

    /// <summary>The machine's parts in a node snapshot, by stable name.</summary>
    IEnumerable<(string Name, ISnapshotPart Part)> SnapshotParts { get; }
}

/// <summary>One named piece of a node snapshot.</summary>
internal interface ISnapshotPart
{
    void WriteSnapshot(Stream output);

    void ReadSnapshot(Stream input);
}
