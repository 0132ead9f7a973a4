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

    /// <summary>
    /// The floor under a commit of a three-voter cluster over pub/sub, with no processing at all: one
    /// connection PUBLISHes a message to each of two others, each answers with a PUBLISH the moment it
    /// reads the message, and the time is taken when the first answer is read (the leader's own copy and
    /// one acknowledgement make a majority). Each of the three has a connection of its own, as each node
    /// has. The second answer is read before the next round, untimed.
    /// </summary>
    public static async Task<Latencies> PublishToTwoAndFirstAnswerAsync(string configuration, TimeSpan duration)
    {
        string prefix = $"gaggle-bench:{Guid.NewGuid():N}";
        await using var leader = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        await using var first = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        await using var second = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        var answers = RedisChannel.Literal(prefix + ":leader");
        var answersQueue = await leader.GetSubscriber().SubscribeAsync(answers).ConfigureAwait(false);
        using var cancel = new CancellationTokenSource(duration + TimeSpan.FromSeconds(5));
        var followers = new List<(RedisChannel Channel, ChannelMessageQueue Queue, Task Answering)>();
        foreach (var (connection, name) in new[] { (first, "f1"), (second, "f2") })
        {
            var channel = RedisChannel.Literal($"{prefix}:{name}");
            var queue = await connection.GetSubscriber().SubscribeAsync(channel).ConfigureAwait(false);
            var subscriber = connection.GetSubscriber();
            followers.Add((channel, queue, Answer(queue, subscriber)));
        }

        async Task Answer(ChannelMessageQueue queue, ISubscriber subscriber)
        {
            try
            {
                while (true)
                {
                    var message = await queue.ReadAsync(cancel.Token).ConfigureAwait(false);
                    _ = subscriber.PublishAsync(answers, message.Message);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or System.Threading.Channels.ChannelClosedException)
            {
                // The run is over.
            }
        }

        var latencies = new Latencies();
        var payload = new byte[64];
        var publisher = leader.GetSubscriber();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            long started = Stopwatch.GetTimestamp();
            _ = publisher.PublishAsync(followers[0].Channel, payload);
            _ = publisher.PublishAsync(followers[1].Channel, payload);
            await answersQueue.ReadAsync(cancel.Token).ConfigureAwait(false);
            latencies.Add(started);
            await answersQueue.ReadAsync(cancel.Token).ConfigureAwait(false);
        }

        await cancel.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(followers.Select(f => f.Answering)).ConfigureAwait(false);
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
