namespace Gaggle.Raft;

/// <summary>
/// Membership changes (Raft thesis §4): the configuration is a log entry, one server is added or
/// removed at a time, and every node uses the latest configuration in its log, committed or not.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>The configuration in force is the latest configuration entry in the log, else the one the
/// snapshot carries, else the seed (<see cref="RaftConfig.Members"/>, or the members discovered so
/// far). A truncated configuration entry takes its configuration away with it (§4.1).</item>
/// <item>A leader proposes a change only once it has committed an entry of its own term (the 2015
/// correction to §4.1: otherwise a change from a deposed leader's term and one of the new leader's
/// could each be committed by majorities that do not overlap), only when the previous change has
/// committed, and only when the caller's expected configuration index is the current one.</item>
/// <item>Votes and acknowledgements count only from the voters of the counting node's own
/// configuration; a leader that is not among them (its removal is pending) does not count itself
/// (§4.2.2). Every node answers votes and appends by the Raft rules whatever its configuration says.</item>
/// <item>Learners receive the log but never campaign and never count; a learner is promoted only
/// when its log holds every entry the leader has committed and it answered within an election
/// timeout.</item>
/// </list>
/// </remarks>
internal sealed partial class RaftCore
{
    /// <summary>Configuration entries in the log after the snapshot, oldest first.</summary>
    private readonly List<(long Index, long Term, ClusterConfig Config)> _logConfigs = [];
    private ClusterConfig? _snapshotConfig;
    private long _snapshotConfigIndex;

    /// <summary>The index of the no-op this leader appended when elected.</summary>
    private long _termStartIndex;

    /// <summary>Voters' progress in the order of <see cref="Configuration"/>'s voters (null for this node); rebuilt when either changes.</summary>
    private Progress?[] _voterProgress = [];
    private bool _selfVoter;

    /// <summary>Configurations logged at or below this index never make this node a voter (see <see cref="NoVoterThrough"/>).</summary>
    private long _voterFloor;

    /// <summary>The configuration in force (see the type's remarks).</summary>
    public ClusterConfig Configuration { get; private set; } = null!;

    /// <summary>The index of the entry that logged <see cref="Configuration"/>; 0 for the seed.</summary>
    public long ConfigurationIndex { get; private set; }

    /// <summary>
    /// Since which configuration entry <paramref name="id"/> has been a member, by the configuration in
    /// force (see <see cref="ClusterConfig.AdmissionOf"/>); -1 when it is not a member.
    /// </summary>
    public long AdmissionOf(string id) => Configuration.AdmissionOf(id);

    /// <summary>Whether a configuration was ever logged here (then it wins over the seed).</summary>
    public bool ConfigurationLogged => _logConfigs.Count > 0 || _snapshotConfig is not null;

    /// <summary>Discovery mode, before any configuration was logged: the voters are learned from traffic up to the configured size.</summary>
    private bool Discovering => _members.IsDiscovery && !ConfigurationLogged;

    /// <summary>The number of voters a majority is counted against.</summary>
    private int VoterCount => Discovering ? _members.Size : Configuration.Voters.Count;

    /// <summary>Whether this node alone is the whole electorate.</summary>
    public bool IsSoleVoter => _selfVoter && VoterCount == 1;

    /// <summary>Whether this node may campaign: it is a voter of its own configuration and not discovering a full cluster's ids without being in it.</summary>
    public bool IsVoter => _selfVoter;

    /// <summary>
    /// Thesis §4.2.2: a voter whose removal is logged here but not committed may still be needed to
    /// elect a leader (the remaining voters may lack the removal, count this node as a voter, and
    /// need its vote, which it refuses them when its log is longer), so it still campaigns; it does
    /// not count its own vote, and a leader it becomes commits its removal and hands over.
    /// </summary>
    private bool VoterUntilRemovalCommits
        => ConfigurationIndex > _log.Committed && ConfigAt(_log.Committed) is var (config, index) && (index > _voterFloor || index == 0) && (config ?? SeedConfig()).IsVoter(Id);

    /// <summary>
    /// A node that starts over under the id of an earlier life (elastic mode: removed while paused or
    /// cut off, or a learner that heard no voter) must not become a voter again through what it
    /// replays of that life: a configuration at or below <paramref name="configurationIndex"/> (the
    /// highest its earlier life knew, or the removal it was told of) lists the id as that life's. Found
    /// by the simulation: a removed founder replaying the log from scratch met the configuration in
    /// which it had been the sole voter, was cut off there, elected itself and overwrote committed
    /// entries. Only a configuration logged after that index (its addition again, then its promotion)
    /// makes it a voter. A negative index clears the floor: another generation's log, whose indexes
    /// say nothing of the earlier life's.
    /// </summary>
    public void NoVoterThrough(long configurationIndex)
    {
        _voterFloor = configurationIndex < 0 ? 0 : Math.Max(_voterFloor, configurationIndex);
        UpdateConfiguration();
    }

    /// <summary>
    /// Proposes a single-server change (leader only). <paramref name="expectedIndex"/> is the
    /// configuration index the caller based it on (negative: any). Returns the outcome; on
    /// <see cref="ConfigChangeOutcome.Proposed"/> <paramref name="index"/> is the new entry's index.
    /// </summary>
    public ConfigChangeOutcome ProposeConfigChange(ConfigChange change, long expectedIndex, out long index, out string? error)
    {
        index = 0;
        error = null;
        if (Role != RaftRole.Leader)
        {
            return ConfigChangeOutcome.NotLeader;
        }

        if (_leadTransferee is not null)
        {
            error = "the leader is handing over leadership";
            return ConfigChangeOutcome.NotLeader;
        }

        if (expectedIndex >= 0 && expectedIndex != ConfigurationIndex)
        {
            error = $"the configuration is at index {ConfigurationIndex}, not the expected {expectedIndex}";
            return ConfigChangeOutcome.Stale;
        }

        if (ConfigurationIndex > _log.Committed)
        {
            error = $"the change at index {ConfigurationIndex} is not committed yet (commit index {_log.Committed})";
            return ConfigChangeOutcome.InProgress;
        }

        if (_log.Committed < _termStartIndex)
        {
            error = $"the new leader has not committed an entry of its term yet (its no-op at {_termStartIndex}, commit index {_log.Committed})";
            return ConfigChangeOutcome.InProgress;
        }

        if (Discovering)
        {
            error = "the cluster discovers its members (ClusterSize); membership changes need a member list";
            return ConfigChangeOutcome.Invalid;
        }

        var next = Configuration.Apply(change, _log.LastIndex + 1, out error);
        if (next is null)
        {
            return ConfigChangeOutcome.Invalid;
        }

        if (change.Type == ConfigChangeType.Promote
            && !IsCaughtUp(change.NodeId))
        {
            error = $"learner '{change.NodeId}' has not caught up: it holds entries up to {ProgressOf(change.NodeId)?.Match ?? 0} of the {_log.Committed} committed";
            return ConfigChangeOutcome.NotCaughtUp;
        }

        index = _log.LastIndex + 1;
        var entry = new LogEntry(index, Term, EntryKind.Configuration, next.Encode());
        _log.AppendNew(entry);
        RecordConfig(entry, next);
        _broadcastPending = true;
        MaybeCommit();
        return ConfigChangeOutcome.Proposed;
    }

    /// <summary>The snapshot of the state machines' bytes <paramref name="machines"/> at applied index <paramref name="index"/>, carrying the configuration as of that index.</summary>
    public RaftSnapshot CreateSnapshot(long index, ReadOnlySpan<byte> machines)
    {
        long oldest = Math.Max(_log.SnapshotIndex, _snapshot?.Index ?? 0);
        if (index > _log.Applied || index < oldest)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"A snapshot must be taken at an applied index not behind the last snapshot ({oldest}..{_log.Applied}).");
        }

        var (config, configIndex) = ConfigAt(index);
        return new RaftSnapshot(index, _log.Term(index), SnapshotFrame.Wrap(config, configIndex, machines));
    }

    /// <summary>The logged configuration in force at <paramref name="index"/> (null: the seed).</summary>
    private (ClusterConfig? Config, long Index) ConfigAt(long index)
    {
        for (int i = _logConfigs.Count - 1; i >= 0; i--)
        {
            if (_logConfigs[i].Index <= index)
            {
                return (_logConfigs[i].Config, _logConfigs[i].Index);
            }
        }

        return (_snapshotConfig, _snapshotConfigIndex);
    }

    private void InitConfiguration(IReadOnlyList<LogEntry> entries, RaftSnapshot? snapshot)
    {
        if (snapshot is not null)
        {
            (_snapshotConfig, _snapshotConfigIndex, _) = SnapshotFrame.Unwrap(snapshot.Data);
        }

        foreach (var entry in entries)
        {
            TryRecordConfig(entry);
        }

        UpdateConfiguration();
    }

    /// <summary>After entries from a leader were merged into the log: forgets truncated configuration entries and records new ones.</summary>
    private void SyncConfigsAfterMerge(IReadOnlyList<LogEntry> entries)
    {
        bool changed = false;
        while (_logConfigs.Count > 0 && _log.Term(_logConfigs[^1].Index) != _logConfigs[^1].Term)
        {
            _logConfigs.RemoveAt(_logConfigs.Count - 1);
            changed = true;
        }

        // Entries up to the snapshot's index are covered by its configuration, even those the log
        // retains behind it (a duplicated message may bring them again).
        long recorded = Math.Max(_logConfigs.Count > 0 ? _logConfigs[^1].Index : 0, _snapshot?.Index ?? 0);
        for (int i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (entry.Kind == EntryKind.Configuration && entry.Index > recorded && _log.MatchTerm(entry.Index, entry.Term))
            {
                changed |= TryRecordConfig(entry);
            }
        }

        if (changed)
        {
            UpdateConfiguration();
        }
    }

    /// <summary>After compaction to <paramref name="index"/>: the configuration in force there becomes the snapshot's.</summary>
    private void CompactConfigs(long index)
    {
        var (config, configIndex) = ConfigAt(index);
        _snapshotConfig = config;
        _snapshotConfigIndex = configIndex;
        _logConfigs.RemoveAll(c => c.Index <= index);
    }

    /// <summary>After a snapshot from the leader replaced the whole log: its configuration is the one in force.</summary>
    private void RestoreConfigs(ClusterConfig? config, long configIndex)
    {
        _logConfigs.Clear();
        _snapshotConfig = config;
        _snapshotConfigIndex = configIndex;
        UpdateConfiguration();
    }

    private bool TryRecordConfig(in LogEntry entry)
    {
        if (entry.Kind != EntryKind.Configuration)
        {
            return false;
        }

        if (!ClusterConfig.TryDecode(entry.Data, out var config))
        {
            // Every node skips the same malformed entry, so configurations stay identical.
            DroppedMessages++;
            return false;
        }

        _logConfigs.Add((entry.Index, entry.Term, config));
        return true;
    }

    private void RecordConfig(in LogEntry entry, ClusterConfig config)
    {
        _logConfigs.Add((entry.Index, entry.Term, config));
        UpdateConfiguration();
    }

    /// <summary>Sets the configuration in force and, on a leader, the followers it replicates to.</summary>
    private void UpdateConfiguration()
    {
        if (_logConfigs.Count > 0)
        {
            Configuration = _logConfigs[^1].Config;
            ConfigurationIndex = _logConfigs[^1].Index;
        }
        else if (_snapshotConfig is not null)
        {
            Configuration = _snapshotConfig;
            ConfigurationIndex = _snapshotConfigIndex;
        }
        else
        {
            Configuration = SeedConfig();
            ConfigurationIndex = 0;
        }

        _selfVoter = Configuration.IsVoter(Id) && (ConfigurationIndex > _voterFloor || ConfigurationIndex == 0);
        if (Role == RaftRole.Leader)
        {
            SyncProgress();
        }
    }

    private ClusterConfig SeedConfig()
    {
        if (_config.Members is { } members)
        {
            return new ClusterConfig(_config.Joining ? members.Where(m => m != Id) : members, []);
        }

        return new ClusterConfig(_members.Peers.Append(Id), []);
    }

    /// <summary>Leader: one progress per member of the configuration but itself (new ones start probing at the end of the log), none for anyone else.</summary>
    private void SyncProgress()
    {
        foreach (var member in Configuration.Members)
        {
            if (member != Id && !_progress.ContainsKey(member))
            {
                AddProgress(member);
            }
        }

        if (_progress.Count > Configuration.Voters.Count + Configuration.Learners.Count - (Configuration.Contains(Id) ? 1 : 0))
        {
            foreach (var peer in _progress.Keys.Where(p => !Configuration.Contains(p)).ToList())
            {
                _progress.Remove(peer);
            }
        }

        if (_leadTransferee is not null && !Configuration.IsVoter(_leadTransferee))
        {
            _leadTransferee = null;
        }

        RebuildVoterProgress();
    }

    private void RebuildVoterProgress()
    {
        var voters = Configuration.Voters;
        if (_voterProgress.Length != voters.Count)
        {
            _voterProgress = new Progress?[voters.Count];
        }

        for (int i = 0; i < voters.Count; i++)
        {
            _voterProgress[i] = voters[i] == Id ? null : _progress.GetValueOrDefault(voters[i]);
        }
    }

    /// <summary>
    /// The leader's view of the voters, by <paramref name="value"/>: this node's own value when it is
    /// a voter, each other voter's from its progress (0 when it has none). Returns how many were written.
    /// </summary>
    private int VoterValues(Span<long> values, long selfValue, Func<Progress, long> value)
    {
        int n = 0;
        for (int i = 0; i < _voterProgress.Length; i++)
        {
            var progress = _voterProgress[i];
            if (progress is null)
            {
                if (Configuration.Voters[i] == Id)
                {
                    values[n++] = selfValue;
                }
            }
            else
            {
                values[n++] = value(progress);
            }
        }

        return n;
    }

    /// <summary>
    /// §4.2.2: a leader whose removal has committed hands leadership to its most up-to-date voter and,
    /// once it has told it to campaign (or when there is none to tell), steps down; it never campaigns again.
    /// </summary>
    private void MaybeStepDownAfterRemoval()
    {
        if (Role != RaftRole.Leader || _selfVoter || ConfigurationIndex > _log.Committed)
        {
            return;
        }

        if (_timeoutNowSent)
        {
            BecomeFollower(Term, null);
            return;
        }

        if (_leadTransferee is null)
        {
            var successor = MostUpToDateFollower();
            if (successor is null)
            {
                BecomeFollower(Term, null);
                return;
            }

            TransferLeadership(successor);
        }
    }
}

/// <summary>What became of a proposed configuration change.</summary>
internal enum ConfigChangeOutcome
{
    /// <summary>Appended to the leader's log; it takes effect now and completes when it commits.</summary>
    Proposed,

    /// <summary>This node is not the leader (or it is handing leadership over): ask the leader.</summary>
    NotLeader,

    /// <summary>The previous change has not committed yet, or the new leader has not committed an entry of its term: retry shortly.</summary>
    InProgress,

    /// <summary>The learner to promote has not caught up with the leader yet: retry shortly.</summary>
    NotCaughtUp,

    /// <summary>The configuration moved on since the caller's expected index.</summary>
    Stale,

    /// <summary>The change does not apply to the current configuration (unknown node, already a member, last voter, ...).</summary>
    Invalid,
}
