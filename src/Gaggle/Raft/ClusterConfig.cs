using Gaggle.Channels;

namespace Gaggle.Raft;

/// <summary>
/// A cluster configuration (Raft thesis §4): who votes and who only replicates. Immutable; ids are
/// kept sorted so that two equal configurations encode to the same bytes.
/// </summary>
internal sealed class ClusterConfig : IEquatable<ClusterConfig>
{
    private const byte FormatVersion = 1;

    /// <summary>The most members a configuration may hold (a decoded entry claiming more is malformed).</summary>
    public const int MaxMembers = 1024;

    public ClusterConfig(IEnumerable<string> voters, IEnumerable<string> learners)
    {
        Voters = voters.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        Learners = learners.Distinct(StringComparer.Ordinal).Where(id => !Voters.Contains(id, StringComparer.Ordinal)).Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>The members whose votes and acknowledgements count (sorted).</summary>
    public IReadOnlyList<string> Voters { get; }

    /// <summary>The members that receive the log but never count in a quorum (sorted).</summary>
    public IReadOnlyList<string> Learners { get; }

    public bool IsVoter(string id) => Find(Voters, id);

    public bool IsLearner(string id) => Find(Learners, id);

    public bool Contains(string id) => IsVoter(id) || IsLearner(id);

    /// <summary>Every member, voters first.</summary>
    public IEnumerable<string> Members => Voters.Concat(Learners);

    /// <summary>
    /// The configuration after <paramref name="change"/>, or null with <paramref name="error"/> saying
    /// why the change does not apply to this one (single-server changes only, thesis §4.1).
    /// </summary>
    public ClusterConfig? Apply(ConfigChange change, out string? error)
    {
        error = null;
        string id = change.NodeId;
        switch (change.Type)
        {
            case ConfigChangeType.AddLearner when Contains(id):
                error = $"'{id}' is already a {(IsVoter(id) ? "voter" : "learner")}";
                return null;
            case ConfigChangeType.AddLearner:
                return new ClusterConfig(Voters, Learners.Append(id));
            case ConfigChangeType.Promote when !IsLearner(id):
                error = IsVoter(id) ? $"'{id}' is already a voter" : $"'{id}' is not a member (add it as a learner first)";
                return null;
            case ConfigChangeType.Promote:
                return new ClusterConfig(Voters.Append(id), Learners.Where(l => l != id));
            case ConfigChangeType.Remove when !Contains(id):
                error = $"'{id}' is not a member";
                return null;
            case ConfigChangeType.Remove when IsVoter(id) && Voters.Count == 1:
                error = $"'{id}' is the last voter; a cluster cannot remove its last voter";
                return null;
            case ConfigChangeType.Remove:
                return new ClusterConfig(Voters.Where(v => v != id), Learners.Where(l => l != id));
            case ConfigChangeType.Demote when !IsVoter(id):
                error = IsLearner(id) ? $"'{id}' is already a learner" : $"'{id}' is not a member";
                return null;
            case ConfigChangeType.Demote when Voters.Count == 1:
                error = $"'{id}' is the last voter; a cluster cannot demote its last voter";
                return null;
            case ConfigChangeType.Demote:
                return new ClusterConfig(Voters.Where(v => v != id), Learners.Append(id));
            default:
                error = $"unknown change type {(int)change.Type}";
                return null;
        }
    }

    public byte[] Encode()
    {
        var writer = new WireWriter(64);
        writer.Byte(FormatVersion);
        writer.VarUInt((ulong)Voters.Count);
        foreach (var voter in Voters)
        {
            writer.String(voter);
        }

        writer.VarUInt((ulong)Learners.Count);
        foreach (var learner in Learners)
        {
            writer.String(learner);
        }

        return writer.ToArray();
    }

    /// <summary>Decodes a configuration entry's data; false when it is not a well-formed configuration.</summary>
    public static bool TryDecode(ReadOnlyMemory<byte> data, out ClusterConfig config)
    {
        config = null!;
        try
        {
            var reader = new WireReader(data);
            if (reader.Byte() != FormatVersion)
            {
                return false;
            }

            var voters = ReadIds(ref reader);
            var learners = ReadIds(ref reader);
            reader.End();
            if (voters.Count == 0 || voters.Concat(learners).Any(id => !GaggleOptionsValidator.IsValidId(id)))
            {
                return false;
            }

            config = new ClusterConfig(voters, learners);
            return config.Voters.Count == voters.Count && config.Learners.Count == learners.Count;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static List<string> ReadIds(ref WireReader reader)
    {
        ulong count = reader.VarUInt();
        if (count > MaxMembers)
        {
            throw new FormatException($"A configuration lists {count} members; at most {MaxMembers} are allowed.");
        }

        var ids = new List<string>((int)count);
        for (ulong i = 0; i < count; i++)
        {
            ids.Add(reader.String());
        }

        return ids;
    }

    private static bool Find(IReadOnlyList<string> ids, string id)
    {
        foreach (var member in ids)
        {
            if (member == id)
            {
                return true;
            }
        }

        return false;
    }

    public bool Equals(ClusterConfig? other)
        => other is not null && Voters.SequenceEqual(other.Voters, StringComparer.Ordinal) && Learners.SequenceEqual(other.Learners, StringComparer.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as ClusterConfig);

    public override int GetHashCode() => HashCode.Combine(Voters.Count, Learners.Count, Voters.Count > 0 ? Voters[0] : "");

    public override string ToString() => $"voters [{string.Join(", ", Voters)}]" + (Learners.Count > 0 ? $" learners [{string.Join(", ", Learners)}]" : "");
}

/// <summary>The single-server configuration changes (Raft thesis §4.1).</summary>
internal enum ConfigChangeType : byte
{
    /// <summary>Adds a non-voting member that receives the log.</summary>
    AddLearner = 1,

    /// <summary>Makes a learner a voter.</summary>
    Promote = 2,

    /// <summary>Removes a voter or a learner.</summary>
    Remove = 3,

    /// <summary>Makes a voter a learner (it keeps receiving the log).</summary>
    Demote = 4,
}

/// <summary>One configuration change.</summary>
internal readonly record struct ConfigChange(ConfigChangeType Type, string NodeId);
