using Gaggle.Channels;
using StackExchange.Redis;

namespace Gaggle.Redis;

/// <summary>
/// The cluster's generation (see <see cref="IClusterGenerationStore"/>) in one small Redis string,
/// <c>{prefix}:{cluster}:generation</c> (e.g. <c>gaggle:{orders}:generation</c>), with no expiry:
/// <c>id:changedAtMs:kind</c>, the generation id, the Redis <c>TIME</c> (milliseconds) of its last
/// change and that change's kind (<c>c</c> claimed, <c>s</c> restored, <c>p</c> replaced a lower one); a
/// claim also keeps the time and kind of the change before it, which a release puts back
/// (<c>id:changedAtMs:c:beforeMs:beforeKind</c>). Only the scripts below write it, so its number never
/// goes down while Redis keeps it. A bare integer (written by hand) reads as an id whose change is unknown.
/// </summary>
public sealed partial class RedisPubSubChannel : IEchoingChannel
{
    private long _echoes;

    /// <inheritdoc/>
    long IEchoingChannel.EchoesHeard => Interlocked.Read(ref _echoes);

    /// <summary>Parses the value (KEYS[1]) and reads the server's clock: shared head of the scripts.</summary>
    private const string ScriptHead = """
        local raw = redis.call('GET', KEYS[1])
        local id, at, kind, before = 0, 0, '', ''
        if raw then
          local i, a, k, b = string.match(raw, '^(%d+):(%d+):(%a)(.*)$')
          if i and (b == '' or string.match(b, '^:%d+:%a?$')) then
            id, at, kind, before = tonumber(i), tonumber(a), k, b
          elseif string.match(raw, '^%d+$') then
            id = tonumber(raw)
          else
            return redis.error_reply('the Redis key ' .. KEYS[1] .. " holds '" .. raw .. "'; it must be a cluster generation (id:changedAtMs:kind). Delete it only if no node of this cluster runs.")
          end
        end
        local t = redis.call('TIME')
        local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))

        """;

    private const string ClaimScript = ScriptHead + """
        if id == tonumber(ARGV[1]) then
          redis.call('SET', KEYS[1], ARGV[2] .. ':' .. now .. ':c:' .. string.format('%d', at) .. ':' .. kind)
          return 1
        end
        return 0
        """;

    private const string ReleaseScript = ScriptHead + """
        if id ~= tonumber(ARGV[1]) then
          return 0
        end
        if ARGV[2] == '0' then
          redis.call('DEL', KEYS[1])
        elseif kind == 'c' and before ~= '' and before ~= ':0:' then
          redis.call('SET', KEYS[1], ARGV[2] .. before)
        else
          redis.call('SET', KEYS[1], ARGV[2])
        end
        return 1
        """;

    private const string ConfirmScript = ScriptHead + """
        local mine = tonumber(ARGV[1])
        if id == 0 or id % 65536 < mine % 65536 then
          local k = 'p'
          if id == 0 then k = 's' end
          redis.call('SET', KEYS[1], ARGV[1] .. ':' .. now .. ':' .. k)
          return {id, k, 0}
        end
        local age = tonumber(now) - at
        if age < 0 then
          age = 0
        end
        return {id, kind, age}
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
    public async ValueTask<bool> TryClaimGenerationAsync(long expected, long claimed, CancellationToken cancellationToken = default)
    {
        CheckId(expected, nameof(expected));
        CheckId(claimed, nameof(claimed));
        var result = await Database().ScriptEvaluateAsync(ClaimScript, [GenerationKey], [expected, claimed]).WaitAsync(cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    /// <inheritdoc/>
    public async ValueTask<bool> TryReleaseClaimAsync(long claimed, long expected, CancellationToken cancellationToken = default)
    {
        CheckId(claimed, nameof(claimed));
        CheckId(expected, nameof(expected));
        var result = await Database().ScriptEvaluateAsync(ReleaseScript, [GenerationKey], [claimed, expected]).WaitAsync(cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    /// <inheritdoc/>
    public async ValueTask<GenerationConfirmation> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default)
    {
        CheckId(generation, nameof(generation));
        var result = await Database().ScriptEvaluateAsync(ConfirmScript, [GenerationKey], [generation]).WaitAsync(cancellationToken).ConfigureAwait(false);
        var parts = (RedisResult[])result!;
        long ageMs = (long)parts[2];
        var change = (string?)parts[1] switch
        {
            "c" => GenerationChange.Claimed,
            "s" => GenerationChange.Restored,
            "p" => GenerationChange.Replaced,
            _ => GenerationChange.Unknown,
        };
        // A change stamped ahead of the server's clock (its TIME stepped back, or a failover to a node
        // whose clock lags) is taken as made now, never as long ago.
        return new GenerationConfirmation((long)parts[0], change, change == GenerationChange.Unknown ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(Math.Max(0, ageMs)));
    }

    private IDatabase Database() => (_connection ?? throw new InvalidOperationException($"The Redis channel of node '{NodeId}' is not connected; connect it before reading the cluster generation.")).GetDatabase();

    private long ParseGeneration(RedisValue value)
    {
        string text = value.ToString();
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        return long.TryParse(colon < 0 ? text : text[..colon], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long id) && GenerationIds.IsValid(id)
            ? id
            : throw new InvalidOperationException($"The Redis key '{GenerationKey}' holds '{value}'; it must be a cluster generation (id:changedAtMs:kind, the id a non-negative integer below 2^52). Delete it only if no node of this cluster runs.");
    }

    private static void CheckId(long id, string name)
    {
        if (!GenerationIds.IsValid(id))
        {
            throw new ArgumentOutOfRangeException(name, id, $"A cluster generation id must be non-negative with a number of at most {GenerationIds.MaxNumber} and a tag below 2^{GenerationIds.TagBits}.");
        }
    }
}
