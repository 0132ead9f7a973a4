using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Elastic runs (<see cref="ClusterShape.Elastic"/>): no member list. Every instance is a new member id
/// (a display name and a random suffix) with empty storage, knowing no cluster; instances start at
/// random times, several at the same moment, read the recorded generation from a shared
/// <see cref="SimulatedGenerationStore"/> and announce themselves; whoever has heard no member for the
/// founding wait claims the next generation, and the leaders' autopilot adds, promotes, demotes and
/// removes members. The simulator plays GaggleNode's part around each driver: the driver's claims and
/// confirmations go to the store off the loop (a random delay; they may fail; the store may lose its value)
/// and their results come back as driver inputs; a node whose generation a newer one replaced resets
/// (new driver, empty storage, same id; its callers' requests fail and their holds are lost). Amid the
/// chaos, instances start, stop for good, are redeployed (one stops, a new one starts), die (a
/// replacement starts later, with a new id: an elastic instance keeps its state in memory), pause past
/// the member timeout, are cut from the hub, and now and then all die at once. Every Raft property is
/// checked per generation (each is a cluster of its own), the lock clients' beliefs across
/// generations, and a generation is founded once. A stabilization must end with one generation among
/// the live instances, one leader, every instance a member, the voters balanced and the store's value
/// at least the live generation.
/// </summary>
internal sealed partial class Simulator
{
    /// <summary>Member ids an elastic run makes at most (beyond it, only an instance to keep one up).</summary>
    private const int MaxInstances = 80;

    private const string SuffixAlphabet = "abcdefghijklmnopqrstuvwxyz234567";

    private readonly SimulatedGenerationStore _store = new();

    /// <summary>Instances waiting for their start time (not yet in play).</summary>
    private readonly List<(long AtUs, SimulatedNode Node)> _pendingStarts = [];

    /// <summary>The logs nodes held before they reset (for the end-of-run log check of their generation).</summary>
    private readonly List<(string Id, long Generation, SimulatedStorage Storage)> _logsBeforeReset = [];

    /// <summary>The logs of clusters closed by a founding of their generation again, with a key of their own (negative) for the end-of-run log check.</summary>
    private readonly Dictionary<SimulatedStorage, long> _closedLogs = [];

    /// <summary>Who founded each generation, and when.</summary>
    private readonly Dictionary<long, (string Founder, long AtUs)> _founders = [];
    private readonly HashSet<long> _foundedNumbers = [];
    private int _closedClusters;

    private readonly ElasticSimStats _elasticStats = new();
    private int _instances;

    /// <summary>A stabilization healed the store: its operations no longer fail.</summary>
    private bool _storeHealed;

    /// <summary>When the cuts from the hub heal by themselves (without <see cref="ClusterShape.UnheardGenerations"/>), or long.MaxValue.</summary>
    private long _hubHealsAtUs = long.MaxValue;

    /// <summary>
    /// Elastic runs: the longest a message stays in flight (half an election timeout); then it is
    /// delivered, or lost if it cannot be (partition, pause, the node gone). Redis pub/sub delivers
    /// within milliseconds or never (it keeps no queue, and a process's buffers die with it), and the
    /// generation rules lean on that timing: a generation taken for dead after the founding wait
    /// (several election timeouts of silence) must really have been silent, and a cluster founded
    /// then gets no message of one that ended before it, even of one with the same generation.
    /// </summary>
    private long MaxLatencyUs => Settings.ElectionTicksMin * SimulationSettings.TickMs * 1000L / 2;

    /// <summary>The run's first instances: a few start moments, the first now; instances that share a moment start in the same step.</summary>
    private void ScheduleInitialInstances()
    {
        int moments = _random.Next(1, _shape.Size + 1);
        var at = new long[moments];
        for (int i = 1; i < moments; i++)
        {
            // Some during the bootstrap wait (racing claims), some after a cluster formed.
            at[i] = NowUs + _random.NextInt64(0, 3 * Settings.Elastic!.MemberTimeoutUs);
        }

        for (int i = 0; i < _shape.Size; i++)
        {
            ScheduleStart(NewInstance(), i == 0 ? NowUs : at[_random.Next(moments)]);
        }

        StartDueInstances();
    }

    /// <summary>A new process: a new member id (GaggleIdentity: the display name, a dot, a random suffix; numbered here for readable traces).</summary>
    private SimulatedNode NewInstance()
    {
        var suffix = new string([.. Enumerable.Range(0, 3).Select(_ => SuffixAlphabet[_random.Next(SuffixAlphabet.Length)])]);
        var node = new SimulatedNode(this, $"w{++_instances}.{suffix}", NodeClock.Draw(_random));
        _byId[node.Id] = node;
        return node;
    }

    private void ScheduleStart(SimulatedNode node, long atUs)
    {
        _pendingStarts.Add((atUs, node));
        Trace($"instance {node.Id} will start at {atUs} us");
    }

    /// <summary>Whether <paramref name="count"/> more instances fit: at most <see cref="ClusterShape.MaxMembers"/> in play or waiting to start.</summary>
    private bool MayStartInstances(int count)
        => _nodes.Count + _pendingStarts.Count + count <= ClusterShape.MaxMembers && _instances + count <= MaxInstances;

    private void StartDueInstances()
    {
        for (int i = 0; i < _pendingStarts.Count;)
        {
            if (_pendingStarts[i].AtUs <= NowUs)
            {
                var node = _pendingStarts[i].Node;
                _pendingStarts.RemoveAt(i);
                StartPending(node);
            }
            else
            {
                i++;
            }
        }
    }

    private void StartPending(SimulatedNode node)
    {
        _nodes.Add(node);
        _onNetwork.Add(node.Id);
        _elasticStats.Started++;
        StartNode(node);
    }

    /// <summary>GaggleNode.StartAsync in elastic mode: the driver from the options, then the generation the store records (StartGenerationAsync).</summary>
    private void StartInstance(SimulatedNode node, ulong incarnation, int randomSeed)
    {
        node.Start(history => Settings.CreateElasticDriverSettings(node.Id, randomSeed, incarnation, history), incarnation, Settings.ClientsPerNode);
        long recorded = _store.Value;
        node.Driver!.StartGeneration(recorded, live: false);
        Trace($"start instance {node.Id} incarnation {incarnation}: the store records generation {recorded}");
        Process(node);
    }

    /// <summary>
    /// Runs the earliest instance start or store operation due by <paramref name="limitUs"/> (the next
    /// tick), moving time on to it; with no node up (<paramref name="limitUs"/> is long.MaxValue) and
    /// nothing pending, an instance starts now. False when nothing was due.
    /// </summary>
    private bool RunElasticEventBefore(long limitUs)
    {
        long startDue = _pendingStarts.Count == 0 ? long.MaxValue : _pendingStarts.Min(p => p.AtUs);
        long storeDue = _store.NextDueUs == long.MaxValue ? long.MaxValue : Math.Max(_store.NextDueUs, _scriptStoreSlowUntilUs);
        int oldest = _network.OldestPosition();
        long deliveryDue = oldest < 0 ? long.MaxValue : _network.PeekAt(oldest).SentAtUs + MaxLatencyUs;
        long due = Math.Min(Math.Min(startDue, storeDue), Math.Min(_hubHealsAtUs, deliveryDue));
        if (due == long.MaxValue && limitUs == long.MaxValue)
        {
            StartInstanceWhenNoneIsUp();
            return true;
        }

        if (due > limitUs)
        {
            return false;
        }

        NowUs = Math.Max(NowUs, due);
        if (due == deliveryDue)
        {
            Deliver(_network.TakeAt(oldest));
        }
        else if (due == _hubHealsAtUs)
        {
            Heal();
        }
        else if (startDue <= storeDue)
        {
            StartDueInstances();
        }
        else
        {
            RunStoreOperation(_store.TakeDue(NowUs)!);
        }

        return true;
    }

    /// <summary>
    /// A partition of an elastic run: nodes cut from the hub, each in a way the seed allows. Without
    /// <see cref="ClusterShape.UnheardGenerations"/> the cuts heal within two election timeouts (a dropped
    /// connection to Redis comes back; a generation's leader cut longer would be taken for dead).
    /// </summary>
    private string CutFromHub()
    {
        if (_random.Next(4) == 0)
        {
            return HubOutage();
        }

        var cuts = _network.CutFromHub(_random, Settings.Elastic!.Cuts, id => _shape.UnheardGenerations || MayFallSilent(_byId[id]));
        string described = string.Join(", ", cuts.Select(c => $"{c.Key} {c.Value.ToString().ToLowerInvariant()}"));
        if (!_shape.UnheardGenerations)
        {
            _hubHealsAtUs = NowUs + ShortSilenceUs();
            foreach (var id in cuts.Keys)
            {
                _byId[id].SilenceEndsAtUs = _hubHealsAtUs;
            }

            described += $" until {_hubHealsAtUs} us";
        }

        return described;
    }

    /// <summary>
    /// Redis goes down for one to three member timeouts: no node hears or reaches the store, those that
    /// start meanwhile neither. Every live generation is unheard for longer than the founding wait, but
    /// the store is unreachable too: a node waiting to found counts no silence until it answers again
    /// (GenerationTracker). Members of a generation keep their state; its learners start over.
    /// </summary>
    private string HubOutage()
    {
        long memberTimeoutUs = Settings.Elastic!.MemberTimeoutUs;
        _network.HubDown = true;
        _hubHealsAtUs = NowUs + _random.NextInt64(memberTimeoutUs, (3 * memberTimeoutUs) + 1);
        foreach (var node in _nodes)
        {
            node.SilenceEndsAtUs = Math.Max(node.SilenceEndsAtUs, _hubHealsAtUs);
        }

        _elasticStats.HubOutages++;
        return $"the hub is down until {_hubHealsAtUs} us";
    }

    /// <summary>
    /// Without <see cref="ClusterShape.UnheardGenerations"/>: a node falls silent (a cut, a short pause)
    /// only a bootstrap wait after its last silence ended, so that silences never add up to a founding
    /// wait: its generation, if it leads it, is heard in between, and it hears the others.
    /// </summary>
    private bool MayFallSilent(SimulatedNode node)
        => NowUs >= node.SilenceEndsAtUs + (ElasticSettings.BootstrapElectionTimeouts * Settings.ElectionTicksMax * SimulationSettings.TickMs * 1000L);

    /// <summary>Every node reaches every other, and the hub, again.</summary>
    public void Heal()
    {
        _network.Heal();
        _hubHealsAtUs = long.MaxValue;
        Trace($"heal");
    }

    /// <summary>A silence a live generation may keep without being taken for dead: one to two election timeouts (the founding wait is four or more).</summary>
    private long ShortSilenceUs()
    {
        long electionUs = Settings.ElectionTicksMax * SimulationSettings.TickMs * 1000L;
        return _random.NextInt64(electionUs, 2 * electionUs + 1);
    }

    /// <summary>
    /// Without <see cref="ClusterShape.UnheardGenerations"/>: whether <paramref name="node"/> may pause past
    /// the member timeout and its generation still be heard: it is no voter of its configuration, or
    /// the other voters (at least two) are all in play, up and not paused, so they keep a leader.
    /// </summary>
    private bool MayPausePastFoundingWait(SimulatedNode node)
    {
        var config = node.Core?.Configuration;
        if (config is null || !config.IsVoter(node.Id))
        {
            return true;
        }

        var others = config.Voters.Where(v => v != node.Id).ToList();
        return others.Count >= 2 && others.TrueForAll(v => _byId.TryGetValue(v, out var voter) && _nodes.Contains(voter)
            && voter.IsUp && !voter.IsPausedAt(NowUs) && !_network.IsCut(v) && voter.Generation == node.Generation);
    }

    /// <summary>Every instance is gone: the earliest waiting one starts now, else a new one.</summary>
    private void StartInstanceWhenNoneIsUp()
    {
        if (_pendingStarts.Count > 0)
        {
            var first = _pendingStarts.MinBy(p => p.AtUs);
            _pendingStarts.Remove(first);
            StartPending(first.Node);
        }
        else
        {
            StartPending(NewInstance());
        }
    }

    /// <summary>New instances start at the same moment (one to three).</summary>
    private void StartInstances()
    {
        int count = _random.Next(1, 4);
        for (int i = 0; i < count && MayStartInstances(1); i++)
        {
            StartPending(NewInstance());
        }
    }

    /// <summary>
    /// An instance dies (its process and its state are gone); most of the time a replacement, a new
    /// instance, starts later. As with a stop for good, only while the voters left make a majority of
    /// every configuration of its generation (see <see cref="MayStop"/>).
    /// </summary>
    private void CrashInstance()
    {
        var candidates = _nodes.Where(n => n.IsUp && MayStop(n)).ToArray();
        if (candidates.Length == 0)
        {
            return;
        }

        var leaders = candidates.Where(n => n.Core!.Role == RaftRole.Leader).ToArray();
        var node = leaders.Length > 0 && _random.Next(2) == 0 ? leaders[_random.Next(leaders.Length)] : candidates[_random.Next(candidates.Length)];
        Trace($"instance {node.Id} dies");
        _elasticStats.Died++;
        Retire(node);
        if (_random.Next(4) != 0 && MayStartInstances(1))
        {
            ScheduleStart(NewInstance(), NowUs + _random.NextInt64(0, 2 * Settings.Elastic!.MemberTimeoutUs));
        }
    }

    /// <summary>A redeploy of one instance: it stops for good (if it may) and a new one starts in its place.</summary>
    private void Redeploy()
    {
        var candidates = _nodes.Where(MayStop).ToArray();
        if (candidates.Length == 0)
        {
            return;
        }

        var node = candidates[_random.Next(candidates.Length)];
        Trace($"redeploy {node.Id}");
        _elasticStats.Redeployed++;
        Retire(node);
        StartPending(NewInstance());
    }

    /// <summary>
    /// The store loses its value (evicted, flushed, failed over). In a run with unheard generations it
    /// may happen at any time (one roll in four while instances run): a generation unheard meanwhile (every
    /// member paused, or cut) may see a newcomer found its number again, under another tag, or restore
    /// its value after a newer one formed and lost it, and the fence must keep them from acting at once.
    /// Otherwise only while no instance runs (a live generation's leader restores it).
    /// </summary>
    private void LoseGeneration()
    {
        if (!_nodes.Any(n => n.IsUp) || (_shape.UnheardGenerations && _random.Next(4) == 0))
        {
            _store.Lose();
            Trace($"the generation store loses its value");
        }
    }

    /// <summary>
    /// Every running instance stops (a full outage, or a redeploy of everything at once); one to five new
    /// ones start later, some at the same moment. An instance paused meanwhile (its host frozen) lives on:
    /// when it resumes, its generation is gone and a newer one replaces it. In a run whose store may
    /// lose its value, half the outages take the store's value with them (Redis restarted without persistence).
    /// </summary>
    private void Outage()
    {
        Trace($"outage: every running instance stops");
        _elasticStats.Outages++;
        foreach (var node in _nodes.Where(n => !n.IsPausedAt(NowUs)).ToList())
        {
            Retire(node);
        }

        if (Settings.Weights.LoseGeneration > 0 && _random.Next(2) == 0)
        {
            LoseGeneration();
        }

        int count = _random.Next(1, 6);
        long first = NowUs + _random.NextInt64(0, Settings.Elastic!.MemberTimeoutUs);
        for (int i = 0; i < count && MayStartInstances(1); i++)
        {
            ScheduleStart(NewInstance(), _random.Next(2) == 0 ? first : NowUs + _random.NextInt64(0, 2 * Settings.Elastic.MemberTimeoutUs));
        }
    }

    /// <summary>
    /// Stabilization: the store stops failing and every waiting instance starts now. If every instance in
    /// play is stranded (none, or each a member of a generation whose live voters are no majority: a
    /// majority of voters stopped for good, or one that survived an outage paused), the cluster takes no
    /// writes and never guesses: a voter of it that lives keeps announcing itself, so no newcomer founds
    /// a generation. The operator then forces a new generation on one stranded voter, or stops the
    /// stranded instances, and a new instance starts.
    /// </summary>
    private void HealInstances()
    {
        _storeHealed = true;
        foreach (var (_, node) in _pendingStarts.ToList())
        {
            _pendingStarts.RemoveAll(p => p.Node == node);
            StartPending(node);
        }

        OperatorStepsIn();
    }

    /// <summary>
    /// The operator's part of <see cref="HealInstances"/>, also checked now and then while the run
    /// stabilizes: a voter promoted a moment before it died (its promotion not yet committed) strands
    /// its generation as surely as a death seen at healing, with nothing left to die afterwards.
    /// </summary>
    private void OperatorStepsIn()
    {
        var withState = _nodes.Where(n => n.IsUp && (n.Core!.LastIndex > 0 || n.Core.Snapshot is not null)).ToList();
        // Only a voter (by its own configuration, committed or not) can elect a leader; when every such
        // voter is stranded, nothing can, whatever the learners believe.
        // A voter that is not stranded by its own configuration but can win no election (a stale one:
        // removed while paused, it resumed still a voter in its own eyes, and the others' logs are ahead
        // of its own) does not keep a stranded leader's generation alive either (unheard seed 2146).
        var voters = withState.Where(n => n.Core!.Configuration.IsVoter(n.Id)).ToList();
        if (voters.Count > 0 && (voters.TrueForAll(n => Stranded(n) || (!CanWin(n) && voters.Exists(Stranded))) || (CurrentLeader() is null && !voters.Exists(CanWin))))
        {
            // A voter of a generation that lost its majority lives and announces itself: nobody founds by
            // itself. The operator either forces the next generation on one stranded voter, which keeps
            // its state (ForceNewGenerationAsync; see Simulator.Forced.cs), or gives the state up: the
            // stranded instances stop, and newcomers found the next generation.
            if (TryForceNewGeneration(voters))
            {
                return;
            }

            foreach (var stranded in voters)
            {
                Trace($"the operator stops stranded instance {stranded.Id} (generation {stranded.Generation} lost its majority of voters)");
                _elasticStats.StrandedStopped++;
                Retire(stranded);
            }
        }

        if (_nodes.TrueForAll(Stranded))
        {
            Trace($"every instance in play is stranded: a new one starts");
            StartPending(NewInstance());
        }
    }

    /// <summary>
    /// Whether voter <paramref name="node"/> could win an election: the live voters of its configuration
    /// whose logs are no more up to date than its own (Raft §5.4.1: the others refuse it) are a majority.
    /// When no live voter can, the generation is as stuck as a stranded one: a voter promoted by a
    /// configuration that only the most up-to-date voter holds died, say, and the voters that could
    /// still win under the older configuration need that voter's vote, which it refuses.
    /// </summary>
    private bool CanWin(SimulatedNode node)
    {
        var core = node.Core!;
        int votes = core.Configuration.Voters.Count(v => _byId.TryGetValue(v, out var voter) && _nodes.Contains(voter) && voter.IsUp
            && voter.Generation == node.Generation && voter.Core is { } other
            && other.Log.IsUpToDate(core.LastIndex, core.Log.LastTerm));
        return votes >= Quorum.Majority(core.Configuration.Voters.Count);
    }

    /// <summary>Whether <paramref name="node"/> belongs to a generation whose voters in play and up are no majority of its configuration's.</summary>
    private bool Stranded(SimulatedNode node)
    {
        var core = node.Core!;
        if (core.LastIndex == 0 && core.Snapshot is null)
        {
            return false;
        }

        var voters = core.Configuration.Voters;
        int live = voters.Count(v => _byId.TryGetValue(v, out var voter) && _nodes.Contains(voter) && voter.IsUp && voter.Generation == node.Generation);
        return live < Quorum.Majority(voters.Count);
    }

    /// <summary>
    /// An elastic run has settled when every live instance is of the leader's generation (the caller
    /// requires each one a member following that leader, hence one leader) and the store records at
    /// least that generation.
    /// </summary>
    private bool GenerationsSettled(SimulatedNode leader)
        => !_shape.Elastic || (_nodes.TrueForAll(n => n.Generation == leader.Generation) && (_store.Value == leader.Generation || GenerationIds.IsNewer(_store.Value, leader.Generation)));

    private ElasticSimStats ElasticStats()
    {
        _elasticStats.Store = _store.Stats;
        _elasticStats.HighestGeneration = _foundedNumbers.Count == 0 ? 0 : _foundedNumbers.Max();
        _elasticStats.GenerationsCommitted = _checkers.GenerationsCommitted;
        _elasticStats.MostOriginsRemembered = _nodes.Where(n => n.Driver is not null).Select(n => n.Driver!.Machines.Deduplicator.Origins).DefaultIfEmpty().Max();
        return _elasticStats;
    }

    /// <summary>Counts what a node's events say of admissions (elastic runs only).</summary>
    public void CountAdmissions(int refused, int givenUp)
    {
        _elasticStats.StaleAdmissionRefused += refused;
        _elasticStats.GivenUpOnReadmission += givenUp;
    }
}
