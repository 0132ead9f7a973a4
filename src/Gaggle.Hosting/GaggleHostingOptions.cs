namespace Gaggle.Hosting;

/// <summary>
/// Transport and storage settings bound from the same configuration section as
/// <see cref="GaggleOptions"/> (e.g. <c>Gaggle:Redis</c>, <c>Gaggle:Cluster</c>).
/// </summary>
public sealed class GaggleHostingOptions
{
    /// <summary>The cluster name a static cluster (<see cref="GaggleOptions.Members"/> or <see cref="GaggleOptions.ClusterSize"/> set) uses when <see cref="Cluster"/> is not set.</summary>
    internal const string DefaultStaticCluster = "default";

    /// <summary>A StackExchange.Redis configuration string; when set, the node talks over Redis.</summary>
    public string? Redis { get; set; }

    /// <summary>
    /// The cluster's name on Redis: the instances of one application share it, and nothing else on
    /// that Redis may use it. Required in elastic mode (neither <see cref="GaggleOptions.Members"/> nor
    /// <see cref="GaggleOptions.ClusterSize"/> set) with Redis, where instances join whatever cluster
    /// they hear under this name: two applications sharing one Redis must never meet under a default.
    /// </summary>
    /// <value>The default is null: in elastic mode an error when the node talks over Redis; with a static member list <c>default</c>.</value>
    public string? Cluster { get; set; }

    /// <summary>The Redis channel prefix.</summary>
    /// <value>The default is <c>gaggle</c>.</value>
    public string Prefix { get; set; } = "gaggle";

    /// <summary>The shared secret that signs every message (at least 16 characters), or null.</summary>
    public string? ClusterKey { get; set; }

    /// <summary>
    /// A directory for this node's durable log and snapshots; in memory when null. Only with a static
    /// member list (<see cref="GaggleOptions.Members"/>): elastic mode refuses it.
    /// </summary>
    public string? DataDirectory { get; set; }
}
