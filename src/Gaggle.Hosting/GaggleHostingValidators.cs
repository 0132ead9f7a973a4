using Gaggle.Redis;
using Microsoft.Extensions.Options;

namespace Gaggle.Hosting;

/// <summary>
/// Checks the hosting's Redis values when the host starts, with the rules of
/// <see cref="RedisPubSubChannelOptions"/> (not a copy of them), each failure naming the
/// configuration key; and what elastic mode (neither <c>Members</c> nor <c>ClusterSize</c> set) needs
/// of them: an explicit cluster name on Redis, no data directory. Settings changed later in a
/// <c>UseRedis</c> callback are checked when the channel is created.
/// </summary>
/// <param name="section">The configuration section's path (e.g. <c>Gaggle</c>), to name keys by.</param>
/// <param name="node">The node's options; read only when a rule depends on the mode (reading them validates them).</param>
internal sealed class GaggleHostingOptionsValidator(string section, Func<GaggleOptions> node) : IValidateOptions<GaggleHostingOptions>
{
    public ValidateOptionsResult Validate(string? name, GaggleHostingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var redis = new RedisPubSubChannelOptions
        {
            Configuration = options.Redis,
            // Null only in elastic mode (ResolveCluster): reported below, by its own rule.
            ClusterName = options.Cluster ?? GaggleHostingOptions.DefaultStaticCluster,
            Prefix = options.Prefix,
            ClusterKey = options.ClusterKey,
        };
        var failures = redis.GetValidationFailures(SettingName, requireConnection: false);
        if (options.Cluster is null && !string.IsNullOrWhiteSpace(options.Redis))
        {
            failures.Add(ElasticClusterMissing(section));
        }

        if (!string.IsNullOrEmpty(options.DataDirectory) && node().IsElastic)
        {
            failures.Add(
                $"{SettingName(nameof(GaggleHostingOptions.DataDirectory))} is '{options.DataDirectory}', but the node is in elastic mode (neither {section}:Members nor {section}:ClusterSize is set), "
                + $"where every process is a new member that keeps its state in memory: a data directory would be of no use after a restart. Remove {section}:DataDirectory, "
                + $"or list the members in {section}:Members (static mode, with a data directory per instance).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>The message for an elastic node on Redis without a cluster name.</summary>
    /// <param name="section">The configuration section's path, to name keys by.</param>
    internal static string ElasticClusterMissing(string section)
        => $"Cluster ({section}:Cluster) is not set; in elastic mode (neither {section}:Members nor {section}:ClusterSize is set) it is required: "
            + "instances join any cluster they hear under their cluster's name, so two applications sharing one Redis under a default name would merge. "
            + $"Set {section}:Cluster to a name of this application's own (1 to 64 characters among letters, digits and . _ -), the same on every instance.";

    /// <summary>
    /// A static cluster (Members or ClusterSize) without a cluster name keeps the name it always had,
    /// <c>default</c>; an elastic one keeps none, and the validator or the channel says so.
    /// </summary>
    internal static void ResolveCluster(GaggleHostingOptions options, GaggleOptions node)
    {
        if (options.Cluster is null && !node.IsElastic)
        {
            options.Cluster = GaggleHostingOptions.DefaultStaticCluster;
        }
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
