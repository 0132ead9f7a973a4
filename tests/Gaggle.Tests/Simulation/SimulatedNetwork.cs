using Gaggle.Channels;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>A message on its way from one node to another (decoded: the codec has tests of its own).</summary>
internal readonly record struct Envelope(string From, string To, WireMessage Message)
{
    public override string ToString() => Message switch
    {
        RaftWireMessage raft => raft.Message.To is null ? $"{raft.Message} (to {To})" : raft.Message.ToString(),
        ForwardAppend forward => $"forward {forward.Entries.Count} appends {From} -> {To}",
        _ => $"{Message.GetType().Name} {From} -> {To}",
    };
}

/// <summary>
/// The messages in flight between simulated nodes. Any of them may be delivered next (reordering),
/// dropped or duplicated; a partition splits the nodes into two sides and loses what crosses it.
/// <paramref name="ids"/> are the nodes on the network (a broadcast reaches each of them, members of
/// the configuration or not); the simulator adds and takes ids as nodes join and stop for good.
/// </summary>
internal sealed class SimulatedNetwork(IReadOnlyList<string> ids)
{
    private readonly List<Envelope> _inFlight = [];
    private Dictionary<string, int>? _sides;

    public int Count => _inFlight.Count;

    public bool IsPartitioned => _sides is not null;

    /// <summary>Queues a message; a broadcast (To == null) becomes one copy per other node.</summary>
    public void Send(string from, Outgoing message)
    {
        if (message.To is not null)
        {
            _inFlight.Add(new Envelope(from, message.To, message.Message));
            return;
        }

        foreach (var id in ids)
        {
            if (id != from)
            {
                _inFlight.Add(new Envelope(from, id, message.Message));
            }
        }
    }

    public Envelope PeekAt(int position) => _inFlight[position];

    /// <summary>Removes and returns the message at <paramref name="position"/> (order is not kept: every pick is random).</summary>
    public Envelope TakeAt(int position)
    {
        var envelope = _inFlight[position];
        _inFlight[position] = _inFlight[^1];
        _inFlight.RemoveAt(_inFlight.Count - 1);
        return envelope;
    }

    public void Duplicate(int position) => _inFlight.Add(_inFlight[position]);

    /// <summary>Drops each message addressed to <paramref name="node"/> with probability one half.</summary>
    public int DropSomeTo(string node, Random random)
    {
        int dropped = 0;
        for (int i = _inFlight.Count - 1; i >= 0; i--)
        {
            if (_inFlight[i].To == node && random.Next(2) == 0)
            {
                TakeAt(i);
                dropped++;
            }
        }

        return dropped;
    }

    /// <summary>Drops every message to or from <paramref name="node"/>.</summary>
    public int DropAllOf(string node)
    {
        int before = _inFlight.Count;
        _inFlight.RemoveAll(e => e.From == node || e.To == node);
        return before - _inFlight.Count;
    }

    public bool Connected(string a, string b) => _sides is null || Side(a) == Side(b);

    /// <summary>A node that joined after the partition was made is on its first side.</summary>
    private int Side(string id) => _sides!.GetValueOrDefault(id);

    /// <summary>Splits the nodes into two non-empty sides at random.</summary>
    public string Partition(Random random)
    {
        var sides = new Dictionary<string, int>();
        int first = random.Next(ids.Count);
        int second = (first + 1 + random.Next(ids.Count - 1)) % ids.Count;
        for (int i = 0; i < ids.Count; i++)
        {
            sides[ids[i]] = i == first ? 0 : i == second ? 1 : random.Next(2);
        }

        _sides = sides;
        return string.Join(" | ", sides.GroupBy(s => s.Value).OrderBy(g => g.Key).Select(g => string.Join(",", g.Select(s => s.Key))));
    }

    public void Heal() => _sides = null;
}
