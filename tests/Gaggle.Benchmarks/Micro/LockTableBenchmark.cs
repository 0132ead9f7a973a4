using BenchmarkDotNet.Attributes;
using Gaggle.Locks;

namespace Gaggle.Benchmarks.Micro;

/// <summary>The replicated lock table: applying an uncontended acquire and its release, as every node does per committed entry.</summary>
[MemoryDiagnoser]
public class LockTableBenchmark
{
    private readonly LockTable _table = new();
    private LockCommand[] _acquires = [];
    private long _index;

    /// <summary>Other locks held all along (long leases): the cost per command must not grow with them.</summary>
    [Params(0, 10_000)]
    public int Held { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _acquires = Enumerable.Range(0, 1024).Select(i => new LockCommand(LockCommandType.Acquire, $"orders:{i}", LeaseMs: 10_000)).ToArray();
        for (int i = 0; i < Held; i++)
        {
            _table.Apply(new LockCommand(LockCommandType.Acquire, $"held:{i}", LeaseMs: 1_000_000_000), new RequestId("n2", 1, i + 1), stamp: 0, index: ++_index);
        }

        _table.TakeEvents();
    }

    [Benchmark(Description = "apply acquire + release (1024 names)")]
    public int AcquireAndRelease()
    {
        long index = ++_index;
        var acquire = _acquires[index % _acquires.Length];
        var request = new RequestId("n1", 1, index);
        _table.Apply(acquire, request, stamp: index, index: index * 2);
        var granted = _table.TakeEvents();
        long token = granted.Count == 1 && granted[0].Type == LockEventType.Granted
            ? granted[0].Token
            : throw new InvalidOperationException($"expected one grant, got {granted.Count} events");
        _table.Apply(new LockCommand(LockCommandType.Release, acquire.Name, Token: token), request, stamp: index, index: (index * 2) + 1);
        return _table.TakeEvents().Count;
    }
}
