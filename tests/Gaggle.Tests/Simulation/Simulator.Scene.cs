using System.Text;
using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>A configuration entry the first time any node applied it (committed), and when.</summary>
internal readonly record struct AppliedConfiguration(long AtUs, long Generation, long Index, ClusterConfig Config);

/// <summary>
/// Scenes: a seeded cluster of the drivers that ship, on a calm network (no loss, no duplication, what
/// is in flight delivered in random order before the next tick), whose faults a test scripts: pauses,
/// stops, joining nodes, leadership handed over. The seed decides the settings, the clocks and the
/// delivery order, so a scene replays exactly; every step is checked as in a random run (Raft's safety,
/// the leases), and <see cref="Configurations"/> records the life of the configuration for the test's
/// own checks.
/// </summary>
internal sealed partial class Simulator
{
    private readonly List<AppliedConfiguration> _configHistory = [];

    /// <summary>Every configuration applied (committed), in order.</summary>
    public IReadOnlyList<AppliedConfiguration> Configurations => _configHistory;

    /// <summary>The autopilot's settings (autopilot shapes only).</summary>
    public Gaggle.Runtime.AutopilotSettings Autopilot => Settings.Autopilot!;

    /// <summary>The current leader (of the highest term), if any.</summary>
    public SimulatedNode? Leader => CurrentLeader();

    /// <summary>An election timeout at most, in microseconds (on a clock of nominal rate).</summary>
    public long ElectionTimeoutUs => Settings.ElectionTicksMax * SimulationSettings.TickMs * 1000L;

    /// <summary>The last steps, for a failing assertion's message.</summary>
    public string TraceTail => _trace is null ? "(run the scene with trace: true)" : string.Join(Environment.NewLine, _trace);

    public SimulatedNode Node(string id) => _byId[id];

    /// <summary>A scene: the nodes of <paramref name="shape"/> started, nothing else done yet.</summary>
    /// <param name="adjust">Changes to the settings the seed drew (the autopilot's target, say).</param>
    public static Simulator Scene(int seed, ClusterShape shape, Func<SimulationSettings, SimulationSettings>? adjust = null, bool trace = true)
    {
        var scene = new Simulator(seed, shape, Workload.Mixed, chaosSteps: 0, trace, LossModel.Default, lockReads: false, adjust) { _clientsPaused = true };
        foreach (var node in scene._nodes)
        {
            scene.StartNode(node);
        }

        return scene;
    }

    /// <summary>Runs until <paramref name="condition"/> holds, for <paramref name="forUs"/> of real time at most; whether it held.</summary>
    public bool RunUntil(Func<bool> condition, long forUs)
    {
        long until = NowUs + forUs;
        while (!condition())
        {
            if (NowUs >= until)
            {
                return false;
            }

            CalmStep();
        }

        return true;
    }

    /// <summary>Runs for <paramref name="forUs"/> of real time.</summary>
    public void RunFor(long forUs) => RunUntil(() => false, forUs);

    /// <summary>Node <paramref name="id"/> neither ticks nor receives for <paramref name="forUs"/> (what is sent to it meanwhile is lost).</summary>
    public void Pause(string id, long forUs)
    {
        var node = _byId[id];
        node.PausedUntilUs = NowUs + forUs;
        node.NextTickAtUs = Math.Max(node.NextTickAtUs, node.PausedUntilUs);
        Trace($"pause {id} for {forUs} us");
    }

    /// <summary>Node <paramref name="id"/> stops for good (its machine is gone).</summary>
    public void StopForGood(string id)
    {
        Trace($"stop {id} for good");
        Retire(_byId[id]);
    }

    /// <summary>From now on no message crosses between <paramref name="side"/> and the other nodes (in flight or sent later), until <see cref="Heal"/>.</summary>
    public void Split(params string[] side)
    {
        _network.Split(side);
        Trace($"split {string.Join(",", side)} from the others");
    }

    /// <summary>A new node, with empty storage, starts and announces itself; its id.</summary>
    public string StartJoining()
    {
        StartJoiningNode();
        return _nodes[^1].Id;
    }

    /// <summary>The leader hands leadership to <paramref name="target"/>; whether it accepted.</summary>
    public bool TransferLeadership(string target)
    {
        var leader = CurrentLeader()!;
        bool accepted = leader.Driver!.TransferLeadership(target);
        Trace($"transfer leadership {leader.Id} -> {target}: {accepted}");
        Process(leader);
        return accepted;
    }

    /// <summary>Appends <paramref name="payload"/> on the current leader; whether it commits within <paramref name="forUs"/> (asked again of each new leader).</summary>
    public bool Commits(string payload, long forUs)
    {
        bool committed = false;
        SimulatedNode? askedLeader = null;
        long askedTerm = 0;
        return RunUntil(() =>
        {
            if (!committed && CurrentLeader() is { } leader && (leader != askedLeader || leader.Core!.Term != askedTerm))
            {
                askedLeader = leader;
                askedTerm = leader.Core!.Term;
                leader.AppendData(Encoding.UTF8.GetBytes(payload), long.MaxValue, _ => committed = true, null);
                Trace($"append '{payload}' on the leader {leader.Id} (term {askedTerm})");
                Process(leader);
            }

            return committed;
        }, forUs);
    }
}
