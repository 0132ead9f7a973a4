using Gaggle.Tests.Support;
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
        await CreateUserWhoMayNotPublishAsync(admin, user);
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

    [Test]
    public async Task RetryDelaysRunOnTheChannelsClock()
    {
        var configuration = await RedisServer.RequireAsync();
        string user = "nopub-" + Guid.NewGuid().ToString("N")[..8];
        await using var admin = await ConnectionMultiplexer.ConnectAsync(configuration + ",allowAdmin=true");
        await CreateUserWhoMayNotPublishAsync(admin, user);
        try
        {
            var clock = new ManualTimeProvider();
            // 30 s, 60 s, ... on the system clock would outlast the deadline below many times over.
            var options = new RedisPubSubChannelOptions
            {
                Configuration = configuration + $",user={user},password=pw",
                ClusterName = user,
                PublishRetries = 2,
                PublishRetryDelay = TimeSpan.FromSeconds(30),
            };
            await using var channel = new RedisPubSubChannel("a", options, timeProvider: clock);
            await channel.ConnectAsync(_ => { });
            await channel.SendAsync("b", new byte[] { 1 });
            await Eventually.True(() => channel.Statistics.PublishFailures == 1, "the first attempt to fail");
            await Eventually.True(
                () =>
                {
                    clock.Advance(TimeSpan.FromSeconds(10));
                    return channel.Statistics.PublishesDropped == 1;
                },
                "the retries to run as the manual clock moves",
                TimeSpan.FromSeconds(10));
            Assert.That(channel.Statistics.PublishFailures, Is.EqualTo(3));
        }
        finally
        {
            await admin.GetDatabase().ExecuteAsync("ACL", "DELUSER", user);
        }
    }

    private static async Task CreateUserWhoMayNotPublishAsync(IConnectionMultiplexer admin, string user)
    {
        // Redis 7 gives a new user no channels unless told "&*"; Garnet has no channel permissions and
        // rejects the rule, every channel being allowed there anyway.
        object[] channels = RedisServer.IsEmbedded ? [] : ["&*"];
        await admin.GetDatabase().ExecuteAsync("ACL", ["SETUSER", user, "on", ">pw", "~*", .. channels, "+@all", "-publish"]);
    }
}
