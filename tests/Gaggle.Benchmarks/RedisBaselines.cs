using System.Diagnostics;
using StackExchange.Redis;

namespace Gaggle.Benchmarks;

/// <summary>
/// What plain Redis does on the same server, for scale: a PUBLISH seen by a subscriber (the floor
/// under every Gaggle message hop) and SET NX PX + DEL pairs (the usual Redis lock).
/// </summary>
internal static class RedisBaselines
{
    /// <summary>One message at a time: PUBLISH on one connection, received through a subscription on another.</summary>
    public static async Task<Latencies> PublishRoundTripAsync(string configuration, TimeSpan duration)
    {
        await using var publisher = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        await using var subscriber = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        var channel = RedisChannel.Literal($"gaggle-bench:{Guid.NewGuid():N}");
        var queue = await subscriber.GetSubscriber().SubscribeAsync(channel).ConfigureAwait(false);
        var latencies = new Latencies();
        var payload = new byte[64];
        var clock = Stopwatch.StartNew();
        using var cancel = new CancellationTokenSource(duration + TimeSpan.FromSeconds(2));
        while (clock.Elapsed < duration)
        {
            long started = Stopwatch.GetTimestamp();
            await publisher.GetSubscriber().PublishAsync(channel, payload).ConfigureAwait(false);
            await queue.ReadAsync(cancel.Token).ConfigureAwait(false);
            latencies.Add(started);
        }

        await queue.UnsubscribeAsync().ConfigureAwait(false);
        return latencies;
    }

    /// <summary>SET key NX PX 10000 then DEL, from <paramref name="clients"/> concurrent loops on one connection; pairs per second.</summary>
    public static async Task<double> SetNxLockOpsPerSecondAsync(string configuration, int clients, TimeSpan duration)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        var db = connection.GetDatabase();
        string prefix = $"gaggle-bench:{Guid.NewGuid():N}";
        long pairs = 0;
        var clock = Stopwatch.StartNew();
        async Task Client(int client)
        {
            for (int i = 0; clock.Elapsed < duration; i++)
            {
                RedisKey key = $"{prefix}:{client}:{i % 16}";
                if (await db.StringSetAsync(key, "holder", TimeSpan.FromSeconds(10), When.NotExists).ConfigureAwait(false))
                {
                    await db.KeyDeleteAsync(key).ConfigureAwait(false);
                    Interlocked.Increment(ref pairs);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(Client)).ConfigureAwait(false);
        return Interlocked.Read(ref pairs) / clock.Elapsed.TotalSeconds;
    }
}
