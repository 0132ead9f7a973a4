using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// One call a simulated client made and what it saw: when it called (<see cref="InvokedAt"/>), when the
/// answer came (<see cref="RespondedAt"/>, <see cref="Unanswered"/> when it never did: the caller timed
/// out, gave up or died) and the answer. Times are positions in the one sequence of everything the
/// simulation's callers did, so an operation answered before another was called has a smaller
/// <see cref="RespondedAt"/> than the other's <see cref="InvokedAt"/>. Checked by <see cref="LinearizabilityChecker"/>.
/// </summary>
internal abstract class ClientOperation
{
    /// <summary>The answer never came: the operation may have taken effect at any time after its call, or never.</summary>
    public const long Unanswered = long.MaxValue;

    /// <summary>Who called (a lock client, a reader or an appender on a node).</summary>
    public required string Client { get; init; }

    /// <summary>The node the call was made on (a lock holder's node as lock reads show it).</summary>
    public required string Node { get; init; }

    public long InvokedAt { get; set; }

    public long InvokedStep { get; set; }

    public long RespondedAt { get; set; } = Unanswered;

    public long RespondedStep { get; set; } = -1;

    public bool Answered => RespondedAt != Unanswered;

    /// <summary>The cluster whose log answered (elastic runs: generation, and how often that number was founded before); set with the answer.</summary>
    public ClusterKey Cluster { get; set; }

    /// <summary>The object the operation is on: the log, or one lock.</summary>
    public abstract string Object { get; }

    /// <summary>The call and its answer, for a failure report.</summary>
    public override string ToString()
        => $"{Call} by {Client} [steps {InvokedStep}..{(Answered ? RespondedStep.ToString(System.Globalization.CultureInfo.InvariantCulture) : "")}] -> {Answer}";

    protected abstract string Call { get; }

    protected abstract string Answer { get; }
}

/// <summary>A cluster whose log answers operations: a generation (0 outside elastic runs) and which cluster of that number.</summary>
internal readonly record struct ClusterKey(long Generation, int Founding)
{
    public override string ToString() => Generation == 0 && Founding == 0 ? "" : $" (generation {Generation}{(Founding == 0 ? "" : $", founded again {Founding}x")})";
}

/// <summary>GaggleNode.AppendAsync: the index it completed with.</summary>
internal sealed class AppendOperation : ClientOperation
{
    public const string LogObject = "the log";

    public required string Payload { get; init; }

    /// <summary>The index the append completed with.</summary>
    public long Index { get; set; }

    /// <summary>Completed from a snapshot its node installed: <see cref="Index"/> is the snapshot's, at or after the entry's own.</summary>
    public bool Covered { get; set; }

    public override string Object => LogObject;

    protected override string Call => $"append '{Payload}'";

    protected override string Answer => !Answered ? "no answer" : Covered ? $"index {Index} (a snapshot's: the entry is at or before it)" : $"index {Index}";
}

/// <summary>GaggleLocks.AcquireCoreAsync: a grant with its token and lease expiry, or none.</summary>
internal sealed class AcquireOperation : ClientOperation
{
    public required string Lock { get; init; }

    public required int MaxCount { get; init; }

    /// <summary>What was asked for: a mutex, a semaphore slot (of <see cref="MaxCount"/>), or a reader-writer lock for reading or writing (MaxCount 0).</summary>
    public LockHoldKind Kind { get; init; }

    public required long LeaseMs { get; init; }

    /// <summary>The outcome the client was told: Granted, Denied or Rejected (null while it had none).</summary>
    public LockEventType? Outcome { get; set; }

    public long Token { get; set; }

    /// <summary>The grant's lease expiry on the lock table's clock (ms): the grant's time plus the lease, or later if renewed since.</summary>
    public long Expiry { get; set; }

    public bool Granted => Answered && Outcome == LockEventType.Granted;

    public override string Object => Lock;

    protected override string Call => Kind is LockHoldKind.Read or LockHoldKind.Write ? $"acquire {Lock} for {(Kind == LockHoldKind.Read ? "reading" : "writing")}" : $"acquire {Lock}/{MaxCount}";

    protected override string Answer => Granted ? $"granted token {LockTokens.Describe(Token)}, lease until {Expiry} ms"
        : Answered ? $"{Outcome} (or granted and ended unseen)" : "no answer";
}

/// <summary>
/// A grant no client was told of but a read showed (its acquire had no answer, or was told denied after
/// a snapshot covered a grant that had ended): made up for the check, called when the first acquire
/// of its node that saw no grant was, never answered.
/// </summary>
internal sealed class UnseenGrantOperation : ClientOperation
{
    public required string Lock { get; init; }

    public required long Token { get; init; }

    /// <summary>The grant's time on the lock table's clock, as the read showed it.</summary>
    public required long Since { get; init; }

    public required long LeaseMs { get; init; }

    /// <summary>The lock's slots as the read showed them.</summary>
    public required int MaxCount { get; init; }

    /// <summary>The hold's kind as the read showed it.</summary>
    public LockHoldKind Kind { get; init; }

    public override string Object => Lock;

    protected override string Call => $"unseen grant of {Lock} to {Node} (seen in a read: token {LockTokens.Describe(Token)} since {Since} ms)";

    protected override string Answer => "none (made up)";
}

/// <summary>GaggleLockHandle.DisposeAsync (or a give-up after a grant): a release of one token.</summary>
internal sealed class ReleaseOperation : ClientOperation
{
    public required string Lock { get; init; }

    public required long Token { get; init; }

    /// <summary>The index the release completed with.</summary>
    public long Index { get; set; }

    /// <summary>Completed from a snapshot its node installed: <see cref="Index"/> is the snapshot's, at or after the entry's own.</summary>
    public bool Covered { get; set; }

    public override string Object => Lock;

    protected override string Call => $"release {Lock} token {LockTokens.Describe(Token)}";

    protected override string Answer => !Answered ? "no answer" : $"done at index {Index}{(Covered ? " (a snapshot's)" : "")}";
}

/// <summary>GaggleLocks.InspectAsync: the lock's holders as of a log index.</summary>
internal sealed class ReadOperation : ClientOperation
{
    public required string Lock { get; init; }

    public LockInfo? Info { get; set; }

    public override string Object => Lock;

    protected override string Call => $"inspect {Lock}";

    protected override string Answer => !Answered || Info is not { } info ? "no answer"
        : $"as of index {info.AsOfIndex}: {(info.Holders.Count == 0 ? "no holder" : string.Join(", ", info.Holders.Select(h => $"token {LockTokens.Describe(h.FencingToken)} of {h.NodeId} since {h.Since} until {h.LeaseExpiry} ms")))}";
}

/// <summary>The log index a fencing token was granted at (LockTable's remarks give the layout).</summary>
internal static class LockTokens
{
    public static long IndexOf(long token) => token >> 48 == 0 ? token >> 16 : (token & ((1L << 48) - 1)) >> 8;

    public static string Describe(long token) => $"{token} (index {IndexOf(token)})";
}
