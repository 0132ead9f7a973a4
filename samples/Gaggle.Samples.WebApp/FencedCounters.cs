using Gaggle.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Gaggle.Samples.WebApp;

/// <summary>The outcome of a fenced increment.</summary>
/// <param name="Accepted">False when the store refused the write: a newer holder of the lock has written since.</param>
/// <param name="Value">The counter's value after the write (or as it stands, when refused).</param>
/// <param name="Fence">The highest fencing token the counter has accepted.</param>
public sealed record FencedWrite(bool Accepted, long Value, long Fence);

/// <summary>
/// Counters in Redis that remember the highest fencing token that wrote to them and refuse a write
/// with a lower one. The lock alone cannot protect them: a holder paused past its lease (GC, VM
/// freeze, a slow network) wakes up believing it still holds the lock while the next holder is
/// already writing. The fence makes the store itself reject the late write.
/// </summary>
public sealed class FencedCounters(IConnectionMultiplexer redis, IOptions<GaggleHostingOptions> hosting)
{
    // KEYS[1] counter hash {value, fence}; KEYS[2] sorted set of counter names by last write (ms).
    // ARGV[1] fencing token; ARGV[2] counter name. Equal tokens pass: one hold may write many times.
    private const string IncrementScript = """
        local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
        local token = tonumber(ARGV[1])
        if token < fence then
          return {0, tonumber(redis.call('HGET', KEYS[1], 'value') or '0'), fence}
        end
        local value = redis.call('HINCRBY', KEYS[1], 'value', 1)
        redis.call('HSET', KEYS[1], 'fence', ARGV[1])
        local now = redis.call('TIME')
        redis.call('ZADD', KEYS[2], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), ARGV[2])
        return {1, value, token}
        """;

    // KEYS[1] sorted set of counters; KEYS[2] the cleanup job's fence. ARGV[1] the job's fencing token;
    // ARGV[2] retention (ms); ARGV[3] the counters' key prefix. The value goes, the fence stays, so a
    // stale holder cannot write to a cleaned-up counter either. Returns -1 when the run is stale.
    private const string CleanupScript = """
        local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
        local token = tonumber(ARGV[1])
        if token < fence then
          return -1
        end
        redis.call('SET', KEYS[2], ARGV[1])
        local now = redis.call('TIME')
        local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
        local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
        for _, name in ipairs(idle) do
          redis.call('HDEL', ARGV[3] .. name, 'value')
          redis.call('ZREM', KEYS[1], name)
        end
        return #idle
        """;

    // The {cluster} hash tag keeps a cluster's counters in one slot of a Redis Cluster, as the scripts need.
    private readonly string _prefix = $"{hosting.Value.Prefix}:{{{hosting.Value.Cluster}}}:webapp:";

    /// <summary>Adds one to the counter <paramref name="name"/> unless a newer holder of its lock has written.</summary>
    public async Task<FencedWrite> IncrementAsync(string name, long fencingToken)
    {
        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(
            IncrementScript,
            [CounterKey(name), TouchedKey],
            [fencingToken, name]))!;
        return new FencedWrite((long)result[0] == 1, (long)result[1], (long)result[2]);
    }

    /// <summary>Clears counters unchanged for <paramref name="retention"/>; null when a newer run of the job has written since.</summary>
    public async Task<long?> CleanupAsync(long jobFencingToken, TimeSpan retention)
    {
        long removed = (long)await redis.GetDatabase().ScriptEvaluateAsync(
            CleanupScript,
            [TouchedKey, _prefix + "cleanup-fence"],
            [jobFencingToken, (long)retention.TotalMilliseconds, _prefix + "counter:"]);
        return removed < 0 ? null : removed;
    }

    private RedisKey TouchedKey => _prefix + "counters";

    private RedisKey CounterKey(string name) => _prefix + "counter:" + name;
}
