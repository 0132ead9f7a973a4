namespace Gaggle.Raft;

/// <summary>
/// A cluster of one made by this node: an elastic cluster's founding, and an operator's forced new
/// cluster after a majority of the voters was lost for good (its log kept, its uncommitted tail moved
/// behind the new start).
/// </summary>
internal sealed partial class RaftCore
{
    /// <summary>
    /// Forms a new cluster with this node as its sole voter (an elastic cluster's founding, once the
    /// node won its generation's claim): logs the configuration {this node} at index 1 of the term after
    /// its own (term 1 for a node that never heard a leader) and <paramref name="first"/> (the driver's
    /// opening entry) at index 2, then campaigns at once (a sole voter wins by its own vote). Only a
    /// node that has never held a log or a snapshot may found; it is one that no configuration counts
    /// as a voter (a voter is promoted caught up), so the new cluster holds no vote or acknowledgement
    /// of it. A term it took from a cluster it heard but never joined (of an older generation) says
    /// nothing about the new one.
    /// </summary>
    /// <exception cref="InvalidOperationException">This node has a log or a snapshot.</exception>
    public void Found(ReadOnlyMemory<byte> first)
    {
        if (_log.LastIndex != 0 || _snapshot is not null || Configuration.Voters.Count != 0)
        {
            throw new InvalidOperationException(
                $"Node '{Id}' cannot found a cluster: only a node with no log (last index {_log.LastIndex}), no snapshot and no voters in its configuration may.");
        }

        // A node that heard a cluster it never joined has that cluster's term (and may have voted in
        // it): the founding entry's term follows it, as a term never goes back.
        Term++;
        VotedFor = null;
        // Nor does a rejoin it began there (a leader of that cluster took it for a member that lost its
        // log): the new cluster holds nothing it could have acknowledged. Still rejoining, the sole voter
        // would never campaign, and the generation it founded would never elect a leader (elastic seed 653).
        Rejoining = false;
        StartAlone(first);
    }

    /// <summary>
    /// An operator's recovery after a majority of the voters was lost for good: this node becomes the
    /// sole voter of a new cluster made of its own log. What it knows committed stays where it is. The
    /// entries after that (the tail: the lost majority may have committed them, or others in their
    /// place) count as committed too, the choice every such recovery makes, but they move behind the
    /// new cluster's start: the log becomes the known-committed prefix, the configuration {this node},
    /// the opening entry, then the tail's entries that <paramref name="open"/> keeps, all in a new term,
    /// and the node campaigns at once. A state machine therefore applies the tail as part of the new
    /// cluster, after its opening entry (a lock table: inside the new generation's hold-off, with its
    /// tokens), never at indexes the lost majority may have used for something else. The tail's
    /// configuration and no-op entries are dropped (the new configuration replaces them). Only for a new
    /// generation that no member of the old one is part of any more (the caller's claim ensures it).
    /// </summary>
    /// <param name="open">Given the tail's normal entries, in log order: the opening entry and the payloads to keep, in order.</param>
    public void ForceNewCluster(Func<IReadOnlyList<LogEntry>, (ReadOnlyMemory<byte> First, IReadOnlyList<ReadOnlyMemory<byte>> Kept)> open)
    {
        long known = _log.Committed;
        var tail = new List<LogEntry>();
        for (long index = known + 1; index <= _log.LastIndex; index++)
        {
            var entry = _log.Entry(index);
            if (entry.Kind == EntryKind.Normal)
            {
                tail.Add(entry);
            }
        }

        var (first, kept) = open(tail);
        Term++;
        VotedFor = null;
        _log.TruncateAfter(known);
        _logConfigs.RemoveAll(c => c.Index > known);
        Rejoining = false;
        StartAlone(first, kept);
    }

    /// <summary>Logs the configuration {this node}, <paramref name="first"/> and <paramref name="then"/> in the current term, then campaigns as the sole voter.</summary>
    private void StartAlone(ReadOnlyMemory<byte> first, IReadOnlyList<ReadOnlyMemory<byte>>? then = null)
    {
        long index = _log.LastIndex + 1;
        var alone = new ClusterConfig([Id], [], new Dictionary<string, long> { [Id] = index });
        var entry = new LogEntry(index, Term, EntryKind.Configuration, alone.Encode());
        _log.AppendNew(entry);
        RecordConfig(entry, alone);
        _log.AppendNew(new LogEntry(_log.LastIndex + 1, Term, EntryKind.Normal, first));
        foreach (var payload in then ?? [])
        {
            _log.AppendNew(new LogEntry(_log.LastIndex + 1, Term, EntryKind.Normal, payload));
        }

        BecomeFollower(Term, null);
        StartElection();
    }
}
