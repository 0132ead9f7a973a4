using Gaggle.Channels;

namespace Gaggle.Raft;

/// <summary>
/// A cluster configuration (Raft thesis §4): who votes and who only replicates, and since which
/// configuration entry each member has been one without a break (its admission). Immutable; ids are
/// kept sorted so that a configuration always encodes to the same bytes.
/// </summary>
/// <remarks>
/// A member's admission is the index of the configuration entry that added it (0 for the seed
/// members and for configurations logged before admissions were recorded). A member removed and
/// added again gets a new admission: what it sent under the old one is refused from then on (see
/// <c>ForwardAppend.Admission</c>), which is what lets every replica forget a removed member's
/// duplicate sessions at its removal.
/// </remarks>
internal sealed class ClusterConfig : IEquatable<ClusterConfig>
{
    /// <summary>Version 1: ids only (every admission reads as 0). Version 2: each id with its admission.</summary>
    private const byte FormatVersion = 2;

    /// <summary>The most members a configuration may hold (a decoded entry claiming more is malformed).</summary>
    public const int MaxMembers = 1024;

    private readonly Dictionary<string, long> _admissions;

    /// <summary>A configuration of <paramref name="voters"/> and <paramref name="learners"/>; each member's admission is taken from <paramref name="admissions"/> (0 when it has none).</summary>
    public ClusterConfig(IEnumerable<string> voters, IEnumerable<string> learners, IReadOnlyDictionary<string, long>? admissions = null)
    {
        Voters = voters.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        Learners = learners.Distinct(StringComparer.Ordinal).Where(id => !Voters.Contains(id, StringComparer.Ordinal)).Order(StringComparer.Ordinal).ToArray();
        _admissions = new Dictionary<string, long>(Voters.Count + Learners.Count, StringComparer.Ordinal);
        foreach (var id in Voters.Concat(Learners))
        {
            _admissions[id] = admissions is not null && admissions.TryGetValue(id, out long admission) ? admission : 0;
        }
    }

    /// <summary>The index of the configuration entry since which <paramref name="id"/> has been a member (0: a seed member, or one admitted before admissions were recorded); -1 when it is not one.</summary>
    public long AdmissionOf(string id) => _admissions.TryGetValue(id, out long admission) ? admission : -1;

    /// <summary>The members whose votes and acknowledgements count (sorted).</summary>
    public IReadOnlyList<string> Voters { get; }

    /// <summary>The members that receive the log but never count in a quorum (sorted).</summary>
    public IReadOnlyList<string> Learners { get; }

    public bool IsVoter(string id) => Find(Voters, id);

    public bool IsLearner(string id) => Find(Learners, id);

    public bool Contains(string id) => IsVoter(id) || IsLearner(id);

    /// <summary>
    /// Whether this is the configuration a node logs at <paramref name="index"/> to found a cluster, or
    /// to force a new generation, alone: itself, admitted there. No change makes one: a change adds a
    /// member to a configuration of at least one, or keeps every admission.
    /// </summary>
    public bool IsFoundedAt(long index) => Voters.Count == 1 && Learners.Count == 0 && AdmissionOf(Voters[0]) == index;

    /// <summary>Every member, voters first.</summary>
    public IEnumerable<string> Members => Voters.Concat(Learners);

    /// <summary>
    /// The configuration after <paramref name="change"/>, logged at <paramref name="index"/> (a member it
    /// adds is admitted there), or null with <paramref name="error"/> saying why the change does not
    /// apply to this one (single-server changes only, thesis §4.1).
    /// </summary>
    public ClusterConfig? Apply(ConfigChange change, long index, out string? error)
    {
        error = null;
        string id = change.NodeId;
        switch (change.Type)
        {
            case ConfigChangeType.AddLearner when Contains(id):
                error = $"'{id}' is already a {(IsVoter(id) ? "voter" : "learner")}";
                return null;
            case ConfigChangeType.AddLearner:
                return new ClusterConfig(Voters, Learners.Append(id), new Dictionary<string, long>(_admissions, StringComparer.Ordinal) { [id] = index });
            case ConfigChangeType.Promote when !IsLearner(id):
                error = IsVoter(id) ? $"'{id}' is already a voter" : $"'{id}' is not a member (add it as a learner first)";
                return null;
            case ConfigChangeType.Promote:
                return new ClusterConfig(Voters.Append(id), Learners.Where(l => l != id), _admissions);
            case ConfigChangeType.Remove when !Contains(id):
                error = $"'{id}' is not a member";
                return null;
            case ConfigChangeType.Remove when IsVoter(id) && Voters.Count == 1:
                error = $"'{id}' is the last voter; a cluster cannot remove its last voter";
                return null;
            case ConfigChangeType.Remove:
                return new ClusterConfig(Voters.Where(v => v != id), Learners.Where(l => l != id), _admissions);
            case ConfigChangeType.Demote when !IsVoter(id):
                error = IsLearner(id) ? $"'{id}' is already a learner" : $"'{id}' is not a member";
                return null;
            case ConfigChangeType.Demote when Voters.Count == 1:
                error = $"'{id}' is the last voter; a cluster cannot demote its last voter";
                return null;
            case ConfigChangeType.Demote:
                return new ClusterConfig(Voters.Where(v => v != id), Learners.Append(id), _admissions);
            default:
                error = $"unknown change type {(int)change.Type}";
                return null;
        }
    }

    public byte[] Encode()
    {
        var writer = new WireWriter(64);
        writer.Byte(FormatVersion);
        WriteIds(writer, Voters);
        WriteIds(writer, Learners);
        return writer.ToArray();
    }

    /// <summary>Decodes a configuration entry's data; false when it is not a well-formed configuration.</summary>
    public static bool TryDecode(ReadOnlyMemory<byte> data, out ClusterConfig config)
    {
        config = null!;
        try
        {
            var reader = new WireReader(data);
            byte version = reader.Byte();
            if (version is not (1 or FormatVersion))
            {
                return false;
            }

            var admissions = new Dictionary<string, long>(StringComparer.Ordinal);
            var voters = ReadIds(ref reader, version, admissions);
            var learners = ReadIds(ref reader, version, admissions);
            reader.End();
            if (voters.Count == 0 || voters.Concat(learners).Any(id => !GaggleOptionsValidator.IsValidId(id)) || admissions.Values.Any(a => a < 0))
            {
                return false;
            }

            config = new ClusterConfig(voters, learners, admissions);
            return config.Voters.Count == voters.Count && config.Learners.Count == learners.Count;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private void WriteIds(WireWriter writer, IReadOnlyList<string> ids)
    {
        writer.VarUInt((ulong)ids.Count);
        foreach (var id in ids)
        {
            writer.String(id);
            writer.VarLong(_admissions[id]);
        }
    }

    private static List<string> ReadIds(ref WireReader reader, byte version, Dictionary<string, long> admissions)
    {
        ulong count = reader.VarUInt();
        if (count > MaxMembers)
        {
            throw new FormatException($"A configuration lists {count} members; at most {MaxMembers} are allowed.");
        }

        var ids = new List<string>((int)count);
        for (ulong i = 0; i < count; i++)
        {
            string id = reader.String();
            ids.Add(id);
            admissions[id] = version == 1 ? 0 : reader.VarLong();
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

    /// <summary>The same members in the same roles (admissions aside: they follow from where a configuration was logged).</summary>
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
