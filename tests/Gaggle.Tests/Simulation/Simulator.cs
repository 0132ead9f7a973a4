using System.Runtime.CompilerServices;
using System.Text;
using Gaggle.Raft;
using Gaggle.Tests.Support;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// A deterministic, seeded simulation of a Raft cluster built from <see cref="RaftCore"/>s. One
/// <see cref="Random"/> seeded with the seed drives the whole schedule (and seeds each core's own
/// random source), so a seed replays exactly. A run repeats a chaos phase (ticks, reordered
/// deliveries, loss, duplication, proposals, leadership transfers, partitions, snapshots and log
/// compaction, crashes and restarts from storage, crashes that lose unflushed writes, lost storage),
/// each followed by a stabilization phase that heals everything and demands progress.
/// Safety is checked after every step (see <see cref="SafetyChecker"/>).
/// </summary>
internal sealed partial class Simulator : ITraceSource
{
    /// <summary>How many of the last steps a failure report shows (GAGGLE_SIM_TRACE_LINES overrides).</summary>
    private static readonly int TraceLines =
        int.TryParse(Environment.GetEnvironmentVariable("GAGGLE_SIM_TRACE_LINES"), out int lines) && lines > 0 ? lines : 80;

    /// <summary>Chaos phases per run, each followed by a stabilization that demands progress.</summary>
    private const int Epochs = 3;

    private readonly int _seed;
    private readonly ClusterShape _shape;
    private readonly Random _random;
    private readonly SimulationSettings _settings;
    private readonly string[] _ids;
    private readonly SimulatedNode[] _nodes;
    private readonly Dictionary<string, SimulatedNode> _byId = [];
    private readonly SimulatedNetwork _network;
    private readonly SafetyChecker _checker = new();
    private readonly int _chaosSteps;
    private readonly LossModel _loss;
    private readonly Queue<string>? _trace;
    private long _step;
    private int _proposals;
    private long _delivered;
    private StorageStats _storageStats;

    private Simulator(int seed, ClusterShape shape, int? chaosSteps, bool trace, LossModel loss)
    {
        _seed = seed;
        _shape = shape;
        _loss = loss;
        _random = new Random(seed);
        _settings = SimulationSettings.Draw(_random);
        _chaosSteps = chaosSteps ?? _random.Next(1500, 3001);
        _trace = trace ? new Queue<string>() : null;
        _ids = Enumerable.Range(1, shape.Size).Select(i => $"n{i}").ToArray();
        _nodes = _ids.Select(id => new SimulatedNode(id)).ToArray();
        foreach (var node in _nodes)
        {
            _byId[node.Id] = node;
            node.Storage.Buffered = _settings.Durability == Durability.FlushPolicyNone;
        }

        _network = new SimulatedNetwork(_ids);
    }

    /// <summary>Runs one seed: the first failure (null when every property held) and what happened.</summary>
    /// <param name="seed">The seed that decides everything.</param>
    /// <param name="shape">The cluster to simulate.</param>
    /// <param name="chaosSteps">Steps of each chaos phase; by default the seed picks 1500..3000.</param>
    /// <param name="trace">Record the last steps for the failure report (slower).</param>
    /// <param name="loss">How lost storage is handled and what the adversary may do around it (default: <see cref="LossModel.Default"/>).</param>
    public static SimulationResult Run(int seed, ClusterShape shape, int? chaosSteps = null, bool trace = false, LossModel? loss = null)
        => new Simulator(seed, shape, chaosSteps, trace, loss ?? LossModel.Default).Run();

    /// <summary>Runs one seed and, when it fails, replays it with tracing to report its last steps.</summary>
    public static SimulationFailure? RunAndExplain(int seed, ClusterShape shape, int? chaosSteps = null, LossModel? loss = null)
    {
        var failure = Run(seed, shape, chaosSteps, loss: loss).Failure;
        if (failure is null)
        {
            return null;
        }

        var traced = Run(seed, shape, chaosSteps, trace: true, loss: loss).Failure;
        return traced is not null && traced.Step == failure.Step
            ? traced
            : failure with { What = $"{failure.What} (the traced replay diverged: the harness is not deterministic)" };
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

            for (int epoch = 0; epoch < Epochs; epoch++)
            {
                for (long end = _step + _chaosSteps; _step < end;)
                {
                    _step++;
                    ChaosStep();
                }

                Stabilize();
            }

            CheckAllLogsMatch();
        }
        catch (SafetyViolationException violation)
        {
            failure = Failure(violation.Message);
        }
        catch (Exception exception)
        {
            failure = Failure($"unexpected {exception.GetType().Name}: {exception.Message}{Environment.NewLine}{exception.StackTrace}");
        }

        return new SimulationResult(failure, new SimulationStats(
            _step, _checker.CommittedCount, _checker.AppliedCount, _checker.LeaderCount, _nodes.Sum(n => n.Restarts - 1), _delivered, _storageStats));
    }

    private SimulationFailure Failure(string what) => new(_seed, _shape, _step, what)
    {
        Loss = _loss,
        Settings = _settings.ToString(),
        Nodes = DescribeNodes(),
        Trace = _trace?.ToArray() ?? [],
    };

    private void ChaosStep()
    {
        var weights = _settings.Weights;
        int roll = _random.Next(weights.Total);
        if ((roll -= weights.Tick) < 0)
        {
            TickNode(PickUpNode());
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
                Trace($"drop {Show(dropped)}");
            }
        }
        else if ((roll -= weights.Duplicate) < 0)
        {
            if (_network.Count > 0)
            {
                int position = _random.Next(_network.Count);
                Trace($"duplicate {Show(_network.PeekAt(position))}");
                _network.Duplicate(position);
            }
        }
        else if ((roll -= weights.Propose) < 0)
        {
            ProposeOn(PickUpNode(), _random.Next(1, 4));
        }
        else if ((roll -= weights.Transfer) < 0)
        {
            TransferLeadership(PickUpNode());
        }
        else if ((roll -= weights.Partition) < 0)
        {
            string sides = _network.Partition(_random);
            Trace($"partition {sides}");
        }
        else if ((roll -= weights.Heal) < 0)
        {
            _network.Heal();
            Trace($"heal");
        }
        else if ((roll -= weights.Crash) < 0)
        {
            CrashRandomNode();
        }
        else if ((roll -= weights.Restart) < 0)
        {
            RestartRandomNode();
        }
        else if ((roll -= weights.Snapshot) < 0)
        {
            SnapshotNode(PickUpNode());
        }
        else
        {
            LoseStorage();
        }
    }

    /// <summary>A random live node; when all are down, one is restarted first.</summary>
    private SimulatedNode PickUpNode()
    {
        var up = _nodes.Where(n => n.IsUp).ToArray();
        if (up.Length == 0)
        {
            RestartRandomNode();
            up = _nodes.Where(n => n.IsUp).ToArray();
        }

        return up[_random.Next(up.Length)];
    }

    private void TickNode(SimulatedNode node)
    {
        Trace($"tick {node.Id}");
        node.Core!.Tick();
        Process(node);
    }

    private void DeliverRandom()
    {
        if (_network.Count == 0)
        {
            TickNode(PickUpNode());
            return;
        }

        Deliver(_network.TakeAt(_random.Next(_network.Count)));
    }

    private void Deliver(Envelope envelope)
    {
        var target = _byId[envelope.To];
        if (!_network.Connected(envelope.From, envelope.To))
        {
            Trace($"lost across partition {Show(envelope)}");
        }
        else if (!target.IsUp)
        {
            Trace($"lost, target down {Show(envelope)}");
        }
        else
        {
            Trace($"deliver {Show(envelope)}");
            _delivered++;
            target.Core!.Step(envelope.Message);
            Process(target);
        }
    }

    /// <summary>Proposes fresh payloads; returns the first index, or -1 when the node refused.</summary>
    private long ProposeOn(SimulatedNode node, int count)
    {
        var core = node.Core!;
        bool leader = core.Role == RaftRole.Leader;
        long lastIndex = core.LastIndex;
        var payloads = new ReadOnlyMemory<byte>[count];
        for (int i = 0; i < count; i++)
        {
            payloads[i] = Encoding.UTF8.GetBytes($"s{_seed}-p{++_proposals}");
        }

        long first = core.Propose(payloads);
        Trace($"propose {count} on {node.Id} ({core.Role}, term {core.Term}) -> {first}");
        if (first != -1 && !leader)
        {
            throw new SafetyViolationException($"{node.Id} accepted a proposal as {core.Role}");
        }

        if (first != -1 && first != lastIndex + 1)
        {
            throw new SafetyViolationException($"{node.Id} returned index {first} for a proposal appended after index {lastIndex}");
        }

        Process(node);
        return first;
    }

    private void TransferLeadership(SimulatedNode node)
    {
        var core = node.Core!;
        if (core.Role != RaftRole.Leader)
        {
            return;
        }

        var others = _ids.Where(id => id != node.Id).ToArray();
        string target = others[_random.Next(others.Length)];
        bool accepted = core.TransferLeadership(target);
        Trace($"transfer leadership {node.Id} -> {target}: {accepted}");
        Process(node);
    }

    public bool IsTracing => _trace is not null;

    private void Trace([InterpolatedStringHandlerArgument("")] TraceHandler line)
    {
        if (_trace is null)
        {
            return;
        }

        _trace.Enqueue($"{_step,6} {line.ToStringAndClear()}");
        if (_trace.Count > TraceLines)
        {
            _trace.Dequeue();
        }
    }

    private static string Show(Envelope envelope)
        => envelope.Message.To is null ? $"{envelope.Message} (to {envelope.To})" : envelope.Message.ToString();

    private string DescribeNodes() => string.Join("; ", _nodes.Select(n => n.Core is { } core
        ? $"{n.Id} {core.Role} term {core.Term} leader {core.LeaderId ?? "-"} commit {core.CommitIndex} last {core.LastIndex}"
            + $" snapshot {core.Snapshot?.Index ?? 0}{(core.Rejoining ? " rejoining" : "")}"
        : $"{n.Id} down (term {n.HardState.Term}, commit {n.HardState.Commit}, snapshot {n.Storage.SnapshotIndex}, last {n.Storage.LastIndex}"
            + $"{(n.IsDamaged ? ", lost data" : "")})"));
}
