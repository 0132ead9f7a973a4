namespace Gaggle;

/// <summary>A cluster configuration as a node sees it: who votes, who only replicates, and where it was logged.</summary>
/// <param name="Voters">The members whose votes and acknowledgements count (sorted).</param>
/// <param name="Learners">The members that receive the log without counting in a quorum (sorted).</param>
/// <param name="Index">
/// The log index of the configuration entry; 0 while the cluster still runs on its seed configuration
/// (<see cref="GaggleOptions.Members"/>). Pass it as the expected index of the next change to make
/// that change conditional on nobody having changed the configuration meanwhile.
/// </param>
public sealed record GaggleMembership(IReadOnlyList<string> Voters, IReadOnlyList<string> Learners, long Index)
{
    /// <summary>Whether <paramref name="nodeId"/> is a voter or a learner.</summary>
    /// <param name="nodeId">A node id.</param>
    /// <returns>True when it is a member.</returns>
    public bool Contains(string nodeId) => Voters.Contains(nodeId, StringComparer.Ordinal) || Learners.Contains(nodeId, StringComparer.Ordinal);

    /// <summary>Equal when the voters, the learners and the index are.</summary>
    /// <param name="other">The other configuration.</param>
    /// <returns>True when both describe the same configuration.</returns>
    public bool Equals(GaggleMembership? other)
        => other is not null && Index == other.Index
            && Voters.SequenceEqual(other.Voters, StringComparer.Ordinal) && Learners.SequenceEqual(other.Learners, StringComparer.Ordinal);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Index, Voters.Count, Learners.Count);

    /// <inheritdoc />
    public override string ToString()
        => $"voters [{string.Join(", ", Voters)}]" + (Learners.Count > 0 ? $" learners [{string.Join(", ", Learners)}]" : "") + $" at index {Index}";
}

/// <summary>Why a membership change or leadership transfer was refused.</summary>
public enum GaggleMembershipError
{
    /// <summary>The node named is not a member, or not of the kind the change needs (a learner to promote, a voter to hand leadership to).</summary>
    UnknownNode,

    /// <summary>The change conflicts with the configuration (already a member, removing the last voter, ...).</summary>
    Invalid,

    /// <summary>Another change has not committed yet, or the learner has not caught up, and it did not settle in time.</summary>
    ChangeInProgress,

    /// <summary>The configuration moved on since the expected index the caller gave.</summary>
    ConfigurationChanged,

    /// <summary>No leader could be reached in time.</summary>
    NoLeader,

    /// <summary>Membership changes are not possible in this setup (in-memory storage, ClusterSize discovery).</summary>
    NotSupported,

    /// <summary>A leadership transfer did not produce the chosen leader in time.</summary>
    TransferFailed,
}

/// <summary>A membership change or leadership transfer was refused; <see cref="Error"/> says why.</summary>
public sealed class GaggleMembershipException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="error">Why the change was refused.</param>
    /// <param name="message">What was refused and why, naming the node and the values involved.</param>
    public GaggleMembershipException(GaggleMembershipError error, string message)
        : base(message)
    {
        Error = error;
    }

    /// <summary>Why the change was refused.</summary>
    public GaggleMembershipError Error { get; }
}
