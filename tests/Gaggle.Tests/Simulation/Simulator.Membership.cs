using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Membership runs (<see cref="ClusterShape.Membership"/>): during the chaos phases the current leader
/// adds learners (new nodes with fresh ids, empty storage and <see cref="RaftConfig.Joining"/>),
/// promotes them (retried while they catch up or the previous change commits), removes voters (itself
/// included) and learners, and hands leadership to a voter, growing the cluster from its initial
/// voters up to <see cref="ClusterShape.MaxMembers"/> members and shrinking it back to one voter, over
/// and over. A removed node stays on the network (it still ticks, hears broadcasts and may campaign
/// if it never learned of its removal) until a later step stops it for good; a stabilization stops
/// every node outside the committed configuration, and only the members must converge.
/// </summary>
internal sealed partial class Simulator
{
    /// <summary>Fresh ids a run may use beyond the initial voters.</summary>
    private const int SpareIds = 24;

    /// <summary>Nodes stopped for good (their storage stays, for the end-of-run log check).</summary>
    private readonly List<SimulatedNode> _retired = [];

    /// <summary>Every node that was a member of an applied configuration, or an initial voter, with the generation it was one in (elastic runs; 0 otherwise).</summary>
    private readonly HashSet<(long Generation, string Id)> _everMember = [];

    private readonly MembershipSimStats _membershipStats = new();

    /// <summary>By generation, the latest configuration entry applied anywhere and its index (none until one is).</summary>
    private readonly Dictionary<long, (ClusterConfig Config, long Index)> _appliedConfigs = [];

    /// <summary>A change that could not be proposed yet (the learner was catching up, the previous change had not committed): tried again first.</summary>
    private ConfigChange? _pendingChange;
    private bool _shrinking;

    /// <summary>The number of voters at which the cluster stops growing (or shrinking) and turns.</summary>
    private int _turnAt;
    private int _spareIdsUsed;

    /// <summary>The committed configuration of <paramref name="generation"/>: the latest applied, else the seed one (the initial voters; none in an elastic run).</summary>
    private ClusterConfig AppliedConfigOf(long generation)
        => _appliedConfigs.TryGetValue(generation, out var applied) ? applied.Config : new ClusterConfig(_shape.Elastic ? [] : _ids, []);

    private bool EverMember(long generation, string id) => _everMember.Contains((generation, id));

    /// <summary>A configuration entry some node applied: from then on it is the committed configuration of the node's generation.</summary>
    private void ObserveAppliedConfig(SimulatedNode node, in LogEntry entry)
    {
        long generation = node.Generation;
        long appliedIndex = _appliedConfigs.TryGetValue(generation, out var applied) ? applied.Index : 0;
        if (entry.Index <= appliedIndex || !ClusterConfig.TryDecode(entry.Data, out var config))
        {
            return;
        }

        if (appliedIndex == 0 && !_shape.Elastic)
        {
            _everMember.UnionWith(_ids.Select(id => (0L, id)));
            _membershipStats.MaxVoters = _membershipStats.MinVoters = _ids.Length;
        }

        var before = AppliedConfigOf(generation);
        int change = config.Voters.Count - before.Voters.Count;
        _membershipStats.VotersAdded += Math.Max(change, 0);
        _membershipStats.VotersRemoved += Math.Max(-change, 0);
        CountChanges(before, config);
        _appliedConfigs[generation] = (config, entry.Index);
        _configHistory.Add(new AppliedConfiguration(NowUs, generation, entry.Index, config));
        _everMember.UnionWith(config.Members.Select(id => (generation, id)));
        _membershipStats.Applied++;
        _membershipStats.MaxVoters = Math.Max(_membershipStats.MaxVoters, config.Voters.Count);
        _membershipStats.MinVoters = Math.Min(_membershipStats.MinVoters, config.Voters.Count);
        Trace($"  {node.Id} applies configuration {entry.Index}/t{entry.Term}{(_shape.Elastic ? $" of generation {generation}" : "")}: {config}");
    }

    /// <summary>One membership step on the current leader: a transfer, a pending change retried, or a change that grows or shrinks the cluster.</summary>
    private void ChangeMembership()
    {
        var leader = CurrentLeader();
        if (leader is null)
        {
            return;
        }

        if (_random.Next(40) == 0)
        {
            TransferLeadership();
            return;
        }

        // A retired node is never added again (a stabilization retires the joiners it finds not added).
        var change = _pendingChange is { } pending && _byId[pending.NodeId] is var target && (_nodes.Contains(target) || pending.Type == ConfigChangeType.Remove)
            && _random.Next(5) != 0 ? pending : ChooseChange(leader);
        _pendingChange = null;
        if (change is { } chosen)
        {
            Propose(leader, chosen);
        }
    }

    /// <summary>
    /// A change of the leader's configuration, biased to grow it up to <see cref="ClusterShape.MaxMembers"/>
    /// members, then shrink it to one voter, and so on (with an occasional change of mind).
    /// </summary>
    private ConfigChange? ChooseChange(SimulatedNode leader)
    {
        var config = leader.Core!.Configuration;
        int voters = config.Voters.Count;
        int learners = config.Learners.Count;
        if (_turnAt == 0 || (_shrinking ? voters <= _turnAt : voters >= _turnAt || voters + learners >= ClusterShape.MaxMembers && learners == 0))
        {
            // Turn: grow to 7 voters (or fewer), then shrink to 1 (or 2), and again.
            _shrinking = _turnAt != 0 && !_shrinking;
            _turnAt = _shrinking ? _random.Next(1, 3) : _random.Next(2) == 0 ? ClusterShape.MaxMembers : _random.Next(3, ClusterShape.MaxMembers + 1);
        }
        if (!_shrinking)
        {
            if (learners > 0 && (_random.Next(3) != 0 || voters + learners >= ClusterShape.MaxMembers))
            {
                return new ConfigChange(ConfigChangeType.Promote, config.Learners[_random.Next(learners)]);
            }

            return voters + learners < ClusterShape.MaxMembers && Joiner(config) is { } joiner ? new ConfigChange(ConfigChangeType.AddLearner, joiner.Id) : null;
        }

        if (learners > 0 && (voters == 1 || _random.Next(2) == 0))
        {
            return new ConfigChange(ConfigChangeType.Remove, config.Learners[_random.Next(learners)]);
        }

        if (voters == 1)
        {
            return null;
        }

        // The leader removes itself now and then: it must hand over and step down once that commits.
        string removed = config.IsVoter(leader.Id) && _random.Next(4) == 0 ? leader.Id : config.Voters[_random.Next(voters)];
        return new ConfigChange(ConfigChangeType.Remove, removed);
    }

    /// <summary>A node to add as a learner: one that joined earlier and was never added, else a new one (null when the spare ids ran out).</summary>
    private SimulatedNode? Joiner(ClusterConfig config)
    {
        var waiting = _nodes.Where(n => !config.Contains(n.Id) && !EverMember(0, n.Id) && !_ids.Contains(n.Id)).ToArray();
        if (waiting.Length > 0)
        {
            return waiting[_random.Next(waiting.Length)];
        }

        if (_spareIdsUsed == SpareIds)
        {
            return null;
        }

        var node = new SimulatedNode(this, $"n{_ids.Length + ++_spareIdsUsed}", NodeClock.Draw(_random));
        _byId[node.Id] = node;
        _nodes.Add(node);
        _onNetwork.Add(node.Id);
        _membershipStats.Joined++;
        Step++;
        StartNode(node);
        return node;
    }

    /// <summary>Proposes <paramref name="change"/> on the leader, with the expected configuration index right, absent or stale, and checks the outcome.</summary>
    private void Propose(SimulatedNode leader, ConfigChange change)
    {
        var core = leader.Core!;
        var before = core.Configuration;
        long beforeIndex = core.ConfigurationIndex;
        long expected = _random.Next(10) switch
        {
            < 5 => -1,
            < 9 => beforeIndex,
            _ => beforeIndex + 1 + _random.Next(3),
        };
        var outcome = core.ProposeConfigChange(change, expected, out long index, out string? error);
        Trace($"config change {change.Type} {change.NodeId} on {leader.Id} (term {core.Term}, {before} at {beforeIndex}, expected {expected}): {outcome}{(outcome == ConfigChangeOutcome.Proposed ? $" at {index}" : "")} {error}");
        bool expectedRight = expected < 0 || expected == beforeIndex;
        switch (outcome)
        {
            case ConfigChangeOutcome.Proposed:
                var wanted = before.Apply(change, index, out _);
                if (!expectedRight || !core.Configuration.Equals(wanted) || core.ConfigurationIndex != index
                    || core.Configuration.Members.Any(m => core.AdmissionOf(m) != wanted!.AdmissionOf(m)))
                {
                    throw new SafetyViolationException(
                        $"{leader.Id} proposed {change} at {index} on {before} at {beforeIndex} expecting {expected}: it now has {core.Configuration} at {core.ConfigurationIndex}");
                }

                _membershipStats.Proposed++;
                break;
            case ConfigChangeOutcome.Stale when expectedRight:
                throw new SafetyViolationException($"{leader.Id} refused {change} as stale although the expected index {expected} is its configuration's {beforeIndex}");
            case ConfigChangeOutcome.Stale:
            case ConfigChangeOutcome.InProgress:
            case ConfigChangeOutcome.NotCaughtUp:
            case ConfigChangeOutcome.NotLeader:
                _membershipStats.Refused[(int)outcome]++;
                _pendingChange = change;
                break;
        }

        Process(leader);
    }

    /// <summary>A node whose removal was applied stops for good (it may have run on, removed, for a while).</summary>
    private void RetireRemovedNode()
    {
        var removed = _nodes.Where(n => EverMember(n.Generation, n.Id) && !AppliedConfigOf(n.Generation).Contains(n.Id)).ToArray();
        if (removed.Length > 0)
        {
            Retire(removed[_random.Next(removed.Length)]);
        }
    }

    /// <summary>
    /// Stabilization: once a leader has committed its whole log, every node outside its configuration
    /// (removed, or joined and never added) stops for good; no later leader's configuration can hold
    /// one of them, since ids are never reused and no change is proposed while stabilizing. In an
    /// autopilot run only the removed ones stop: a joining node never added announces itself and the
    /// autopilot must add it. A member removed while paused or cut off stops too: it never learns of its
    /// removal (the leader no longer replicates to it), so it does not announce itself again. In an
    /// elastic run that is a member of the leader's generation: a node of another generation resets or
    /// adopts the leader's when it hears it.
    /// </summary>
    private void RetireNonMembers(SimulatedNode? leader)
    {
        if (!_shape.Membership || leader is null || leader.Core!.CommitIndex != leader.Core.LastIndex)
        {
            return;
        }

        long generation = leader.Generation;
        foreach (var node in _nodes.Where(n => n.Generation == generation && !leader.Core.Configuration.Contains(n.Id)
            && (Settings.Autopilot is null || EverMember(generation, n.Id))).ToList())
        {
            Retire(node);
        }
    }

    private void Retire(SimulatedNode node)
    {
        if (node.IsUp)
        {
            Crash(node);
        }

        _nodes.Remove(node);
        _onNetwork.Remove(node.Id);
        _retired.Add(node);
        _membershipStats.Retired++;
        Trace($"retire {node.Id} for good");
    }

    /// <summary>
    /// The leadership lease (GaggleLeadership): never two nodes trusting their leadership at the same
    /// real instant, each asked with its own clock's reading (clock rates differ, as the lease allows).
    /// </summary>
    private void CheckLeases()
    {
        SimulatedNode? trusting = null;
        foreach (var node in _nodes)
        {
            if (node.Core is { Role: RaftRole.Leader } core && node.Driver!.IsLeadershipTrusted(node.LocalUs))
            {
                if (trusting is not null)
                {
                    throw new SafetyViolationException(
                        $"leadership lease: {trusting.Id} (term {trusting.Core!.Term}) and {node.Id} (term {core.Term}) both trust their leadership at {NowUs} us");
                }

                trusting = node;
            }
        }
    }
}

/// <summary>What the membership changes of a run did.</summary>
internal sealed class MembershipSimStats
{
    /// <summary>New nodes started to join.</summary>
    public int Joined { get; set; }

    /// <summary>Changes the leader accepted.</summary>
    public int Proposed { get; set; }

    /// <summary>Changes refused for now and kept to retry, by <see cref="ConfigChangeOutcome"/> (in progress, not caught up, stale, not the leader).</summary>
    public int[] Refused { get; } = new int[Enum.GetValues<ConfigChangeOutcome>().Length];

    /// <summary>Configuration entries applied (committed).</summary>
    public int Applied { get; set; }

    /// <summary>Nodes stopped for good after their removal.</summary>
    public int Retired { get; set; }

    /// <summary>Voters added and removed by applied configurations.</summary>
    public int VotersAdded { get; set; }

    public int VotersRemoved { get; set; }

    public int MaxVoters { get; set; }

    public int MinVoters { get; set; } = int.MaxValue;

    /// <summary>Members added (as learners), members removed, learners promoted and voters demoted by applied configurations.</summary>
    public int MembersAdded { get; set; }

    public int MembersRemoved { get; set; }

    public int Promoted { get; set; }

    public int Demoted { get; set; }

    /// <summary>Autopilot runs: nodes stopped for good (not only after their removal) and paused.</summary>
    public int Stopped { get; set; }

    public int Paused { get; set; }

    /// <summary>The autopilot made the changes.</summary>
    public bool Autopilot { get; set; }
}
