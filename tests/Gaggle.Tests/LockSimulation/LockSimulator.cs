using System.Runtime.CompilerServices;
using Gaggle.Raft;
using Gaggle.Tests.Support;

namespace Gaggle.Tests.LockSimulation;

/// <summary>
/// A deterministic, seeded simulation of the replicated lock table: <see cref="LockSimNode"/>s (Raft
/// cores with GaggleNode's lock path) under a schedule drawn from one seeded <see cref="Random"/>:
/// ticks on drifting clocks, reordered, lost and duplicated messages, partitions, crashes and restarts
/// (leaders included), leadership transfers, and clients on every node acquiring, renewing and
/// releasing mutexes and a semaphore. A run repeats a chaos phase and a stabilization phase that
/// heals everything and demands that every client's operation ends and the tables drain.
/// <see cref="LockHistoryChecker"/> checks every applied command and every client observation.
/// </summary>
internal sealed class LockSimulator : ITraceSource
{
    private const int Epochs = 3;

    private static readonly int TraceLines =
        int.TryParse(Environment.GetEnvironmentVariable("GAGGLE_SIM_TRACE_LINES"), out int lines) && lines > 0 ? lines : 120;

    private readonly int _seed;
    private readonly int _size;
    private readonly Random _random;
    private readonly string[] _ids;
    private readonly LockSimNode[] _nodes;
    private readonly Dictionary<string, LockSimNode> _byId = [];
    private readonly int _chaosSteps;
    private readonly Queue<string>? _trace;
    private ulong _incarnations;
    private bool _clientsPaused;
    private bool _clientsQuiet;
    private int _leaderTerms;
    private long _lastLeaderTerm;

    private LockSimulator(int seed, int size, int? chaosSteps, bool trace)
    {
        _seed = seed;
        _size = size;
        _random = new Random(seed);
        Settings = LockSimSettings.Draw(_random);
        _chaosSteps = chaosSteps ?? _random.Next(1000, 2001);
        _trace = trace ? new Queue<string>() : null;
        _ids = Enumerable.Range(1, size).Select(i => $"n{i}").ToArray();
        _nodes = _ids.Select(id => new LockSimNode(this, id, NodeClock.Draw(_random))).ToArray();
        foreach (var node in _nodes)
        {
            _byId[node.Id] = node;
        }

        Network = new LockSimNetwork(_ids);
    }

    public LockSimSettings Settings { get; }

    public LockSimNetwork Network { get; }

    public LockHistoryChecker Checker { get; } = new();

    /// <summary>Simulated real time, in microseconds.</summary>
    public long NowUs { get; private set; }

    public long Step { get; private set; }

    public bool IsTracing => _trace is not null;

    public static LockSimResult Run(int seed, int size, int? chaosSteps = null, bool trace = false)
        => new LockSimulator(seed, size, chaosSteps, trace).Run();

    /// <summary>Runs one seed and, when it fails, replays it with tracing to report its last steps.</summary>
    public static LockSimFailure? RunAndExplain(int seed, int size, int? chaosSteps = null)
    {
        var failure = Run(seed, size, chaosSteps).Failure;
        if (failure is null)
        {
            return null;
        }

        var traced = Run(seed, size, chaosSteps, trace: true).Failure;
        return traced is not null && traced.Step == failure.Step
            ? traced
            : failure with { What = $"{failure.What} (the traced replay diverged: the harness is not deterministic)" };
    }

    private LockSimResult Run()
    {
        LockSimFailure? failure = null;
        try
        {
            foreach (var node in _nodes)
            {
                StartNode(node, durableStateMachine: true);
            }

            for (int epoch = 0; epoch < Epochs; epoch++)
            {
                for (long end = Step + _chaosSteps; Step < end;)
                {
                    Step++;
                    ChaosStep();
                }

                Stabilize();
            }
        }
        catch (LockSimViolation violation)
        {
            failure = Failure(violation.Message);
        }
        catch (Exception exception)
        {
            failure = Failure($"unexpected {exception.GetType().Name}: {exception.Message}{Environment.NewLine}{exception.StackTrace}");
        }

        return new LockSimResult(failure, Checker.Stats, Step, NowUs, _leaderTerms);
    }

    private LockSimFailure Failure(string what) => new(_seed, _size, Step, what)
    {
        Settings = Settings.ToString(),
        Nodes = string.Join("; ", _nodes.Select(n => n.Describe())),
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
            if (Network.Count > 0)
            {
                var dropped = Network.TakeAt(_random.Next(Network.Count));
                Trace($"drop {dropped}");
            }
        }
        else if ((roll -= weights.Duplicate) < 0)
        {
            if (Network.Count > 0)
            {
                int position = _random.Next(Network.Count);
                Trace($"duplicate {Network.PeekAt(position)}");
                Network.Duplicate(position);
            }
        }
        else if ((roll -= weights.Client) < 0)
        {
            ClientActs();
        }
        else if ((roll -= weights.Quiet) < 0)
        {
            _clientsQuiet = !_clientsQuiet;
            Trace($"clients {(_clientsQuiet ? "fall quiet" : "wake up")}");
        }
        else if ((roll -= weights.Transfer) < 0)
        {
            TransferLeadership();
        }
        else if ((roll -= weights.Partition) < 0)
        {
            string sides = Network.Partition(_random);
            Trace($"partition {sides}");
        }
        else if ((roll -= weights.Heal) < 0)
        {
            Network.Heal();
            Trace($"heal");
        }
        else if ((roll -= weights.Crash) < 0)
        {
            CrashRandomNode();
        }
        else
        {
            RestartRandomNode();
        }
    }

    /// <summary>Real time moves on to the next tick of any live node, which ticks.</summary>
    private void TickNext()
    {
        LockSimNode? next = null;
        foreach (var node in _nodes)
        {
            if (node.IsUp && (next is null || node.NextTickAtUs < next.NextTickAtUs))
            {
                next = node;
            }
        }

        if (next is null)
        {
            RestartRandomNode();
            return;
        }

        NowUs = Math.Max(NowUs, next.NextTickAtUs);
        next.NextTickAtUs = NowUs + next.Clock.RealSpan(LockSimSettings.TickMs * 1000L);
        Trace($"tick {next.Id} at {NowUs} us");
        next.Tick();
        CountLeader(next);
    }

    /// <summary>
    /// The next node to tick handles, in one loop pass, its tick, some of the packets in flight to it
    /// and maybe a client's call, in random order: a node elected by one of those packets stamps the
    /// others' entries before the pass ends.
    /// </summary>
    private void BatchNext()
    {
        var next = _nodes.Where(n => n.IsUp).MinBy(n => n.NextTickAtUs);
        if (next is null)
        {
            RestartRandomNode();
            return;
        }

        NowUs = Math.Max(NowUs, next.NextTickAtUs);
        next.NextTickAtUs = NowUs + next.Clock.RealSpan(LockSimSettings.TickMs * 1000L);
        var inputs = new List<LockSimPacket?> { null };
        for (int i = Network.Count - 1, wanted = _random.Next(1, 6); i >= 0 && inputs.Count <= wanted; i--)
        {
            if (Network.PeekAt(i).To == next.Id && _random.Next(2) == 0)
            {
                var packet = Network.TakeAt(i);
                if (Network.Connected(packet.From, packet.To))
                {
                    inputs.Add(packet);
                }
            }
        }

        bool clientCalls = !_clientsPaused && !_clientsQuiet && _random.Next(3) == 0;
        int clientAt = _random.Next(inputs.Count + 1);
        var client = next.Clients[_random.Next(next.Clients.Count)];
        Trace($"batch on {next.Id} at {NowUs} us: tick, {inputs.Count - 1} packets{(clientCalls ? ", a client call" : "")}");
        for (int i = 0; i <= inputs.Count && next.IsUp; i++)
        {
            if (clientCalls && i == clientAt)
            {
                client.Act(_random);
            }

            if (i == inputs.Count)
            {
                break;
            }

            if (inputs[i] is { } packet)
            {
                Trace($"  deliver {packet}");
                next.Handle(packet);
            }
            else
            {
                next.HandleTick();
            }
        }

        next.EndBatch(timers: true);
        CountLeader(next);
    }

    private void DeliverRandom()
    {
        if (Network.Count == 0)
        {
            TickNext();
            return;
        }

        var packet = Network.TakeAt(_random.Next(Network.Count));
        var target = _byId[packet.To];
        if (!Network.Connected(packet.From, packet.To) || !target.IsUp)
        {
            Trace($"lost {packet}");
            return;
        }

        Trace($"deliver {packet}");
        target.Deliver(packet);
        CountLeader(target);
    }

    private void CountLeader(LockSimNode node)
    {
        if (node.Core is { Role: RaftRole.Leader } core && core.Term > _lastLeaderTerm)
        {
            _lastLeaderTerm = core.Term;
            _leaderTerms++;
        }
    }

    private void ClientActs()
    {
        if (_clientsPaused || _clientsQuiet)
        {
            return;
        }

        var up = _nodes.Where(n => n.IsUp).ToArray();
        if (up.Length == 0)
        {
            return;
        }

        var node = up[_random.Next(up.Length)];
        node.Clients[_random.Next(node.Clients.Count)].Act(_random);
        node.RunLoop();
    }

    private void TransferLeadership()
    {
        var leader = _nodes.FirstOrDefault(n => n.Core is { Role: RaftRole.Leader });
        if (leader is not null)
        {
            var others = _ids.Where(id => id != leader.Id).ToArray();
            string target = others[_random.Next(others.Length)];
            Trace($"transfer leadership {leader.Id} -> {target}");
            leader.TransferLeadership(target);
        }
    }

    private void CrashRandomNode()
    {
        var up = _nodes.Where(n => n.IsUp).ToArray();
        if (up.Length == 0)
        {
            return;
        }

        // Half the crashes hit a leader: its lease clock and its undelivered stamps go with it.
        var leaders = up.Where(n => n.Core!.Role == RaftRole.Leader).ToArray();
        var node = leaders.Length > 0 && _random.Next(2) == 0 ? leaders[_random.Next(leaders.Length)] : up[_random.Next(up.Length)];
        node.Crash();
        int dropped = Network.DropSomeTo(node.Id, _random);
        Trace($"crash {node.Id} ({dropped} packets to it lost)");
    }

    private void RestartRandomNode()
    {
        var down = _nodes.Where(n => !n.IsUp).ToArray();
        if (down.Length > 0)
        {
            StartNode(down[_random.Next(down.Length)], durableStateMachine: _random.Next(2) == 0);
        }
    }

    private void StartNode(LockSimNode node, bool durableStateMachine)
    {
        var config = Settings.CreateConfig(node.Id, _ids, new Random(_random.Next()));
        Trace($"start {node.Id} incarnation {_incarnations + 1} ({(durableStateMachine ? "table kept" : "table replayed")})");
        node.Start(config, durableStateMachine, ++_incarnations, Settings.ClientsPerNode);
    }

    /// <summary>
    /// Heals everything and stops new client work; then every operation must end (granted, denied,
    /// given up, released), every lease expire, the tables drain to empty and all nodes apply the
    /// leader's whole log, within a bound of simulated time.
    /// </summary>
    private void Stabilize()
    {
        Network.Heal();
        foreach (var node in _nodes.Where(n => !n.IsUp))
        {
            StartNode(node, durableStateMachine: _random.Next(2) == 0);
        }

        Trace($"stabilize");
        _clientsPaused = true;
        long boundMs = (100 * Settings.LeaseMs) + (200L * Settings.ElectionTicksMax * LockSimSettings.TickMs);
        long limit = NowUs + (boundMs * 1000);
        while (!Settled())
        {
            if (NowUs > limit)
            {
                var busy = _nodes.SelectMany(n => n.Clients).Where(c => c.IsBusy).Select(c => c.ToString()).ToList();
                throw new LockSimViolation($"no quiet state within {boundMs} ms after healing: locks live in the history: {Checker.LiveLocks}; "
                    + $"busy clients: {(busy.Count == 0 ? "none" : string.Join(", ", busy))}");
            }

            Step++;
            if (Network.Count > 0)
            {
                // A healed network delivers within a tick (in any order): latency no longer grows with the backlog.
                DeliverRandom();
            }
            else
            {
                TickNext();
            }
        }

        _clientsPaused = false;
    }

    private bool Settled()
    {
        var leader = _nodes.FirstOrDefault(n => n.Core is { Role: RaftRole.Leader });
        if (leader is null || Checker.LiveLocks > 0)
        {
            return false;
        }

        long last = leader.Core!.LastIndex;
        return leader.Core.CommitIndex == last && _nodes.All(n => n.IsUp && n.Core!.LeaderId == leader.Id && n.Applied == last && n.Table.Count == 0 && n.Clients.TrueForAll(c => !c.IsBusy));
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
}
