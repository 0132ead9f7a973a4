namespace Gaggle.Raft;

/// <summary>
/// Who votes. Either a fixed member list, or (discovery mode) a cluster size whose member ids are
/// learned from traffic until the size is reached; ids beyond that are refused.
/// </summary>
internal sealed class Membership
{
    private readonly HashSet<string> _peers = new(StringComparer.Ordinal);

    public Membership(RaftConfig config)
    {
        SelfId = config.Id;
        IsDiscovery = config.Members is null;
        if (config.Members is not null)
        {
            foreach (var member in config.Members)
            {
                if (member != SelfId)
                {
                    _peers.Add(member);
                }
            }

            Size = _peers.Count + 1;
        }
        else
        {
            Size = config.ClusterSize;
        }
    }

    public string SelfId { get; }

    public bool IsDiscovery { get; }

    /// <summary>The number of voting members, this node included.</summary>
    public int Size { get; }

    public IReadOnlyCollection<string> Peers => _peers;

    /// <summary>Whether every peer's id is known.</summary>
    public bool Complete => _peers.Count == Size - 1;

    /// <summary>Accepts <paramref name="id"/> as a member: true when it is one or (discovery) just became one.</summary>
    public bool Admit(string id, out bool learned)
    {
        learned = false;
        if (_peers.Contains(id))
        {
            return true;
        }

        if (!IsDiscovery || string.IsNullOrEmpty(id) || id == SelfId || Complete)
        {
            return false;
        }

        _peers.Add(id);
        learned = true;
        return true;
    }
}
