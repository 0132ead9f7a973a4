using System.Text.Json;

namespace Gaggle.Samples.WebApp;

/// <summary>One committed application entry as <c>GET /log</c> shows it.</summary>
/// <param name="Index">The entry's log index.</param>
/// <param name="Term">The term it was appended in.</param>
/// <param name="Data">The JSON value that was posted.</param>
public sealed record EventLogEntry(long Index, long Term, JsonElement Data);

/// <summary>
/// The committed application entries, built by the node from its log (an <see cref="IGaggleStateMachine"/>
/// registered in <see cref="GaggleOptions.StateMachines"/>): it is part of the node's snapshots, so a
/// node that catches up from a snapshot still has every entry. Kept in memory: a real application
/// would fold the entries into its own state rather than keep them all.
/// </summary>
public sealed class EventLog : IGaggleStateMachine
{
    /// <summary>The name the state machine is registered under (stable: snapshots are keyed by it).</summary>
    public const string Name = "webapp.event-log";

    private readonly Lock _gate = new();
    private readonly List<EventLogEntry> _entries = [];

    /// <summary>The entries with an index of at least <paramref name="from"/>, in log order.</summary>
    public IReadOnlyList<EventLogEntry> From(long from)
    {
        lock (_gate)
        {
            int first = _entries.FindIndex(e => e.Index >= from);
            return first < 0 ? [] : _entries.GetRange(first, _entries.Count - first);
        }
    }

    /// <inheritdoc />
    public void Apply(GaggleLogEntry entry)
    {
        // Every node holds the same bytes; an entry that is not JSON (appended by another client of
        // the cluster) is kept as a string so that all replicas stay identical.
        var data = Parse(entry.Data);
        lock (_gate)
        {
            _entries.Add(new EventLogEntry(entry.Index, entry.Term, data));
        }
    }

    /// <inheritdoc />
    public void WriteSnapshot(Stream output)
    {
        lock (_gate)
        {
            JsonSerializer.Serialize(output, _entries);
        }
    }

    /// <inheritdoc />
    public void ReadSnapshot(Stream input)
    {
        var entries = JsonSerializer.Deserialize<List<EventLogEntry>>(input) ?? [];
        lock (_gate)
        {
            _entries.Clear();
            _entries.AddRange(entries);
        }
    }

    private static JsonElement Parse(ReadOnlyMemory<byte> data)
    {
        try
        {
            using var document = JsonDocument.Parse(data);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return JsonSerializer.SerializeToElement(System.Text.Encoding.UTF8.GetString(data.Span));
        }
    }
}
