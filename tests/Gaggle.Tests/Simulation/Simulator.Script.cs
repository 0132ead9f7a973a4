using Gaggle.Channels;
using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Scripted elastic runs: the same simulator (the drivers that ship, GaggleNode's part around them, the
/// generation store and every check), but a script instead of the seed's adversary decides what
/// happens: which instances start, pause, stop, hear nothing, or when the store answers slowly. The seed
/// still draws the settings and the order of deliveries, so a script replays exactly. A script reaches
/// situations the random adversary avoids or meets too rarely, one rule at a time
/// (see ElasticRuleScenarioTests).
/// </summary>
internal sealed partial class Simulator
{
    /// <summary>Messages a script loses (a node that hears nothing, or whose answers do not arrive); null: none.</summary>
    private Func<Envelope, bool>? _scriptLoses;

    /// <summary>Until then no store operation completes (a store answering slowly); long.MinValue: none held.</summary>
    private long _scriptStoreSlowUntilUs = long.MinValue;
    private bool _scriptHoldsReleases;
    private bool _scriptLosesConfirmAnswers;

    /// <summary>Runs <paramref name="script"/> on an elastic simulation of <paramref name="seed"/> (its settings adjusted by <paramref name="adjust"/>): the first failure, with the trace of its last steps, or null.</summary>
    public static SimulationFailure? RunScript(int seed, Action<Simulator> script) => RunScript(seed, null, script);

    /// <inheritdoc cref="RunScript(int, Action{Simulator})"/>
    public static SimulationFailure? RunScript(int seed, Func<ElasticSimSettings, ElasticSimSettings>? adjust, Action<Simulator> script, long? leaseMs = null)
    {
        var sim = new Simulator(seed, ClusterShape.ElasticOf(0), Workload.Mixed, chaosSteps: 0, trace: true, LossModel.Default, lockReads: false);
        sim.Settings = sim.Settings with
        {
            Elastic = adjust is null ? sim.Settings.Elastic : adjust(sim.Settings.Elastic!),
            LeaseMs = leaseMs ?? sim.Settings.LeaseMs,
        };
        sim._storeHealed = true;
        try
        {
            script(sim);
            sim.CheckAllLogsMatch();
            return null;
        }
        catch (Exception exception) when (exception is SafetyViolationException or LockSimViolation or LinearizabilityViolation)
        {
            return sim.Failure(exception.Message);
        }
        catch (Exception exception)
        {
            return sim.Failure($"unexpected {exception.GetType().Name}: {exception.Message}{Environment.NewLine}{exception.StackTrace}");
        }
    }

    public IReadOnlyList<SimulatedNode> Instances => _nodes;

    public long MemberTimeoutUs => Settings.Elastic!.MemberTimeoutUs;

    public long StoreValue => GenerationIds.NumberOf(_store.Value);

    /// <summary>The generations founded so far.</summary>
    /// <summary>The numbers of the generations founded so far, in founding order (one per id).</summary>
    public IReadOnlyCollection<long> Founded => _founders.OrderBy(f => f.Value.AtUs).Select(f => GenerationIds.NumberOf(f.Key)).ToList();

    /// <summary>The committed configuration of <paramref name="generation"/> (the latest some node applied).</summary>
    /// <summary>The committed configuration of <paramref name="generation"/>: an id, or a bare number (the generation founded with that number first).</summary>
    public ClusterConfig CommittedConfiguration(long generation)
        => AppliedConfigOf(GenerationIds.TagOf(generation) != 0 || generation == 0 ? generation
            : _founders.Keys.Where(id => GenerationIds.NumberOf(id) == generation).OrderBy(id => _founders[id].AtUs).FirstOrDefault(generation));

    public bool ClaimPendingBy(SimulatedNode node) => _store.ClaimPendingBy(node);

    /// <summary>A new instance starts now.</summary>
    public SimulatedNode StartNewInstance()
    {
        var node = NewInstance();
        StartPending(node);
        return node;
    }

    /// <summary>Lets time run (deliveries in random order, within the run's latency; ticks; store operations) until <paramref name="done"/>; a liveness failure after <paramref name="withinUs"/>.</summary>
    public void RunUntil(Func<bool> done, long withinUs, string what)
    {
        long deadline = NowUs + withinUs;
        while (!done())
        {
            if (NowUs > deadline)
            {
                throw new SafetyViolationException($"liveness: not within {withinUs} us: {what}; {string.Join("; ", _nodes.Select(n => n.Describe()))}; store {_store.Value}");
            }

            Step++;
            if (_network.Count > 0 && _random.Next(2) == 0)
            {
                DeliverRandom();
            }
            else
            {
                TickNext();
            }

            CheckLeases();
            ProgressDepartures();
        }
    }

    /// <summary>Lets time run for <paramref name="us"/> as <see cref="RunUntil(Func{bool}, long, string)"/> does.</summary>
    public void RunScriptFor(long us)
    {
        long until = NowUs + us;
        RunUntil(() => NowUs >= until, us + ElectionTimeoutUs, "time runs on");
    }

    /// <summary>The whole cluster has formed: one leader, every instance a member of its committed configuration, with <paramref name="voters"/> voters.</summary>
    public bool Formed(int voters)
    {
        var leader = Leader;
        if (leader is null)
        {
            return false;
        }

        var config = CommittedConfiguration(leader.Generation);
        return config.Voters.Count == voters && leader.Core!.Configuration.Equals(config)
            && _nodes.TrueForAll(n => config.Contains(n.Id) && n.Core!.LeaderId == leader.Id && n.Core.Configuration.Equals(config) && n.Applied == leader.Core.CommitIndex);
    }

    public void Pause(SimulatedNode node, long us)
    {
        node.PausedUntilUs = NowUs + us;
        node.NextTickAtUs = Math.Max(node.NextTickAtUs, node.PausedUntilUs);
        Trace($"script: pause {node.Id} ({node.Core!.Role}) for {us} us");
    }

    public void Resume(SimulatedNode node)
    {
        node.PausedUntilUs = 0;
        node.NextTickAtUs = NowUs + node.Clock.RealSpan(SimulationSettings.TickMs * 1000L);
        Trace($"script: resume {node.Id}");
    }

    /// <summary>The instance's host stops: it leaves gracefully (see Simulator.Leave.cs), its process ending once it is out.</summary>
    public void Leave(SimulatedNode node) => BeginLeave(node);

    /// <summary>One of <paramref name="node"/>'s lock clients acts (an acquire of a lock the seed picks when idle, sometimes letting go when holding).</summary>
    public void ClientActs(SimulatedNode node)
    {
        node.Clients[_random.Next(node.Clients.Count)].Act(_random);
        Process(node);
    }

    /// <summary>An application appends one entry on <paramref name="node"/> (recorded like the workload's); the function returned tells whether its caller was told it committed.</summary>
    public Func<bool> Append(SimulatedNode node)
    {
        bool acknowledged = false;
        AppendOne(node, long.MaxValue, () => acknowledged = true);
        Trace($"script: append on {node.Id}");
        Process(node);
        return () => acknowledged;
    }

    /// <summary>The locks <paramref name="node"/>'s clients hold and trust now.</summary>
    public IEnumerable<string> HeldLocks(SimulatedNode node) => node.Clients.SelectMany(c => c.HeldLocks);

    /// <summary>The instance stops for good (its process and state are gone).</summary>
    public void Stop(SimulatedNode node) => Retire(node);

    /// <summary>From now on the messages <paramref name="which"/> selects are lost (null: none is).</summary>
    public void Lose(Func<Envelope, bool>? which, string what)
    {
        _scriptLoses = which;
        Trace($"script: {what}");
    }

    /// <summary>While <paramref name="hold"/>, claims given back do not reach the store (they wait, as a slow network would keep them).</summary>
    public void HoldReleases(bool hold)
    {
        _scriptHoldsReleases = hold;
        Trace($"script: claims given back {(hold ? "wait" : "go on")}");
    }

    /// <summary>While <paramref name="lose"/>, a confirmation that writes the store (over none or a lower number) does, but its answer is lost on the way back.</summary>
    public void LoseConfirmAnswers(bool lose)
    {
        _scriptLosesConfirmAnswers = lose;
        Trace($"script: answers to confirmations that write the store {(lose ? "are lost" : "arrive")}");
    }

    /// <summary>The store loses its value now (evicted, flushed, failed over), whoever runs.</summary>
    public void StoreLosesItsValue()
    {
        _store.Lose();
        Trace($"script: the generation store loses its value");
    }

    /// <summary>No store operation completes for <paramref name="us"/> (the store answers slowly).</summary>
    public void SlowStore(long us)
    {
        _scriptStoreSlowUntilUs = NowUs + us;
        Trace($"script: the store answers nothing for {us} us");
    }
}
