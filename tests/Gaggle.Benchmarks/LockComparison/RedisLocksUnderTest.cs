using Medallion.Threading.Redis;
using RedLockNet.SERedis;
using RedLockNet.SERedis.Configuration;
using StackExchange.Redis;

namespace Gaggle.Benchmarks.LockComparison;

/// <summary>
/// The hand-written Redis lock: <c>SET key token NX PX</c> to acquire, and a Lua compare-and-delete to
/// release (a plain DEL could delete a lock that expired and was taken by someone else). While the key
/// is taken it retries after <see cref="RetryDelay"/>, as a simple busy-wait would.
/// </summary>
internal sealed class RawSetNxLock(IDatabase database) : ILockUnderTest
{
    /// <summary>The shortest sleep the runtime's timers give; the most eager busy-wait short of spinning.</summary>
    public static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(1);

    private const string CompareAndDelete = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

    private static readonly TimeSpan Expiry = TimeSpan.FromSeconds(30);

    private long _tokens;

    public string Key => "raw_setnx_cad";

    public string Title => "raw SET NX + CAD";

    public Task PrepareAsync() => Task.CompletedTask;

    public async Task<IAsyncDisposable?> AcquireAsync(int client, string name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        RedisKey key = name;
        RedisValue token = $"{client}:{Interlocked.Increment(ref _tokens)}";
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (!await database.StringSetAsync(key, token, Expiry, When.NotExists).ConfigureAwait(false))
        {
            if (System.Diagnostics.Stopwatch.GetElapsedTime(started) >= timeout)
            {
                return null;
            }

            await Task.Delay(RetryDelay, cancellationToken).ConfigureAwait(false);
        }

        return new Hold(database, key, token);
    }

    private sealed class Hold(IDatabase database, RedisKey key, RedisValue token) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
            => await database.ScriptEvaluateAsync(CompareAndDelete, [key], [token]).ConfigureAwait(false);
    }
}

/// <summary>
/// DistributedLock.Redis (<see cref="RedisDistributedLock"/>) on one <see cref="IDatabase"/>, with its
/// default options (30 s expiry renewed in the background, busy-wait sleeps of 10 to 800 ms).
/// </summary>
internal sealed class DistributedLockRedisLock(IDatabase database) : ILockUnderTest
{
    public string Key => "distributedlock_redis";

    public string Title => "DistributedLock.Redis";

    public Task PrepareAsync() => Task.CompletedTask;

    public async Task<IAsyncDisposable?> AcquireAsync(int client, string name, TimeSpan timeout, CancellationToken cancellationToken)
        => await new RedisDistributedLock(name, database).TryAcquireAsync(timeout, cancellationToken).ConfigureAwait(false);
}

/// <summary>
/// RedLock.net (<see cref="RedLockFactory"/>) with one multiplexer, so a quorum of one. A lock that is
/// taken is retried every <see cref="RetryTime"/>, the shortest retry time RedLock.net accepts.
/// </summary>
internal sealed class RedLockNetLock : ILockUnderTest, IDisposable
{
    public static readonly TimeSpan RetryTime = TimeSpan.FromMilliseconds(10);

    private static readonly TimeSpan Expiry = TimeSpan.FromSeconds(30);

    private readonly RedLockFactory _factory;

    public RedLockNetLock(ConnectionMultiplexer connection)
        => _factory = RedLockFactory.Create(new List<RedLockMultiplexer> { new(connection) });

    public string Key => "redlock_net";

    public string Title => "RedLock.net";

    public Task PrepareAsync() => Task.CompletedTask;

    public async Task<IAsyncDisposable?> AcquireAsync(int client, string name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var redLock = await _factory.CreateLockAsync(name, Expiry, timeout, RetryTime, cancellationToken).ConfigureAwait(false);
        if (redLock.IsAcquired)
        {
            return redLock;
        }

        await redLock.DisposeAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return null;
    }

    public void Dispose() => _factory.Dispose();
}
