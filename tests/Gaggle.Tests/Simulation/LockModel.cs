using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The sequential specification of one lock (mutex or semaphore) as its clients see it: grants with
/// fencing tokens, releases, and linearizable reads (GaggleLocks.InspectAsync). A lock's state is the
/// log position reached, a lower bound of the lock table's lease clock, the last token granted and
/// the holders, each with a lower bound of its lease expiry. The rules:
/// <list type="bullet">
/// <item>Operations take effect in log order: the index each reveals (a token's, a read's, a release's)
/// never goes back, and neither does the lease clock (a grant's time, a read's holders' times).</item>
/// <item>Tokens strictly increase; a grant takes a free slot: holders still within the lease they are
/// known to have, and not released, fill the slots (one for a mutex). A holder ends by its release
/// or by its lease running out; one whose release had no answer, or whose grant its client never saw,
/// may end at any time.</item>
/// <item>A read shows exactly the holders that have not ended: every one it shows was granted and not
/// released before it, and every one it leaves out has ended (so the lease clock has reached its
/// expiry, unless it may have ended at any time).</item>
/// </list>
/// Try-once denials, waits that ran out and rejections are not checked (the queue and the hold-off
/// that decide them are not visible to clients); such an acquire, or one never answered, may have
/// been granted unseen. Its only trace a client can see is a hold of its node in a read that no
/// answered grant accounts for: each such hold becomes an <see cref="UnseenGrantOperation"/>, and the
/// acquires themselves are left out (a grant nobody saw may have ended at any time, so it constrains
/// nothing else). Renewals are not recorded: they only extend leases, which the model treats as
/// lower bounds, and reads tell the current expiry.
/// </summary>
internal sealed class LockModel : ISequentialModel<LockModelState>
{
    /// <summary>The grant time of every hold a read showed.</summary>
    private readonly Dictionary<long, long> _sinceOf;

    /// <summary>Releases that may have taken effect here unseen (unanswered, or answered by another cluster).</summary>
    private readonly HashSet<ClientOperation> _unseenReleases;

    private LockModel(List<ClientOperation> operations, Dictionary<long, long> sinceOf, HashSet<ClientOperation> unseenReleases)
    {
        Operations = operations;
        _sinceOf = sinceOf;
        _unseenReleases = unseenReleases;
    }

    /// <summary>The operations of this lock's history: the answered ones and those of <c>floating</c> that can matter to it.</summary>
    public List<ClientOperation> Operations { get; }

    public LockModelState Initial { get; } = new(0, long.MinValue, 0, []);

    /// <summary>
    /// The model of one lock's history: <paramref name="answered"/> (answered by its cluster) and what of
    /// <paramref name="floating"/> (acquires and releases that may have taken effect here unseen) can
    /// matter: a release of a token seen here, and a hold of a node that a read showed and no answered
    /// grant accounts for, made an <see cref="UnseenGrantOperation"/> called when the first such
    /// acquire of its node was.
    /// </summary>
    public static LockModel For(IReadOnlyList<ClientOperation> answered, IEnumerable<ClientOperation> floating)
    {
        var shown = answered.OfType<ReadOperation>().SelectMany(r => r.Info!.Holders).ToList();
        var sinceOf = new Dictionary<long, long>();
        foreach (var holder in shown)
        {
            sinceOf.TryAdd(holder.FencingToken, holder.Since);
        }

        var granted = answered.OfType<AcquireOperation>().Where(a => a.Granted).Select(a => a.Token).ToHashSet();
        var operations = answered.ToList();
        var acquires = new List<AcquireOperation>();
        var unseenReleases = new HashSet<ClientOperation>();
        foreach (var operation in floating)
        {
            if (operation is ReleaseOperation release && (granted.Contains(release.Token) || sinceOf.ContainsKey(release.Token)))
            {
                operations.Add(release);
                unseenReleases.Add(release);
            }
            else if (operation is AcquireOperation acquire)
            {
                acquires.Add(acquire);
            }
        }

        foreach (var read in answered.OfType<ReadOperation>())
        {
            foreach (var holder in read.Info!.Holders.Where(h => !granted.Contains(h.FencingToken)))
            {
                // Called no later than the first acquire of its node with no grant answered here (if there is none, reads showing it fail the check).
                if (acquires.Where(a => a.Node == holder.NodeId).MinBy(a => a.InvokedAt) is { } first && granted.Add(holder.FencingToken))
                {
                    operations.Add(new UnseenGrantOperation
                    {
                        Client = first.Client, Node = holder.NodeId, Lock = first.Lock, Token = holder.FencingToken, Since = holder.Since, LeaseMs = first.LeaseMs,
                        MaxCount = read.Info.MaxCount, Kind = holder.Kind, InvokedAt = first.InvokedAt, InvokedStep = first.InvokedStep,
                    });
                }
            }
        }

        return new LockModel(operations, sinceOf, unseenReleases);
    }

    public string? Step(LockModelState state, ClientOperation operation, List<LockModelState> next)
    {
        switch (operation)
        {
            case AcquireOperation { Granted: true } grant:
                long? since = _sinceOf.TryGetValue(grant.Token, out long seen) ? seen : null;
                // Without a read of the hold, the grant's time is its expiry less the lease, or earlier (renewed before the client saw it).
                return Grant(state, grant.Kind, grant.MaxCount, grant.Node, grant.Token, since, since ?? grant.Expiry - grant.LeaseMs, grant.Expiry, mayEndAnyTime: false, next);
            case UnseenGrantOperation unseen:
                return Grant(state, unseen.Kind, unseen.MaxCount, unseen.Node, unseen.Token, unseen.Since, unseen.Since, unseen.Since + unseen.LeaseMs, mayEndAnyTime: true, next);
            case ReleaseOperation release when !_unseenReleases.Contains(release):
                if (release.Index < state.Index)
                {
                    return $"it was done by index {release.Index}, before index {state.Index} of an operation placed before it";
                }

                next.Add(state with { Index = release.Covered ? state.Index : release.Index, Holders = [.. state.Holders.Where(h => h.Token != release.Token)] });
                return null;
            case ReleaseOperation release:
                next.Add(state with { Holders = [.. state.Holders.Select(h => h.Token == release.Token ? h with { MayEndAnyTime = true } : h)] });
                return null;
            default:
                return Read(state, (ReadOperation)operation, next);
        }
    }

    public long OrderHint(ClientOperation operation) => operation switch
    {
        AcquireOperation { Granted: true } grant => LockTokens.IndexOf(grant.Token),
        UnseenGrantOperation unseen => LockTokens.IndexOf(unseen.Token),
        ReleaseOperation release when !_unseenReleases.Contains(release) => release.Index,
        ReleaseOperation => long.MinValue,
        _ => ((ReadOperation)operation).Info!.AsOfIndex,
    };

    public string Describe(LockModelState state) => state.ToString();

    /// <param name="since">The grant's lease time when known exactly.</param>
    /// <param name="latest">The latest the grant's lease time can be.</param>
    /// <param name="kind">What was granted: a mutex or a semaphore slot (of <paramref name="maxCount"/>), or a reader-writer lock for reading or writing.</param>
    private static string? Grant(LockModelState state, LockHoldKind kind, int maxCount, string node, long token, long? since, long latest, long expiry, bool mayEndAnyTime, List<LockModelState> next)
    {
        long index = LockTokens.IndexOf(token);
        if (index < state.Index)
        {
            return $"it was granted at index {index}, before index {state.Index} of an operation placed before it";
        }

        if (token <= state.LastToken)
        {
            return $"its token is not above token {LockTokens.Describe(state.LastToken)}, granted before it";
        }

        if (latest < state.Clock)
        {
            return $"it was granted at lease time {latest} ms or earlier, but an operation placed before it saw lease time {state.Clock} ms";
        }

        var held = state.Holders.Where(h => !h.MayEndAnyTime && h.Until > latest).ToArray();
        bool readerWriter = LockHolding.IsReaderWriter(kind);
        if (Array.Find(held, h => LockHolding.IsReaderWriter(h.Kind) != readerWriter) is { Node: not null } other)
        {
            return $"it was granted at lease time {latest} ms or earlier while {other} held the name as another kind of lock";
        }

        string? refused = kind switch
        {
            LockHoldKind.Read => held.Any(h => h.Kind == LockHoldKind.Write) ? "a writer held it" : null,
            LockHoldKind.Write => held.Length > 0 ? "it was held" : null,
            _ => held.Length >= maxCount ? (maxCount == 1 ? "held it" : $"held all {maxCount} slots") : null,
        };
        if (refused is not null)
        {
            return kind is LockHoldKind.Read or LockHoldKind.Write
                ? $"it was granted for {(kind == LockHoldKind.Read ? "reading" : "writing")} at lease time {latest} ms or earlier while {refused}: {string.Join(" and ", held)}"
                : $"it was granted at lease time {latest} ms or earlier while {string.Join(" and ", held)} {refused}";
        }

        // Holders of another kind had ended. A mutex or a writer had no holder left; a reader, no writer;
        // a full semaphore kept those certain to hold it.
        var sameKind = state.Holders.Where(h => LockHolding.IsReaderWriter(h.Kind) == readerWriter).ToArray();
        LockHolding[] kept = kind switch
        {
            LockHoldKind.Write => [],
            LockHoldKind.Read => [.. sameKind.Where(h => h.Kind == LockHoldKind.Read)],
            _ => maxCount == 1 ? [] : held.Length + 1 == maxCount ? held : sameKind,
        };
        next.Add(new LockModelState(index, Math.Max(state.Clock, since ?? state.Clock), token, [.. kept, new LockHolding(token, node, expiry, mayEndAnyTime, kind)]));
        return null;
    }

    private static string? Read(LockModelState state, ReadOperation read, List<LockModelState> next)
    {
        var info = read.Info!;
        if (info.AsOfIndex < state.Index)
        {
            return $"it read the lock as of index {info.AsOfIndex}, before index {state.Index} of an operation placed before it (a stale read)";
        }

        long earliest = state.Clock;
        long latest = long.MaxValue;
        var holders = new List<LockHolding>();
        foreach (var shown in info.Holders)
        {
            if (Array.Find(state.Holders, h => h.Token == shown.FencingToken) is not { Node: not null } known)
            {
                return $"it shows token {LockTokens.Describe(shown.FencingToken)} of {shown.NodeId}, which no operation placed before it holds (not granted yet, or released)";
            }

            if (known.Node != shown.NodeId)
            {
                return $"it shows token {LockTokens.Describe(shown.FencingToken)} held by {shown.NodeId}, but it was granted to {known.Node}";
            }

            if ((LockHolding.IsReaderWriter(known.Kind) || LockHolding.IsReaderWriter(shown.Kind)) && known.Kind != shown.Kind)
            {
                return $"it shows token {LockTokens.Describe(shown.FencingToken)} as a {shown.Kind} hold, but it was granted as a {known.Kind} hold";
            }

            earliest = Math.Max(earliest, shown.Since);
            latest = Math.Min(latest, shown.LeaseExpiry - 1);
            holders.Add(known with { Until = shown.LeaseExpiry });
        }

        LockHolding? left = null;
        foreach (var holder in state.Holders)
        {
            if (!holders.Exists(h => h.Token == holder.Token) && !holder.MayEndAnyTime && holder.Until > earliest)
            {
                // Left out, so ended: the lease clock had reached its expiry.
                earliest = holder.Until;
                left = holder;
            }
        }

        if (earliest > latest)
        {
            return left is { } missing && missing.Until > latest
                ? $"it leaves out {missing} (not released) but shows holders whose leases end by {latest + 1} ms"
                : $"its holders' leases (from {earliest} ms, to {latest + 1} ms) cannot be current at lease time {state.Clock} ms or later, which an operation placed before it saw";
        }

        holders.Sort((a, b) => a.Token.CompareTo(b.Token));
        next.Add(new LockModelState(info.AsOfIndex, earliest, state.LastToken, [.. holders]));
        return null;
    }
}

/// <summary>One lock's state in <see cref="LockModel"/>.</summary>
/// <param name="Index">The log index of the last operation placed (those before it took effect no later).</param>
/// <param name="Clock">The lock table's lease clock (ms) is at least this.</param>
/// <param name="LastToken">The highest token granted.</param>
/// <param name="Holders">Who may hold the lock, by token.</param>
internal sealed record LockModelState(long Index, long Clock, long LastToken, LockHolding[] Holders)
{
    public bool Equals(LockModelState? other)
        => other is not null && Index == other.Index && Clock == other.Clock && LastToken == other.LastToken && Holders.AsSpan().SequenceEqual(other.Holders);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Index);
        hash.Add(Clock);
        hash.Add(LastToken);
        foreach (var holder in Holders)
        {
            hash.Add(holder);
        }

        return hash.ToHashCode();
    }

    public override string ToString()
        => $"the lock at index {Index}, lease time {(Clock == long.MinValue ? "unknown" : $"{Clock} ms or later")}, last token {(LastToken == 0 ? "none" : LockTokens.Describe(LastToken))}, "
            + $"{(Holders.Length == 0 ? "no holder" : $"held by {string.Join(" and ", Holders)}")}";
}

/// <summary>A hold in <see cref="LockModel"/>: its lease runs until <paramref name="Until"/> or later, unless it ends by a release (or at any time, when <paramref name="MayEndAnyTime"/>).</summary>
internal readonly record struct LockHolding(long Token, string Node, long Until, bool MayEndAnyTime, LockHoldKind Kind)
{
    public static bool IsReaderWriter(LockHoldKind kind) => kind is LockHoldKind.Read or LockHoldKind.Write;

    public override string ToString()
        => $"token {LockTokens.Describe(Token)} of {Node}{(IsReaderWriter(Kind) ? $" ({Kind})" : "")} (lease until {Until} ms or later{(MayEndAnyTime ? ", may have ended any time" : "")})";
}
