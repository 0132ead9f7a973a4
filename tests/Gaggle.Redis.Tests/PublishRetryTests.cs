using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>What a failing PUBLISH costs and how it is counted, for the retry settings at their edges.</summary>
[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class PublishRetryTests
{
    [TestCase(0)]
    [TestCase(1)]
    [TestCase(3)]
    public async Task EveryFailedPublishAttemptIsCountedAndTheMessageDroppedOnceAfterPublishRetriesRetries(int retries)
    {
        var configuration = await RedisServer.RequireAsync();
        string user = "nopub-" + Guid.NewGuid().ToString("N")[..8];
        await using var admin = await ConnectionMultiplexer.ConnectAsync(configuration + ",allowAdmin=true");
        // A user that may subscribe but not publish: every PUBLISH fails with NOPERM (a RedisServerException).
        await admin.GetDatabase().ExecuteAsync("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-publish");
        try
        {
            var channel = new RedisPubSubChannel("a", new RedisPubSubChannelOptions
            {
                Configuration = configuration + $",user={user},password=pw",
                ClusterName = user,
                PublishRetries = retries,
                PublishRetryDelay = TimeSpan.FromMilliseconds(1),
            });
            await using (channel)
            {
                await channel.ConnectAsync(_ => { });
                await channel.SendAsync("b", new byte[] { 1 });
                await Eventually.True(() => channel.Statistics.PublishesDropped == 1, "the message to be given up on");
                using (Assert.EnterMultipleScope())
                {
                    Assert.That(channel.Statistics.PublishFailures, Is.EqualTo(retries + 1), "the first attempt and each retry failed");
                    Assert.That(channel.Statistics.Published, Is.Zero);
                }
            }
        }
        finally
        {
            await admin.GetDatabase().ExecuteAsync("ACL", "DELUSER", user);
        }
    }
}
