using Gaggle.Raft;

namespace Gaggle.Tests.LockSimulation;

/// <summary>What travels between simulated nodes: a Raft message, or appends a follower forwards to the leader.</summary>
internal sealed record LockSimPacket(string From, string To, RaftMessage? Raft, IReadOnlyList<byte[]>? Forwarded)
{
    public override string ToString() => Raft is { } message ? message.ToString() : $"forward {Forwarded!.Count} appends {From} -> {To}";
}

/// <summary>
/// Packets in flight. Any of them may be delivered next (reordering), dropped or duplicated; a
/// partition splits the nodes into two sides and loses what crosses it.
/// </summary>
internal sealed class LockSimNetwork(IReadOnlyList<string> ids)
{
    private readonly List<LockSimPacket> _inFlight = [];
    private Dictionary<string, int>? _sides;

    public int Count => _inFlight.Count;

    public bool IsPartitioned => _sides is not null;

    public void Send(string from, RaftMessage message)
    {
        if (message.To is not null)
        {
            _inFlight.Add(new LockSimPacket(from, message.To, message, null));
            return;
        }

        foreach (var id in ids)
        {
            if (id != from)
            {
                _inFlight.Add(new LockSimPacket(from, id, message, null));
            }
        }
    }

    public void Forward(string from, string to, IReadOnlyList<byte[]> entries) => _inFlight.Add(new LockSimPacket(from, to, null, entries));

    public LockSimPacket PeekAt(int position) => _inFlight[position];

    public LockSimPacket TakeAt(int position)
    {
        var packet = _inFlight[position];
        _inFlight[position] = _inFlight[^1];
        _inFlight.RemoveAt(_inFlight.Count - 1);
        return packet;
    }

    public void Duplicate(int position) => _inFlight.Add(_inFlight[position]);

    /// <summary>A crashed node's socket buffers are gone: each packet to it is lost with probability one half.</summary>
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

    public bool Connected(string a, string b) => _sides is null || _sides[a] == _sides[b];

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
