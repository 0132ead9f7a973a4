using Gaggle.Channels;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>What a membership request asks the leader for.</summary>
internal enum MembershipRequestKind : byte
{
    AddLearner = ConfigChangeType.AddLearner,
    Promote = ConfigChangeType.Promote,
    Remove = ConfigChangeType.Remove,
    Demote = ConfigChangeType.Demote,

    /// <summary>Hand leadership to the node named.</summary>
    Transfer = 10,

    /// <summary>The node named is leaving for good: the autopilot replaces it (a voter: a learner promoted first), hands leadership away from it, then removes it.</summary>
    Leave = 11,
}

/// <summary>
/// A membership change or leadership transfer, as carried to the leader by Gaggle's own RPC method
/// <see cref="Method"/>; the leader's driver works on it until it commits, is refused or times out.
/// </summary>
internal sealed class MembershipRequest
{
    public const string Method = GaggleOptionsValidator.ReservedRpcPrefix + "membership";

    private const byte FormatVersion = 1;

    public required MembershipRequestKind Kind { get; init; }

    public required string NodeId { get; init; }

    /// <summary>The configuration index the caller expects (a compare-and-set); negative for any.</summary>
    public long ExpectedIndex { get; init; } = -1;

    /// <summary>How long the leader keeps trying (waiting for a change in progress to commit, a learner to catch up, the change to commit).</summary>
    public long TimeoutUs { get; init; }

    /// <summary>Whoever waits for the result (opaque to the driver).</summary>
    public object? Caller { get; set; }

    public ConfigChange Change => new((ConfigChangeType)Kind, NodeId);

    public byte[] Encode()
    {
        var writer = new WireWriter(64);
        writer.Byte(FormatVersion);
        writer.Byte((byte)Kind);
        writer.String(NodeId);
        // Shifted by one: wire integers are not negative, and 0 stands for "any configuration".
        writer.VarLong(ExpectedIndex < 0 ? 0 : ExpectedIndex + 1);
        writer.VarLong(TimeoutUs);
        return writer.ToArray();
    }

    /// <summary>Decodes a request; <see cref="FormatException"/> naming what is wrong.</summary>
    public static MembershipRequest Decode(ReadOnlyMemory<byte> data)
    {
        var reader = new WireReader(data);
        byte version = reader.Byte();
        if (version != FormatVersion)
        {
            throw new FormatException($"The membership request has format version {version}; this node reads version {FormatVersion}.");
        }

        var kind = (MembershipRequestKind)reader.Byte();
        string nodeId = reader.String();
        long expected = reader.VarLong() - 1;
        long timeoutUs = reader.VarLong();
        reader.End();
        if (!Enum.IsDefined(kind) || !GaggleOptionsValidator.IsValidId(nodeId) || timeoutUs <= 0)
        {
            throw new FormatException($"The membership request ({(int)kind}, '{nodeId}', timeout {timeoutUs} us) is malformed.");
        }

        return new MembershipRequest { Kind = kind, NodeId = nodeId, ExpectedIndex = expected, TimeoutUs = timeoutUs };
    }
}

/// <summary>How a membership request ended.</summary>
internal enum MembershipStatus : byte
{
    Done = 1,

    /// <summary>The node that got it is not (or no longer) the leader: the caller asks again.</summary>
    NotLeader = 2,

    Refused = 3,
}

/// <summary>The leader's answer to a <see cref="MembershipRequest"/>.</summary>
internal sealed record MembershipResult(MembershipStatus Status, GaggleMembershipError Error, string Message, GaggleMembership? Membership)
{
    private const byte FormatVersion = 1;

    public static MembershipResult Done(GaggleMembership membership) => new(MembershipStatus.Done, default, "", membership);

    public static MembershipResult NotLeader(string message) => new(MembershipStatus.NotLeader, GaggleMembershipError.NoLeader, message, null);

    public static MembershipResult Refused(GaggleMembershipError error, string message) => new(MembershipStatus.Refused, error, message, null);

    public byte[] Encode()
    {
        var writer = new WireWriter(64);
        writer.Byte(FormatVersion);
        writer.Byte((byte)Status);
        writer.Byte((byte)Error);
        writer.String(Message);
        writer.Byte(Membership is null ? (byte)0 : (byte)1);
        if (Membership is { } membership)
        {
            writer.VarLong(membership.Index);
            WriteIds(writer, membership.Voters);
            WriteIds(writer, membership.Learners);
        }

        return writer.ToArray();
    }

    public static MembershipResult Decode(ReadOnlyMemory<byte> data)
    {
        var reader = new WireReader(data);
        if (reader.Byte() != FormatVersion)
        {
            throw new FormatException("The leader answered a membership request in an unknown format.");
        }

        var status = (MembershipStatus)reader.Byte();
        var error = (GaggleMembershipError)reader.Byte();
        string message = reader.String();
        GaggleMembership? membership = null;
        if (reader.Byte() == 1)
        {
            long index = reader.VarLong();
            var voters = ReadIds(ref reader);
            var learners = ReadIds(ref reader);
            membership = new GaggleMembership(voters, learners, index);
        }

        reader.End();
        return new MembershipResult(status, error, message, membership);
    }

    public static GaggleMembership ToPublic(ClusterConfig config, long index) => new([.. config.Voters], [.. config.Learners], index);

    private static void WriteIds(WireWriter writer, IReadOnlyList<string> ids)
    {
        writer.VarUInt((ulong)ids.Count);
        foreach (var id in ids)
        {
            writer.String(id);
        }
    }

    private static string[] ReadIds(ref WireReader reader)
    {
        ulong count = reader.VarUInt();
        if (count > ClusterConfig.MaxMembers)
        {
            throw new FormatException($"The answer lists {count} members; at most {ClusterConfig.MaxMembers} are allowed.");
        }

        var ids = new string[count];
        for (ulong i = 0; i < count; i++)
        {
            ids[i] = reader.String();
        }

        return ids;
    }
}
