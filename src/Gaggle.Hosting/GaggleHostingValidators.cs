using Gaggle.Redis;
using Microsoft.Extensions.Options;

namespace Gaggle.Hosting;

/// <summary>
/// Checks the hosting's Redis values when the host starts, with the rules of
/// <see cref="RedisPubSubChannelOptions"/> (not a copy of them), each failure naming the
/// configuration key. Settings changed later in a <c>UseRedis</c> callback are checked when the
/// channel is created.
/// </summary>
/// <param name="section">The configuration section's path (e.g. <c>Gaggle</c>), to name keys by.</param>
internal sealed class GaggleHostingOptionsValidator(string section) : IValidateOptions<GaggleHostingOptions>
{
    public ValidateOptionsResult Validate(string? name, GaggleHostingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var redis = new RedisPubSubChannelOptions
        {
            Configuration = options.Redis,
            ClusterName = options.Cluster,
            Prefix = options.Prefix,
            ClusterKey = options.ClusterKey,
        };
        var failures = redis.GetValidationFailures(SettingName, requireConnection: false);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private string SettingName(string redisSetting)
    {
        string hosting = redisSetting switch
        {
            nameof(RedisPubSubChannelOptions.Configuration) => nameof(GaggleHostingOptions.Redis),
            nameof(RedisPubSubChannelOptions.ClusterName) => nameof(GaggleHostingOptions.Cluster),
            _ => redisSetting,
        };
        return $"{hosting} ({section}:{hosting})";
    }
}

/// <summary>Checks <see cref="SingletonJobOptions"/> when the host starts; each failure names the setting, its key, its value and the rule.</summary>
/// <param name="section">The jobs' configuration section's path (e.g. <c>Gaggle:Jobs</c>), to name keys by.</param>
internal sealed class SingletonJobOptionsValidator(string section) : IValidateOptions<SingletonJobOptions>
{
    private static readonly TimeSpan Longest = TimeSpan.FromHours(1);

    public ValidateOptionsResult Validate(string? name, SingletonJobOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.PollInterval <= TimeSpan.Zero || options.PollInterval > Longest)
        {
            failures.Add($"{Key(nameof(options.PollInterval))} is {Ms(options.PollInterval)}; it must be more than 0 and at most 1 hour.");
        }

        if (options.RestartDelay < TimeSpan.Zero || options.RestartDelay > Longest)
        {
            failures.Add($"{Key(nameof(options.RestartDelay))} is {Ms(options.RestartDelay)}; it must be between 0 and 1 hour.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private string Key(string setting) => $"{setting} ({section}:{setting})";

    private static string Ms(TimeSpan value) => $"{value.TotalMilliseconds:0.###} ms";
}
