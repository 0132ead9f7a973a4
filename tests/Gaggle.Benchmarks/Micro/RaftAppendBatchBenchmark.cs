using BenchmarkDotNet.Attributes;
using Gaggle.Raft;

namespace Gaggle.Benchmarks.Micro;

/// <summary>
/// The consensus core alone: a leader proposes a batch of 64-byte entries and three in-process
/// <see cref="RaftCore"/>s exchange messages (no codec, no channel, no storage) until the batch is
/// committed and applied everywhere.
/// </summary>
[MemoryDiagnoser]
public class RaftAppendBatchBenchmark
{
    private readonly Queue<(RaftCore To, RaftMessage Message)> _inFlight = new();
    private Dictionary<string, RaftCore> _cores = [];
    private RaftCore _leader = null!;
    private ReadOnlyMemory<byte>[] _batch = [];

    [Params(1, 64)]
    public int BatchSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string[] ids = ["n1", "n2", "n3"];
        _cores = ids.ToDictionary(id => id, id => new RaftCore(
            new RaftConfig { Id = id, Members = ids, Random = new Random(1) }, HardState.Empty, []));
        foreach (var core in _cores.Values)
        {
            core.EndStartupLease();
        }

        _leader = _cores["n1"];
        for (int tick = 0; tick < 1000 && _leader.Role != RaftRole.Leader; tick++)
        {
            _leader.Tick();
            Pump();
        }

        if (_leader.Role != RaftRole.Leader)
        {
            throw new InvalidOperationException("n1 did not become leader");
        }

        var payload = new byte[64];
        _batch = Enumerable.Range(0, BatchSize).Select(_ => (ReadOnlyMemory<byte>)payload).ToArray();
    }

    [Benchmark(Description = "propose, replicate, commit, apply (3 cores)")]
    public long ProposeAndCommit()
    {
        _leader.Propose(_batch);
        Pump();
        foreach (var core in _cores.Values)
        {
            // Keep memory flat across millions of iterations, as snapshots would.
            if (core.Log.Count > 10_000)
            {
                core.Log.Compact(core.Log.Applied);
            }
        }

        return _leader.CommitIndex;
    }

    /// <summary>Takes every core's Ready and delivers its messages until nothing moves.</summary>
    private void Pump()
    {
        bool moved = true;
        while (moved)
        {
            moved = false;
            foreach (var core in _cores.Values)
            {
                if (core.TakeReady() is not { } ready)
                {
                    continue;
                }

                moved = true;
                foreach (var message in ready.Messages)
                {
                    if (message.To is { } to)
                    {
                        _inFlight.Enqueue((_cores[to], message));
                    }
                    else
                    {
                        foreach (var peer in _cores.Values.Where(c => c != core))
                        {
                            _inFlight.Enqueue((peer, message));
                        }
                    }
                }
            }

            while (_inFlight.TryDequeue(out var delivery))
            {
                delivery.To.Step(delivery.Message);
                moved = true;
            }
        }
    }
}
