using System.Diagnostics;

namespace Gaggle.Redis.Tests;

/// <summary>Waits for a condition with a deadline (polled; never a guessed sleep).</summary>
internal static class Eventually
{
    public static async Task True(Func<bool> condition, string what, TimeSpan? deadline = null)
    {
        var limit = deadline ?? TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Gave up after {limit.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(5);
        }
    }
}
