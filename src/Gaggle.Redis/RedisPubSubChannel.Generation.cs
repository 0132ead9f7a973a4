using Gaggle.Channels;
using StackExchange.Redis;

namespace Gaggle.Redis;

/// <summary>
/// The cluster's generation (see <see cref="IClusterGenerationStore"/>) in one small Redis string,
/// <c>{prefix}:{cluster}:generation</c> (e.g. <c>gaggle:{orders}:generation</c>): a decimal number
/// with no expiry, written only by the scripts below, so it never goes down while Redis keeps it.
/// </summary>
public sealed partial class RedisPubSubChannel : IEchoingChannel
{
    private long _echoes;

    /// <inheritdoc/>
    long IEchoingChannel.EchoesHeard => Interlocked.Read(ref _echoes);

    private const string ClaimScript = """
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        if current == tonumber(ARGV[1]) then
          redis.call('SET', KEYS[1], current + 1)
          return 1
        end
        return 0
        """;

    private const string ReleaseScript = """
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        if current ~= tonumber(ARGV[1]) then
          return 0
        end
        if current == 1 then
          redis.call('DEL', KEYS[1])
        else
          redis.call('SET', KEYS[1], current - 1)
        end
        return 1
        """;

    private const string ConfirmScript = """
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        if current < tonumber(ARGV[1]) then
          redis.call('SET', KEYS[1], ARGV[1])
        end
        return current
        """;

    /// <summary>The Redis key holding this cluster's generation.</summary>
    public string GenerationKey => ChannelPrefix + "generation";

    /// <inheritdoc/>
    public async ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default)
    {
        var value = await Database().StringGetAsync(GenerationKey).WaitAsync(cancellationToken).ConfigureAwait(false);
        return value.IsNull ? 0 : ParseGeneration(value);
    }

    /// <inheritdoc/>
    public async ValueTask<bool> TryClaimGenerationAsync(long expected, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expected);
        var result = await Database().ScriptEvaluateAsync(ClaimScript, [GenerationKey], [expected]).WaitAsync(cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    /// <inheritdoc/>
    public async ValueTask<bool> TryReleaseClaimAsync(long claimed, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(claimed);
        var result = await Database().ScriptEvaluateAsync(ReleaseScript, [GenerationKey], [claimed]).WaitAsync(cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    /// <inheritdoc/>
    public async ValueTask<long> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        var result = await Database().ScriptEvaluateAsync(ConfirmScript, [GenerationKey], [generation]).WaitAsync(cancellationToken).ConfigureAwait(false);
        return (long)result;
    }

    private IDatabase Database() => (_connection ?? throw new InvalidOperationException($"The Redis channel of node '{NodeId}' is not connected; connect it before reading the cluster generation.")).GetDatabase();

    private long ParseGeneration(RedisValue value) => value.TryParse(out long generation) && generation >= 0
        ? generation
        : throw new InvalidOperationException($"The Redis key '{GenerationKey}' holds '{value}'; it must be a cluster generation (a non-negative integer). Delete it only if no node of this cluster runs.");
}
