namespace Gaggle.Hosting;

/// <summary>
/// Transport and storage settings bound from the same configuration section as
/// <see cref="GaggleOptions"/> (e.g. <c>Gaggle:Redis</c>, <c>Gaggle:Cluster</c>).
/// </summary>
public sealed class GaggleHostingOptions
{
    /// <summary>A StackExchange.Redis configuration string; when set, the node talks over Redis.</summary>
    public string? Redis { get; set; }

    /// <summary>The cluster's name on Redis.</summary>
    /// <value>The default is <c>default</c>.</value>
    public string Cluster { get; set; } = "default";

    /// <summary>The Redis channel prefix.</summary>
    /// <value>The default is <c>gaggle</c>.</value>
    public string Prefix { get; set; } = "gaggle";

    /// <summary>The shared secret that signs every message (at least 16 characters), or null.</summary>
    public string? ClusterKey { get; set; }

    /// <summary>A directory for this node's durable log and snapshots; in memory when null.</summary>
    public string? DataDirectory { get; set; }
}
