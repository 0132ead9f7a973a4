using Gaggle.Locks;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>
/// Everything the node builds from its committed log: the duplicate table, then one state machine per
/// payload kind (the lock table, the application's machines). Every committed entry takes the same
/// path: envelope decoded, duplicate dropped, the machine of its kind applied. Node snapshots hold the
/// duplicate table and every machine's parts by name.
/// </summary>
internal sealed class NodeStateMachines
{
    private readonly INodeStateMachine[] _byKind;
    private readonly NodeEvents _events;
    private readonly bool _forgetRemovedMembers;

    /// <param name="id">This node's id.</param>
    /// <param name="incarnation">This process's incarnation.</param>
    /// <param name="application">The application's state machines, by name.</param>
    /// <param name="events">Where applying reports what the node must carry out.</param>
    /// <param name="forgetRemovedMembers">Admissions (elastic mode): a configuration entry forgets the duplicate sessions of every origin it does not list.</param>
    public NodeStateMachines(string id, ulong incarnation, IDictionary<string, IGaggleStateMachine> application, NodeEvents events, bool forgetRemovedMembers = false)
    {
        _forgetRemovedMembers = forgetRemovedMembers;
        _events = events;
        Locks = new LockStateMachine(id, incarnation, events);
        Application = new ApplicationStateMachines(application, events);
        _byKind = new INodeStateMachine[2];
        _byKind[(int)EntryPayloadKind.User] = Application;
        _byKind[(int)EntryPayloadKind.Lock] = Locks;
    }

    /// <summary>The envelope <see cref="Observer"/> is shown for a <see cref="LockCommandType.MembersChanged"/>: a lock entry of nobody, without a stamp.</summary>
    internal static readonly EntryEnvelope MembersChangedEnvelope = new(EntryPayloadKind.Lock, 0, "", 0, 0, ReadOnlyMemory<byte>.Empty);

    public ProposalDeduplicator Deduplicator { get; } = new();

    /// <summary>Elastic mode: the members of the last configuration entry applied here; null before one, and after a snapshot was read (for the simulation's checks).</summary>
    internal IReadOnlySet<string>? LastAppliedMembers { get; private set; }

    public LockStateMachine Locks { get; }

    /// <summary>Committed entries without a valid envelope, or with a malformed lock command (counted in the node's dropped messages).</summary>
    public long MalformedEntries { get; private set; }

    /// <summary>
    /// Told of every entry with a valid envelope once the duplicate table decided on it (first time:
    /// applied; otherwise dropped as a duplicate): how the seeded simulation watches the history.
    /// </summary>
    public Action<long, EntryEnvelope, bool>? Observer { get; set; }

    public ApplicationStateMachines Application { get; }

    /// <summary>
    /// Applies one committed entry. Returns its envelope when it was an application or lock entry
    /// applied for the first time; false for no-ops, duplicates of retried appends and malformed entries.
    /// </summary>
    public bool TryApply(in LogEntry entry, out EntryEnvelope envelope)
    {
        envelope = default;
        if (_forgetRemovedMembers && entry.Kind == EntryKind.Configuration && ClusterConfig.TryDecode(entry.Data, out var config))
        {
            // A member removed here never has another entry applied under what the table remembers of it;
            // except at a forced generation's founding configuration, which the survivor's tail follows,
            // with other nodes' entries the table must still recognise as duplicates (RaftCore.ForceNewCluster).
            // Their sessions are forgotten at the next configuration, behind the whole tail.
            bool founding = config.IsFoundedAt(entry.Index);
            if (!founding)
            {
                Deduplicator.ForgetNonMembers(config);
            }

            var members = config.Members.ToHashSet(StringComparer.Ordinal);
            LastAppliedMembers = members;
            if (Locks.ApplyMembers(entry.Index, members, founding))
            {
                // Its waits ended too (see LockTable.GoneNodes.cs).
                Observer?.Invoke(entry.Index, MembersChangedEnvelope, true);
            }

            return false;
        }

        if (entry.Kind != EntryKind.Normal)
        {
            return false;
        }

        if (!EntryEnvelope.TryDecode(entry.Data, out envelope))
        {
            MalformedEntries++;
            _events.Dropped.Add(new DroppedMessage("(log)", $"entry {entry.Index} has no valid envelope", "malformed-entry"));
            return false;
        }

        if (!Deduplicator.FirstTime(envelope.Origin, envelope.Incarnation, envelope.Sequence, entry.Index))
        {
            Observer?.Invoke(entry.Index, envelope, false);
            return false;
        }

        var machine = _byKind[(int)envelope.Kind];
        machine.Apply(entry.Index, entry.Term, envelope);
        if (machine == Locks && Locks.LastCommand is null)
        {
            MalformedEntries++;
        }

        Observer?.Invoke(entry.Index, envelope, true);
        return true;
    }

    public byte[] WriteSnapshot() => NodeSnapshot.Write(Deduplicator, Locks.SnapshotParts, Application.SnapshotParts);

    /// <summary>Replaces every machine's state with a snapshot's (<see cref="FormatException"/> when it is not one).</summary>
    public void ReadSnapshot(ReadOnlyMemory<byte> data)
    {
        NodeSnapshot.Read(data, Deduplicator, Locks.SnapshotParts, Application.SnapshotParts);
        LastAppliedMembers = null;
    }
}
