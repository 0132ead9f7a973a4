using System.Diagnostics;

namespace Gaggle.Tests.Support;

/// <summary>Waits for a condition with a deadline; the condition is polled, not timed.</summary>
internal static class Eventually
{
    public static readonly TimeSpan DefaultDeadline = TimeSpan.FromSeconds(20);

    public static async Task<T> Get<T>(Func<T?> probe, string what, TimeSpan? deadline = null)
        where T : class
    {
        var watch = Stopwatch.StartNew();
        var limit = deadline ?? DefaultDeadline;
        while (true)
        {
            if (probe() is { } value)
            {
                return value;
            }

            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Gave up after {limit.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(5).ConfigureAwait(false);
        }
    }

    public static async Task True(Func<bool> condition, string what, TimeSpan? deadline = null)
    {
        await Get(() => condition() ? "" : null, what, deadline).ConfigureAwait(false);
    }
}
