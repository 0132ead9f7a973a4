using System.Runtime.CompilerServices;
using System.Text;
using Gaggle.Raft;
using Gaggle.Tests.Support;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// A deterministic, seeded simulation of a Gaggle cluster: N <see cref="SimulatedNode"/>s, each the
/// <see cref="Runtime.NodeDriver"/> that ships (Raft core, appends and their retries, duplicate table,
/// lock table, lease clock and time entries, snapshots) with simulated storage and a drifting clock.
/// One <see cref="Random"/> seeded with the seed drives the whole schedule (and seeds each core's own
/// random source), so a seed replays exactly. A run repeats a chaos phase (ticks on drifting clocks,
/// busy loop passes, reordered deliveries, loss, duplication, appends and lock use by simulated
/// callers, leadership transfers, partitions, snapshots installed, crashes and restarts from storage,
/// crashes that lose unflushed writes, lost storage), each followed by a stabilization phase that
/// heals everything and demands progress and quiet. Membership runs also change the configuration
/// (see Simulator.Membership.cs), and elastic runs form cluster generations with no member list (see
/// Simulator.Elastic.cs). Checked after every step: Raft's safety properties (<see cref="SafetyChecker"/>,
/// which hold whatever the configuration, per generation), exactly-once application of acknowledged
/// appends (<see cref="AppendChecker"/>), the lock history (<see cref="LockHistoryChecker"/>: its
/// tables per generation, the holders' beliefs across them) and that no two nodes trust their
/// leadership lease at once, whatever their generations. Checked at the end: what the clients saw is
/// linearizable (<see cref="ClientHistory"/>).
/// </summary>
internal sealed partial class Simulator : ITraceSource
{
    /// <summary>How many of the last steps a failure report shows (GAGGLE_SIM_TRACE_LINES overrides).</summary>
    private static readonly int TraceLines =
        int.TryParse(Environment.GetEnvironmentVariable("GAGGLE_SIM_TRACE_LINES"), out int lines) && lines > 0 ? lines : 100;

    /// <summary>Chaos phases per run, each followed by a stabilization that demands progress.</summary>
    private const int Epochs = 3;

    private readonly int _seed;
    private readonly ClusterShape _shape;
    private readonly Random _random;
    /// <summary>The initial voters (every node's Members).</summary>
    private readonly string[] _ids;

    /// <summary>The nodes in play: started (up or down) and not retired; a membership run adds and retires some.</summary>
    private readonly List<SimulatedNode> _nodes;
    private readonly Dictionary<string, SimulatedNode> _byId = [];

    /// <summary>The ids of the nodes in play, in the order they joined: the network's broadcast audience.</summary>
    private readonly List<string> _onNetwork;
    private readonly SimulatedNetwork _network;
    private readonly GenerationSafetyCheckers _checkers = new();
    private readonly int _chaosSteps;
    private readonly LossModel _loss;
    private readonly bool _lockReads;
    private readonly Queue<string>? _trace;
    private ulong _incarnations;
    private int _proposals;
    private long _delivered;
    private bool _clientsPaused;
    private bool _clientsQuiet;
    private StorageStats _storageStats;

    private Simulator(int seed, ClusterShape shape, Workload workload, int? chaosSteps, bool trace, LossModel loss, bool lockReads, Func<SimulationSettings, SimulationSettings>? adjust = null)
    {
        _seed = seed;
        _lockReads = lockReads;
        _shape = shape;
        _loss = loss;
        _random = new Random(seed);
        Settings = SimulationSettings.Draw(_random, workload);
        _chaosSteps = chaosSteps ?? _random.Next(1000, 2001);
        _trace = trace ? new Queue<string>() : null;
        // An elastic run has no member list: its instances start later (see ScheduleInitialInstances).
        _ids = shape.Elastic ? [] : Enumerable.Range(1, shape.Size).Select(i => $"n{i}").ToArray();
        _nodes = _ids.Select(id => new SimulatedNode(this, id, NodeClock.Draw(_random))).ToList();
        if (shape.Membership)
        {
            // Growing to 7 voters and back takes a dozen changes, each committed (and a promotion caught up) first.
            Settings = Settings.ForMembership(_random);
            _chaosSteps = chaosSteps ?? 2 * _chaosSteps;
            if (shape.Elastic)
            {
                Settings = Settings.ForElastic(_random);
                _membershipStats.Autopilot = true;
            }
            else if (shape.Autopilot)
            {
                Settings = Settings.ForAutopilot(_random);
                _membershipStats.Autopilot = true;
            }
        }

        Settings = adjust?.Invoke(Settings) ?? Settings;
        foreach (var node in _nodes)
        {
            _byId[node.Id] = node;
            node.Storage.Buffered = Settings.Durability == Durability.FlushPolicyNone;
        }

        _onNetwork = [.. _ids];
        _network = new SimulatedNetwork(_onNetwork, bySendTime: shape.Elastic);
    }

    public SimulationSettings Settings { get; private set; }

    /// <summary>The lock history checker.</summary>
    public LockHistoryChecker Checker { get; } = new();

    /// <summary>The acknowledged-appends checker.</summary>
    public AppendChecker Appends { get; } = new();

    /// <summary>Simulated real time, in microseconds.</summary>
    public long NowUs { get; private set; }

    public long Step { get; private set; }

    public bool IsTracing => _trace is not null;

    /// <summary>Runs one seed: the first failure (null when every property held) and what happened.</summary>
    /// <param name="seed">The seed that decides everything.</param>
    /// <param name="shape">The cluster to simulate.</param>
    /// <param name="workload">What the simulated callers mostly do.</param>
    /// <param name="chaosSteps">Steps of each chaos phase; by default the seed picks 1000..2000.</param>
    /// <param name="trace">Record the last steps for the failure report (slower).</param>
    /// <param name="loss">How lost storage is handled and what the adversary may do around it (default: <see cref="LossModel.Default"/>).</param>
    /// <param name="lockReads">Callers also read locks (InspectAsync); without, a seed runs the schedule it ran before reads were simulated.</param>
    public static SimulationResult Run(int seed, ClusterShape shape, Workload workload = Workload.Mixed, int? chaosSteps = null, bool trace = false, LossModel? loss = null, bool lockReads = true)
        => new Simulator(seed, shape, workload, chaosSteps, trace, loss ?? LossModel.Default, lockReads).Run();

    /// <summary>Runs one seed and, when it fails, replays it with tracing to report its last steps.</summary>
    public static SimulationFailure? RunAndExplain(int seed, ClusterShape shape, Workload workload = Workload.Mixed, int? chaosSteps = null, LossModel? loss = null, bool lockReads = true)
    {
        var failure = Run(seed, shape, workload, chaosSteps, loss: loss, lockReads: lockReads).Failure;
        if (failure is null)
        {
            return null;
        }

        var traced = Run(seed, shape, workload, chaosSteps, trace: true, loss: loss, lockReads: lockReads).Failure;
        return traced is not null && traced.Step == failure.Step
            ? traced
            : failure with { What = $"{failure.What} (the traced replay diverged: the harness is not deterministic)" };
    }

    public void Trace([InterpolatedStringHandlerArgument("")] TraceHandler line)
    {
        if (_trace is null)
        {
            return;
        }

        _trace.Enqueue($"{Step,6} {line.ToStringAndClear()}");
        if (_trace.Count > TraceLines)
        {
            _trace.Dequeue();
        }
    }

    private SimulationResult Run()
    {
        SimulationFailure? failure = null;
        try
        {
            foreach (var node in _nodes)
            {
                StartNode(node);
            }

            if (_shape.Elastic)
            {
                ScheduleInitialInstances();
            }

            for (int epoch = 0; epoch < Epochs; epoch++)
            {
                for (long end = Step + _chaosSteps; Step < end;)
                {
                    Step++;
                    ChaosStep();
                    CheckLeases();
                    ProgressDepartures();
                }

                Stabilize();
            }

            CheckAllLogsMatch();
            CheckClientHistory();
        }
        catch (Exception exception) when (exception is SafetyViolationException or LockSimViolation or LinearizabilityViolation)
        {
            failure = Failure(exception.Message);
        }
        catch (Exception exception)
        {
            failure = Failure($"unexpected {exception.GetType().Name}: {exception.Message}{Environment.NewLine}{exception.StackTrace}");
        }

        return new SimulationResult(failure, new SimulationStats(
            Step, _checkers.CommittedCount, _checkers.AppliedCount, _checkers.LeaderCount, _nodes.Concat(_retired).Sum(n => n.Restarts - 1), _delivered, _storageStats,
            Appends.Acknowledged, NowUs))
        {
            Locks = Checker.Stats, Membership = _membershipStats, Elastic = _shape.Elastic ? ElasticStats() : null, Linearizability = Linearizability,
        };
    }

    private SimulationFailure Failure(string what) => new(_seed, _shape, Step, what)
    {
        Loss = _loss,
        Settings = Settings.ToString(),
        Nodes = string.Join("; ", _nodes.Concat(_retired).Select(n => n.Describe())) + (_shape.Elastic ? $"; generation store {_store.Value}" : ""),
        Trace = _trace?.ToArray() ?? [],
    };

    private void ChaosStep()
    {
        var weights = Settings.Weights;
        int roll = _random.Next(weights.Total);
        if ((roll -= weights.Tick) < 0)
        {
            TickNext();
        }
        else if ((roll -= weights.Batch) < 0)
        {
            BatchNext();
        }
        else if ((roll -= weights.Deliver) < 0)
        {
            DeliverRandom();
        }
        else if ((roll -= weights.Drop) < 0)
        {
            if (_network.Count > 0)
            {
                var dropped = _network.TakeAt(_random.Next(_network.Count));
                Trace($"drop {dropped}");
            }
        }
        else if ((roll -= weights.Duplicate) < 0)
        {
            if (_network.Count > 0)
            {
                int position = _random.Next(_network.Count);
                Trace($"duplicate {_network.PeekAt(position)}");
                _network.Duplicate(position);
            }
        }
        else if ((roll -= weights.Append) < 0)
        {
            var node = PickUpNode();
            int count = _random.Next(1, 4);
            if (node is not null)
            {
                AppendOn(node, count);
            }
        }
        else if ((roll -= weights.Lock) < 0)
        {
            LockClientActs();
        }
        else if ((roll -= weights.Quiet) < 0)
        {
            _clientsQuiet = !_clientsQuiet;
            Trace($"lock clients {(_clientsQuiet ? "fall quiet" : "wake up")}");
        }
        else if ((roll -= weights.Transfer) < 0)
        {
            TransferLeadership();
        }
        else if ((roll -= weights.Partition) < 0)
        {
            string sides = _shape.Elastic ? CutFromHub() : _network.Partition(_random);
            Trace($"partition {sides}");
        }
        else if ((roll -= weights.Heal) < 0)
        {
            Heal();
        }
        else if ((roll -= weights.Crash) < 0)
        {
            CrashRandomNode();
        }
        else if ((roll -= weights.Restart) < 0)
        {
            RestartRandomNode();
        }
        else if ((roll -= weights.Membership) < 0)
        {
            ChangeMembership();
        }
        else if ((roll -= weights.Retire) < 0)
        {
            RetireRemovedNode();
        }
        else if ((roll -= weights.LoseStorage) < 0)
        {
            LoseStorage();
        }
        else if ((roll -= weights.Join) < 0)
        {
            StartJoiningNode();
        }
        else if ((roll -= weights.Stop) < 0)
        {
            StopForGood();
        }
        else if ((roll -= weights.Redeploy) < 0)
        {
            Redeploy();
        }
        else if ((roll -= weights.LoseGeneration) < 0)
        {
            LoseGeneration();
        }
        else if ((roll -= weights.Outage) < 0)
        {
            Outage();
        }
        else
        {
            PauseNode();
        }
    }

    /// <summary>A random live node, not paused; when all are down, one is restarted first (null when every live one is paused).</summary>
    private SimulatedNode? PickUpNode()
    {
        var up = _nodes.Where(n => n.IsUp && !n.IsPausedAt(NowUs)).ToArray();
        if (up.Length == 0)
        {
            if (_shape.Elastic)
            {
                StartInstanceWhenNoneIsUp();
            }

            RestartRandomNode();
            up = _nodes.Where(n => n.IsUp && !n.IsPausedAt(NowUs)).ToArray();
        }

        return up.Length == 0 ? null : up[_random.Next(up.Length)];
    }

    /// <summary>The live node whose clock ticks next; real time moves on to that tick.</summary>
    private SimulatedNode NextToTick()
    {
        SimulatedNode? next;
        do
        {
            next = null;
            foreach (var node in _nodes)
            {
                if (node.IsUp && (next is null || node.NextTickAtUs < next.NextTickAtUs))
                {
                    next = node;
                }
            }
        }
        while (_shape.Elastic && RunElasticEventBefore(next?.NextTickAtUs ?? long.MaxValue));

        // A paused node's next tick is its resumption: when every live node is paused, time runs on to the first.
        next ??= PickUpNode()!;
        NowUs = Math.Max(NowUs, next.NextTickAtUs);
        next.NextTickAtUs = NowUs + next.Clock.RealSpan(SimulationSettings.TickMs * 1000L);
        return next;
    }

    private void TickNext()
    {
        var next = NextToTick();
        Trace($"tick {next.Id} at {NowUs} us");
        next.TickDriver();
        RunTimers(next);
        Process(next);
    }

    /// <summary>The callers' timers, on the node's clock at its ticks: acquire deadlines, ends of holds, renewals.</summary>
    private void RunTimers(SimulatedNode node)
    {
        Process(node);
        foreach (var client in node.Clients.ToList())
        {
            if (node.IsUp)
            {
                client.OnTimer();
            }
        }
    }

    /// <summary>
    /// The next node to tick handles, in one loop pass, its tick, some of the messages in flight to it
    /// and maybe a caller's call, in random order: a node elected by one of those messages stamps the
    /// others' entries before the pass ends.
    /// </summary>
    private void BatchNext()
    {
        var next = NextToTick();
        var inputs = new List<Envelope?> { null };
        for (int i = _network.Count - 1, wanted = _random.Next(1, 6); i >= 0 && inputs.Count <= wanted; i--)
        {
            if (_network.PeekAt(i).To == next.Id && _random.Next(2) == 0)
            {
                var envelope = _network.TakeAt(i);
                if (_network.Connected(envelope.From, envelope.To))
                {
                    inputs.Add(envelope);
                }
            }
        }

        bool clientCalls = !_clientsPaused && !_clientsQuiet && next.Clients.Count > 0 && _random.Next(3) == 0;
        int clientAt = _random.Next(inputs.Count + 1);
        var client = clientCalls ? next.Clients[_random.Next(next.Clients.Count)] : null;
        Trace($"batch on {next.Id} at {NowUs} us: tick, {inputs.Count - 1} messages{(clientCalls ? ", a client call" : "")}");
        var driver = next.Driver!;
        for (int i = 0; i <= inputs.Count; i++)
        {
            if (client is not null && i == clientAt)
            {
                client.Act(_random);
            }

            if (i == inputs.Count)
            {
                break;
            }

            if (inputs[i] is { } envelope)
            {
                Trace($"  deliver {envelope}");
                _delivered++;
                driver.Observe(next.LocalUs);
                driver.Receive(envelope.From, envelope.Payload);
            }
            else
            {
                next.TickDriver();
            }
        }

        RunTimers(next);
        Process(next);
    }

    private void DeliverRandom()
    {
        if (_network.Count == 0)
        {
            TickNext();
            return;
        }

        Deliver(_network.TakeAt(_random.Next(_network.Count)));
    }

    private void Deliver(Envelope envelope)
    {
        var target = _byId[envelope.To];
        if (!_network.Connected(envelope.From, envelope.To))
        {
            Trace($"lost across partition {envelope}");
        }
        else if (!target.IsUp)
        {
            Trace($"lost, target down {envelope}");
        }
        else if (target.IsPausedAt(NowUs))
        {
            Trace($"lost, target paused {envelope}");
        }
        else if (_scriptLoses?.Invoke(envelope) == true)
        {
            Trace($"lost by the script {envelope}");
        }
        else
        {
            Trace($"deliver {envelope}");
            _delivered++;
            target.Driver!.Observe(target.LocalUs);
            target.Driver.Receive(envelope.From, envelope.Payload);
            Process(target);
        }
    }
}
