using System.Diagnostics;
using Gaggle.Channels;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>
/// What every generation store (<see cref="IClusterGenerationStore"/>) must do, run against the
/// in-memory one and Redis's scripts: compare whole ids (number and founder's tag), order by number,
/// and report how and how long ago the value last changed, a claim given back putting back the change
/// before it.
/// </summary>
public abstract class GenerationStoreContractTests
{
    /// <summary>Generation 1 founded by A, by B (another tag), and generation 2 founded by C.</summary>
    protected static readonly long A1 = (0x5A5A5AL << GenerationIds.NumberBits) | 1, B1 = (0x3B3B3BL << GenerationIds.NumberBits) | 1, C2 = (0x1C1C1CL << GenerationIds.NumberBits) | 2;

    /// <summary>A connected store with no value recorded.</summary>
    protected abstract Task<IClusterGenerationStore> CreateAsync();

    /// <summary>Writes <paramref name="value"/> as a value by hand would be (an operator, an older release).</summary>
    protected abstract Task WriteByHandAsync(string value);

    [TearDown]
    public virtual Task TearDownAsync() => Task.CompletedTask;

    [Test]
    public async Task A_claim_compares_the_whole_id()
    {
        var store = await CreateAsync();
        Assert.That(await store.ReadGenerationAsync(), Is.Zero);
        Assert.That(await store.TryClaimGenerationAsync(0, A1), Is.True);
        Assert.That(await store.TryClaimGenerationAsync(0, B1), Is.False, "the value is no longer none");
        Assert.That(await store.TryClaimGenerationAsync(B1, C2), Is.False, "generation 1, but another founder's");
        Assert.That(await store.ReadGenerationAsync(), Is.EqualTo(A1));
        Assert.That(await store.TryClaimGenerationAsync(A1, C2), Is.True);
        Assert.That(await store.ReadGenerationAsync(), Is.EqualTo(C2));
    }

    [Test]
    public async Task A_confirmation_writes_only_over_none_or_a_lower_number_and_says_so()
    {
        var store = await CreateAsync();
        var restored = await store.ConfirmGenerationAsync(A1);
        Assert.That((restored.Recorded, restored.Change, restored.SinceChange), Is.EqualTo((0L, GenerationChange.Restored, TimeSpan.Zero)));
        var rival = await store.ConfirmGenerationAsync(B1);
        Assert.That((rival.Recorded, rival.Change), Is.EqualTo((A1, GenerationChange.Restored)), "the same number under another tag is not lower: nothing written");
        Assert.That(await store.ReadGenerationAsync(), Is.EqualTo(A1));
        var replaced = await store.ConfirmGenerationAsync(C2);
        Assert.That((replaced.Recorded, replaced.Change, replaced.SinceChange), Is.EqualTo((A1, GenerationChange.Replaced, TimeSpan.Zero)));
        var older = await store.ConfirmGenerationAsync(A1);
        Assert.That((older.Recorded, older.Change), Is.EqualTo((C2, GenerationChange.Replaced)), "a lower number writes nothing");
        Assert.That(await store.ReadGenerationAsync(), Is.EqualTo(C2));
    }

    [Test]
    public async Task A_confirmation_reports_how_long_ago_the_value_changed_by_the_stores_clock()
    {
        var store = await CreateAsync();
        Assert.That(await store.TryClaimGenerationAsync(0, A1), Is.True);
        var sinceClaim = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromMilliseconds(30));
        var answer = await store.ConfirmGenerationAsync(A1);
        var elapsed = sinceClaim.Elapsed;
        Assert.That(answer.Change, Is.EqualTo(GenerationChange.Claimed));
        Assert.That(answer.SinceChange, Is.InRange(TimeSpan.FromMilliseconds(25), elapsed + TimeSpan.FromMilliseconds(5)), "at least the wait, at most what passed since the claim returned (1 ms resolution)");
    }

    [Test]
    public async Task A_claim_given_back_puts_back_the_value_and_the_change_before_it()
    {
        var store = await CreateAsync();
        await store.ConfirmGenerationAsync(A1);
        Assert.That(await store.TryClaimGenerationAsync(A1, C2), Is.True);
        Assert.That(await store.TryReleaseClaimAsync(B1, A1), Is.False, "only the claimed id is given back");
        Assert.That(await store.TryReleaseClaimAsync(C2, A1), Is.True);
        var answer = await store.ConfirmGenerationAsync(A1);
        Assert.That((answer.Recorded, answer.Change), Is.EqualTo((A1, GenerationChange.Restored)), "nobody acted under the claim: the restore is still the last change");
        Assert.That(answer.SinceChange, Is.LessThan(TimeSpan.FromMinutes(1)));
        Assert.That(await store.TryReleaseClaimAsync(C2, A1), Is.False, "given back once");

        Assert.That(await store.TryClaimGenerationAsync(A1, C2), Is.True);
        Assert.That(await store.TryReleaseClaimAsync(C2, 0), Is.True);
        Assert.That(await store.ReadGenerationAsync(), Is.Zero, "given back to none");
    }

    [Test]
    public async Task A_bare_number_written_by_hand_is_a_generation_changed_long_ago()
    {
        var store = await CreateAsync();
        await WriteByHandAsync("3");
        Assert.That(await store.ReadGenerationAsync(), Is.EqualTo(3));
        var answer = await store.ConfirmGenerationAsync(3);
        Assert.That((answer.Recorded, answer.Change, answer.SinceChange), Is.EqualTo((3L, GenerationChange.Unknown, TimeSpan.MaxValue)));
    }
}

[TestFixture]
public sealed class InMemoryGenerationStoreContractTests : GenerationStoreContractTests
{
    private InMemoryNetwork _network = new(1);

    protected override Task<IClusterGenerationStore> CreateAsync()
    {
        _network = new InMemoryNetwork(1);
        return Task.FromResult<IClusterGenerationStore>(_network.CreateChannel("a"));
    }

    protected override Task WriteByHandAsync(string value)
    {
        _network.WriteGenerationByHand(long.Parse(value, System.Globalization.CultureInfo.InvariantCulture));
        return Task.CompletedTask;
    }
}

[TestFixture]
[Category("Redis")]
public sealed class RedisGenerationStoreContractTests : GenerationStoreContractTests
{
    private RedisPubSubChannel? _channel;

    protected override async Task<IClusterGenerationStore> CreateAsync()
    {
        var configuration = await RedisServer.RequireAsync();
        _channel = new RedisPubSubChannel("a", new RedisPubSubChannelOptions { Configuration = configuration, ClusterName = "store-" + Guid.NewGuid().ToString("N")[..12] });
        await _channel.ConnectAsync(_ => { });
        return _channel;
    }

    protected override async Task WriteByHandAsync(string value)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(await RedisServer.RequireAsync());
        await redis.GetDatabase().StringSetAsync(_channel!.GenerationKey, value);
    }

    [Test]
    public async Task A_value_that_is_no_generation_fails_every_call_naming_the_key()
    {
        var store = await CreateAsync();
        await WriteByHandAsync("banana");
        Assert.That(async () => await store.ReadGenerationAsync(), Throws.InvalidOperationException.With.Message.Contains(_channel!.GenerationKey).And.Message.Contains("banana"));
        Assert.That(async () => await store.ConfirmGenerationAsync(1), Throws.InstanceOf<RedisServerException>().With.Message.Contains(_channel.GenerationKey).And.Message.Contains("banana"));
    }

    /// <summary>A change stamped ahead of the server's clock (its TIME stepped back, or a failover to a node whose clock lags) reads as made now, not as long ago.</summary>
    [Test]
    public async Task A_change_stamped_ahead_of_the_servers_clock_is_taken_as_made_now()
    {
        var store = await CreateAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(await RedisServer.RequireAsync());
        var time = (RedisResult[])(await redis.GetDatabase().ExecuteAsync("TIME"))!;
        long aheadMs = (((long)time[0]) * 1000) + (((long)time[1]) / 1000) + 5_000;
        await WriteByHandAsync($"{A1}:{aheadMs}:s");
        var answer = await store.ConfirmGenerationAsync(A1);
        Assert.That((answer.Recorded, answer.Change, answer.SinceChange), Is.EqualTo((A1, GenerationChange.Restored, TimeSpan.Zero)));
    }

    public override async Task TearDownAsync()
    {
        if (_channel is not null)
        {
            await _channel.DisposeAsync();
        }
    }
}
