using BenchmarkDotNet.Attributes;
using Gaggle.Locks;

namespace Gaggle.Benchmarks.Micro;

/// <summary>The replicated lock table: applying an uncontended acquire and its release, and a contended hand-over, as every node does per committed entry.</summary>
[MemoryDiagnoser]
public class LockTableBenchmark
{
    private readonly LockTable _table = new();
    private LockCommand[] _acquires = [];
    private long _index;

    /// <summary>The contended table: 4 mutexes, each held, with 3 more requests queued behind the holder (16 clients on 4 names).</summary>
    private readonly LockTable _contended = new();
    private readonly Queue<(RequestId Request, long Token)>[] _holders = [.. Enumerable.Range(0, 4).Select(_ => new Queue<(RequestId, long)>())];
    private LockCommand[] _waits = [];
    private long _contendedIndex;
    private long _handOvers;

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
        _waits = Enumerable.Range(0, 4).Select(i => new LockCommand(LockCommandType.Acquire, $"shared:{i}", LeaseMs: 10_000, WaitMs: 1_000_000_000)).ToArray();
        for (int client = 0; client < 16; client++)
        {
            AcquireContended(client % 4);
        }
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

    [Benchmark(Description = "apply release handing a contended mutex over + the next acquire queuing (4 names, 4 clients each)")]
    public int HandOver()
    {
        // The four locks in turn (each hand-over applies two entries, so the entry index would not rotate them).
        int lockAt = (int)(_handOvers++ % 4);
        var (request, token) = _holders[lockAt].Dequeue();
        _contended.Apply(new LockCommand(LockCommandType.Release, _waits[lockAt].Name, Token: token), request, stamp: 0, index: ++_contendedIndex);
        int events = Record(lockAt);
        // The released client asks again, and waits at the back of the queue.
        return events + AcquireContended(lockAt);
    }

    private int AcquireContended(int lockAt)
    {
        long index = ++_contendedIndex;
        _contended.Apply(_waits[lockAt], new RequestId("n1", 1, index), stamp: 0, index: index);
        return Record(lockAt);
    }

    /// <summary>Notes the grants among the events just produced: the next holders of the lock, in the order they were granted.</summary>
    private int Record(int lockAt)
    {
        var events = _contended.TakeEvents();
        foreach (var e in events)
        {
            if (e.Type == LockEventType.Granted)
            {
                _holders[lockAt].Enqueue((e.Request, e.Token));
            }
        }

        return events.Count;
    }
}
