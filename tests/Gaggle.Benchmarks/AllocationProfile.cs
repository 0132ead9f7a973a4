using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace Gaggle.Benchmarks;

/// <summary>
/// Samples allocations by type (the runtime's allocation tick, about one event per 100 KB allocated)
/// while it is enabled: the types that dominate what the hot path allocates. Turned on by
/// <c>--profile-allocations</c>; prints its table to standard error.
/// </summary>
internal sealed class AllocationProfile : EventListener
{
    private const EventKeywords GcKeyword = (EventKeywords)0x1;

    private readonly ConcurrentDictionary<string, long> _bytesByType = new(StringComparer.Ordinal);
    private volatile bool _recording;

    public void Start() => _recording = true;

    public void Stop() => _recording = false;

    /// <summary>The sampled bytes per type, largest first, as lines of text.</summary>
    public IEnumerable<string> Top(int count)
    {
        long total = Math.Max(1, _bytesByType.Values.Sum());
        return _bytesByType.OrderByDescending(kv => kv.Value).Take(count)
            .Select(kv => $"{100.0 * kv.Value / total,6:0.0}%  {kv.Key}");
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (!_recording || eventData.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) != true || eventData.Payload is null)
        {
            return;
        }

        int typeAt = eventData.PayloadNames?.IndexOf("TypeName") ?? -1;
        int amountAt = eventData.PayloadNames?.IndexOf("AllocationAmount64") ?? -1;
        if (typeAt < 0 || amountAt < 0)
        {
            return;
        }

        string type = eventData.Payload[typeAt] as string ?? "?";
        long amount = Convert.ToInt64(eventData.Payload[amountAt], System.Globalization.CultureInfo.InvariantCulture);
        _bytesByType.AddOrUpdate(type, amount, (_, sum) => sum + amount);
    }
}
