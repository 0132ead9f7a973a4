using System.Collections.Immutable;

namespace Gaggle.Channels;

/// <summary>
/// Which nodes of an <see cref="InMemoryNetwork"/> can reach which: isolated nodes, cut links and at most
/// one partition into groups. Immutable, so that senders read it without a lock; every change makes a
/// new instance.
/// </summary>
/// <remarks>
/// Rules are kept by node id, not by channel, so they outlive a node's restart. A node can always reach
/// itself.
/// </remarks>
internal sealed record NetworkTopology
{
    /// <summary>Every node reaches every other node.</summary>
    public static NetworkTopology FullyConnected { get; } = new();

    /// <summary>The nodes that can reach no one and that no one can reach.</summary>
    public ImmutableHashSet<string> Isolated { get; init; } = ImmutableHashSet.Create<string>(StringComparer.Ordinal);

    /// <summary>The links cut in both directions, each stored once with the ordinally smaller id first.</summary>
    public ImmutableHashSet<(string, string)> Cuts { get; init; } = ImmutableHashSet<(string, string)>.Empty;

    /// <summary>The group index of every node named in the partition; null when there is no partition.</summary>
    public ImmutableDictionary<string, int>? Groups { get; init; }

    /// <summary>Whether a message from <paramref name="from"/> can reach <paramref name="to"/>.</summary>
    public bool CanReach(string from, string to)
    {
        if (ReferenceEquals(this, FullyConnected) || string.Equals(from, to, StringComparison.Ordinal))
        {
            return true;
        }

        if (Isolated.Contains(from) || Isolated.Contains(to))
        {
            return false;
        }

        if (Groups is not null
            && (!Groups.TryGetValue(from, out var fromGroup) || !Groups.TryGetValue(to, out var toGroup) || fromGroup != toGroup))
        {
            return false;
        }

        return !Cuts.Contains(Pair(from, to));
    }

    /// <summary>This topology with <paramref name="nodeId"/> isolated as well.</summary>
    public NetworkTopology WithIsolated(string nodeId) => this with { Isolated = Isolated.Add(nodeId) };

    /// <summary>This topology with the link between <paramref name="a"/> and <paramref name="b"/> cut as well.</summary>
    public NetworkTopology WithCut(string a, string b) => this with { Cuts = Cuts.Add(Pair(a, b)) };

    /// <summary>This topology with its partition replaced by <paramref name="groups"/>.</summary>
    /// <exception cref="ArgumentException">A group is null or a node id is empty or appears in two groups.</exception>
    public NetworkTopology WithPartition(IReadOnlyCollection<string>[] groups)
    {
        var builder = ImmutableDictionary.CreateBuilder<string, int>(StringComparer.Ordinal);
        for (var index = 0; index < groups.Length; index++)
        {
            if (groups[index] is null)
            {
                throw new ArgumentException($"Partition group {index} is null; pass an empty collection for an empty group.", nameof(groups));
            }

            foreach (var nodeId in groups[index])
            {
                if (string.IsNullOrEmpty(nodeId))
                {
                    throw new ArgumentException($"Partition group {index} contains a null or empty node id.", nameof(groups));
                }

                if (builder.TryGetValue(nodeId, out var earlier) && earlier != index)
                {
                    throw new ArgumentException(
                        $"Node '{nodeId}' appears in partition groups {earlier} and {index}; a node can be in one group only.",
                        nameof(groups));
                }

                builder[nodeId] = index;
            }
        }

        return this with { Groups = builder.ToImmutable() };
    }

    private static (string, string) Pair(string a, string b) =>
        string.CompareOrdinal(a, b) <= 0 ? (a, b) : (b, a);
}
