using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gaggle.Hosting;

/// <summary>
/// Settings that start but are unsafe, logged once when the hosted node is created (category
/// <c>Gaggle.Hosting.StartupWarnings</c>): each message says what can go wrong and how to fix it.
/// </summary>
internal static partial class StartupWarnings
{
    /// <summary>A static member list (Members or ClusterSize) without a data directory.</summary>
    public static void StaticMembersInMemory(IServiceProvider services, GaggleOptions node)
    {
        if (Logger(services) is { } logger)
        {
            LogStaticMembersInMemory(logger, node.NodeId, Section(services), node.Members is { Count: > 0 } ? "Members" : "ClusterSize");
        }
    }

    /// <summary>A Redis channel without a cluster key.</summary>
    public static void NoClusterKey(IServiceProvider services, string nodeId, string cluster)
    {
        if (Logger(services) is { } logger)
        {
            LogNoClusterKey(logger, nodeId, cluster, Section(services));
        }
    }

    private static ILogger? Logger(IServiceProvider services)
        => services.GetService<ILoggerFactory>()?.CreateLogger(typeof(StartupWarnings));

    private static string Section(IServiceProvider services) => services.GetService<GaggleConfigurationSection>()?.Path ?? "Gaggle";

    [LoggerMessage(301, LogLevel.Warning,
        "Node {NodeId} has a static member list ({Section}:{Setting}) but keeps its votes and log in memory: an instance restarted after a crash forgets the votes it cast "
        + "and the entries it acknowledged, so the cluster can elect two leaders in one term or lose committed entries. Safe choices: elastic mode "
        + "(leave {Section}:Members and {Section}:ClusterSize unset; every process joins as a new member), or a durable {Section}:DataDirectory for every instance")]
    private static partial void LogStaticMembersInMemory(ILogger logger, string nodeId, string section, string setting);

    [LoggerMessage(302, LogLevel.Warning,
        "Node {NodeId} talks over Redis in cluster {Cluster} without a cluster key ({Section}:ClusterKey): anyone who can publish on that Redis can join the cluster "
        + "or forge its messages (votes, entries, lock grants). Set the same secret of at least 16 characters as {Section}:ClusterKey on every instance")]
    private static partial void LogNoClusterKey(ILogger logger, string nodeId, string cluster, string section);
}
