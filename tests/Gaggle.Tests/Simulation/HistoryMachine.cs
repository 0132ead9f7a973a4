using System.Text;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The application state machine every simulated node registers (<see cref="GaggleOptions.StateMachines"/>):
/// the application entries it applied, in order, each payload once. It is snapshotted and restored by
/// the node's own snapshot code, and checked by the <see cref="AppendChecker"/> at every apply and restore,
/// as part of the log of the node's cluster generation (<paramref name="generation"/>: 0 outside elastic runs).
/// </summary>
internal sealed class HistoryMachine(string node, AppendChecker checker, Func<long> generation) : IGaggleStateMachine
{
    public const string Name = "history";

    private readonly List<(long Index, string Payload)> _applied = [];
    private readonly HashSet<string> _payloads = new(StringComparer.Ordinal);

    public int Count => _applied.Count;

    public bool Contains(string payload) => _payloads.Contains(payload);

    public void Apply(GaggleLogEntry entry)
    {
        string payload = Encoding.UTF8.GetString(entry.Data.Span);
        if (!_payloads.Add(payload))
        {
            throw new SafetyViolationException($"exactly once: {node} applied '{payload}' a second time, at index {entry.Index}");
        }

        if (_applied.Count > 0 && _applied[^1].Index >= entry.Index)
        {
            throw new SafetyViolationException($"{node} applied application entry {entry.Index} after {_applied[^1].Index}");
        }

        _applied.Add((entry.Index, payload));
        checker.ObserveApplied(node, generation(), entry.Index, payload);
    }

    public void WriteSnapshot(Stream output)
    {
        using var writer = new BinaryWriter(output, Encoding.UTF8, leaveOpen: true);
        writer.Write7BitEncodedInt(_applied.Count);
        foreach (var (index, payload) in _applied)
        {
            writer.Write7BitEncodedInt64(index);
            writer.Write(payload);
        }
    }

    public void ReadSnapshot(Stream input)
    {
        using var reader = new BinaryReader(input, Encoding.UTF8, leaveOpen: true);
        _applied.Clear();
        _payloads.Clear();
        int count = reader.Read7BitEncodedInt();
        for (int i = 0; i < count; i++)
        {
            long index = reader.Read7BitEncodedInt64();
            string payload = reader.ReadString();
            if (!_payloads.Add(payload))
            {
                throw new SafetyViolationException($"exactly once: {node} restored a snapshot that applied '{payload}' twice");
            }

            _applied.Add((index, payload));
        }

        checker.ObserveRestored(node, generation(), _applied);
    }
}

/// <summary>
/// Exactly-once application of acknowledged appends: every payload is applied at one index, the same on
/// every node (and in every snapshot); an append acknowledged at index i was applied at i; and once
/// the cluster settles, every node's state machine holds every acknowledged payload. In an elastic run
/// all of it holds per cluster generation: indexes are those of a generation's log, and what a
/// generation acknowledged is held by the nodes of that generation only (a new generation starts from
/// nothing, but for a forced one: see <see cref="Fork"/>). A payload may be applied in two generations: an append a node forwarded to the leader of
/// one (which committed it unseen by the node) is proposed again when that node founds the next.
/// </summary>
internal sealed class AppendChecker
{
    private readonly Dictionary<(long Generation, long Index), string> _byIndex = [];
    private readonly Dictionary<(long Generation, string Payload), long> _indexOf = [];
    private readonly Dictionary<string, (long Generation, long Index)> _acknowledged = new(StringComparer.Ordinal);

    public int Acknowledged => _acknowledged.Count;

    public void ObserveApplied(string node, long generation, long index, string payload)
    {
        if (_byIndex.TryGetValue((generation, index), out var known))
        {
            if (known != payload)
            {
                throw new SafetyViolationException($"state machine safety: {node} applied '{payload}' at index {index}{Of(generation)}, where '{known}' was applied before");
            }

            return;
        }

        if (_indexOf.TryGetValue((generation, payload), out long at))
        {
            throw new SafetyViolationException($"exactly once: {node} applied '{payload}' at index {index}{Of(generation)}, but it was applied at index {at} before");
        }

        _byIndex[(generation, index)] = payload;
        _indexOf[(generation, payload)] = index;
    }

    public void ObserveRestored(string node, long generation, IReadOnlyList<(long Index, string Payload)> applied)
    {
        foreach (var (index, payload) in applied)
        {
            ObserveApplied(node + " (restored)", generation, index, payload);
        }
    }

    /// <summary>
    /// The append of <paramref name="payload"/> completed at <paramref name="index"/> on its node: where
    /// it was applied, or (covered by a snapshot its node installed) the snapshot's index, a later one.
    /// </summary>
    public void ObserveAcknowledged(string node, long generation, string payload, long index)
    {
        if (!_indexOf.TryGetValue((generation, payload), out long at) || at > index)
        {
            throw new SafetyViolationException(
                $"{node}'s append of '{payload}' was acknowledged at index {index}{Of(generation)}, but it was applied {(at == 0 ? "nowhere" : $"at index {at}")} there");
        }

        _acknowledged[payload] = (generation, index);
    }

    /// <summary>Nothing acknowledged is lost: <paramref name="machine"/> (of a node of <paramref name="generation"/> that applied everything committed) holds every payload that generation acknowledged.</summary>
    public void CheckHoldsAll(string node, long generation, HistoryMachine machine)
    {
        foreach (var (payload, at) in _acknowledged)
        {
            if (at.Generation == generation && !machine.Contains(payload))
            {
                throw new SafetyViolationException($"durability: '{payload}', acknowledged at index {at.Index}{Of(generation)}, is not in {node}'s state machine");
            }
        }
    }

    /// <summary>The cluster of <paramref name="generation"/> ended and its number was founded again: what it applied and acknowledged is gone with it.</summary>
    public void Close(long generation)
    {
        foreach (var key in _byIndex.Keys.Where(k => k.Generation == generation).ToList())
        {
            _byIndex.Remove(key);
        }

        foreach (var key in _indexOf.Keys.Where(k => k.Generation == generation).ToList())
        {
            _indexOf.Remove(key);
        }

        foreach (var (payload, _) in _acknowledged.Where(a => a.Value.Generation == generation).ToList())
        {
            _acknowledged.Remove(payload);
        }
    }

    /// <summary>
    /// An operator forced generation <paramref name="forced"/> on a survivor of <paramref name="generation"/>
    /// that had applied up to <paramref name="upTo"/>: the new generation's log starts with that prefix,
    /// so what was applied there, and what was acknowledged there, is the new generation's too (what the
    /// old one applied or acknowledged after it is lost by design).
    /// </summary>
    public void Fork(long generation, long forced, long upTo)
    {
        foreach (var ((_, index), payload) in _byIndex.Where(e => e.Key.Generation == generation && e.Key.Index <= upTo).ToList())
        {
            _byIndex[(forced, index)] = payload;
            _indexOf[(forced, payload)] = index;
        }

        foreach (var (payload, _) in _acknowledged.Where(a => a.Value.Generation == generation && a.Value.Index <= upTo).ToList())
        {
            _acknowledged[payload] = (forced, _acknowledged[payload].Index);
        }
    }

    private static string Of(long generation) => generation == 0 ? "" : $" of generation {generation}";
}
