using Gaggle.Channels;
using Gaggle.Runtime;

namespace Gaggle.Tests.Simulation;

/// <summary>A message on its way from one node to another, with the sender's cluster generation (elastic runs; 0 otherwise).</summary>
internal readonly record struct Envelope(string From, string To, WireMessage Message, long Generation = 0)
{
    /// <summary>
    /// The bytes the receiver gets, encoded as the node's loop encodes them for the channel: the
    /// receiver decodes them as it would off Redis (a broadcast reads as a broadcast, fields the wire
    /// does not carry are lost), so the simulation runs the wire path that ships.
    /// </summary>
    public byte[] Payload => WireCodec.Encode(Message, Generation);

    /// <summary>When it was sent (real time).</summary>
    public long SentAtUs { get; init; }

    /// <summary>Its number on a network that keeps the send order.</summary>
    public long Number { get; init; }

    public override string ToString() => (Generation == 0 ? "" : $"g{Generation} ") + Message switch
    {
        RaftWireMessage raft => raft.Message.To is null ? $"{raft.Message} (to {To})" : raft.Message.ToString(),
        ForwardAppend forward => $"forward {forward.Entries.Count} appends {From} -> {To}",
        _ => $"{Message.GetType().Name} {From} -> {To}",
    };
}

/// <summary>How a node is cut from the hub (Redis) in an elastic run: its subscription, its command connection, or both.</summary>
internal enum HubCut
{
    /// <summary>It hears nothing (its subscription is down) but still sends and reaches the generation store.</summary>
    Deaf,

    /// <summary>It sends nothing and cannot reach the store (its command connection is down) but still hears.</summary>
    Mute,

    /// <summary>Neither: it lost Redis altogether.</summary>
    Isolated,
}

/// <summary>
/// The messages in flight between simulated nodes. Any of them may be delivered next (reordering),
/// dropped or duplicated; a partition splits the nodes into two sides and loses what crosses it. In an
/// elastic run the nodes talk through one hub (Redis pub/sub, which also keeps the generation store):
/// two sides that both reach it reach each other, so there a partition cuts some nodes from the hub
/// instead (see <see cref="HubCut"/>).
/// <paramref name="ids"/> are the nodes on the network (a broadcast reaches each of them, members of
/// the configuration or not); the simulator adds and takes ids as nodes join and stop for good.
/// </summary>
internal sealed class SimulatedNetwork(IReadOnlyList<string> ids, bool bySendTime = false)
{
    private readonly List<Envelope> _inFlight = [];

    /// <summary>With <c>bySendTime</c>: where each message in flight is in <see cref="_inFlight"/>, by its number, and the numbers by send time (those taken are skipped).</summary>
    private readonly Dictionary<long, int>? _positionOf = bySendTime ? [] : null;
    private readonly PriorityQueue<long, (long SentAtUs, long Number)> _sendOrder = new();
    private long _numbered;
    private Dictionary<string, int>? _sides;
    private Dictionary<string, HubCut>? _cuts;

    public int Count => _inFlight.Count;

    public IEnumerable<Envelope> InFlight => _inFlight;

    public bool IsPartitioned => _sides is not null || _cuts is not null || HubDown;

    /// <summary>Queues a message sent at <paramref name="nowUs"/> in cluster generation <paramref name="generation"/>; a broadcast (To == null) becomes one copy per other node.</summary>
    public void Send(string from, Outgoing message, long generation, long nowUs)
    {
        if (message.To is not null)
        {
            Add(new Envelope(from, message.To, message.Message, generation) { SentAtUs = nowUs });
            return;
        }

        foreach (var id in ids)
        {
            if (id != from)
            {
                Add(new Envelope(from, id, message.Message, generation) { SentAtUs = nowUs });
            }
        }
    }

    public Envelope PeekAt(int position) => _inFlight[position];

    /// <summary>The position of the message sent first (ties: the first queued), or -1 when none is in flight (kept only with <c>bySendTime</c>).</summary>
    public int OldestPosition()
    {
        var positions = _positionOf ?? throw new InvalidOperationException("This network does not keep its messages' send order.");
        while (_sendOrder.TryPeek(out long number, out _))
        {
            if (positions.TryGetValue(number, out int position))
            {
                return position;
            }

            _sendOrder.Dequeue();
        }

        return -1;
    }

    /// <summary>Removes and returns the message at <paramref name="position"/> (order is not kept: every pick is random).</summary>
    public Envelope TakeAt(int position)
    {
        var envelope = _inFlight[position];
        _inFlight[position] = _inFlight[^1];
        _inFlight.RemoveAt(_inFlight.Count - 1);
        if (_positionOf is not null)
        {
            _positionOf.Remove(envelope.Number);
            if (position < _inFlight.Count)
            {
                _positionOf[_inFlight[position].Number] = position;
            }
        }

        return envelope;
    }

    public void Duplicate(int position) => Add(_inFlight[position]);

    private void Add(Envelope envelope)
    {
        if (_positionOf is not null)
        {
            envelope = envelope with { Number = ++_numbered };
            _positionOf[envelope.Number] = _inFlight.Count;
            _sendOrder.Enqueue(envelope.Number, (envelope.SentAtUs, envelope.Number));
        }

        _inFlight.Add(envelope);
    }

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
        if (_positionOf is not null)
        {
            _positionOf.Clear();
            for (int i = 0; i < _inFlight.Count; i++)
            {
                _positionOf[_inFlight[i].Number] = i;
            }
        }

        return before - _inFlight.Count;
    }

    /// <summary>Whether a message from <paramref name="a"/> reaches <paramref name="b"/> now.</summary>
    public bool Connected(string a, string b)
        => !HubDown && (_cuts is not null ? !Cut(a, HubCut.Mute) && !Cut(b, HubCut.Deaf) : _sides is null || Side(a) == Side(b));

    /// <summary>Whether <paramref name="id"/> reaches the generation store now (its command connection is up).</summary>
    public bool ReachesStore(string id) => !HubDown && !Cut(id, HubCut.Mute);

    /// <summary>An elastic run's hub (Redis) is down: no message and no store operation gets through, for every node, those started meanwhile too.</summary>
    public bool HubDown { get; set; }

    /// <summary>Whether <paramref name="id"/> is cut in that way (or altogether).</summary>
    private bool Cut(string id, HubCut way) => _cuts is not null && _cuts.TryGetValue(id, out var cut) && (cut == way || cut == HubCut.Isolated);

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

    /// <summary>Splits the nodes in two: <paramref name="side"/> on one side, every other node (those that join later too) on the other.</summary>
    public void Split(IEnumerable<string> side)
    {
        _cuts = null;
        _sides = side.ToDictionary(id => id, _ => 1, StringComparer.Ordinal);
    }

    /// <summary>
    /// Cuts some of the nodes <paramref name="eligible"/> allows (one at least, and never all of two or
    /// more) from the hub, each in a way drawn from <paramref name="ways"/>; a node that joins later is
    /// connected. Returns the nodes cut (none when none is eligible).
    /// </summary>
    public IReadOnlyDictionary<string, HubCut> CutFromHub(Random random, IReadOnlyList<HubCut> ways, Func<string, bool> eligible)
    {
        var candidates = ids.Where(eligible).ToList();
        int count = Math.Min(candidates.Count, ids.Count <= 1 ? ids.Count : random.Next(1, ids.Count));
        var cuts = new Dictionary<string, HubCut>();
        foreach (var id in candidates.OrderBy(_ => random.Next()).Take(count).ToList())
        {
            cuts[id] = ways[random.Next(ways.Count)];
        }

        _sides = null;
        _cuts = cuts;
        return cuts;
    }

    /// <summary>Whether <paramref name="id"/> is cut from the hub now, in any way.</summary>
    public bool IsCut(string id) => _cuts is not null && _cuts.ContainsKey(id);

    public void Heal()
    {
        _sides = null;
        _cuts = null;
        HubDown = false;
    }
}
