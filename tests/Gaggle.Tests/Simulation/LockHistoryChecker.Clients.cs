using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// A client's belief that it holds a lock: from the real time it saw the grant until it let go, learnt
/// the hold ended, died, or its safe deadline (GaggleLockHandle's rule: the send time of the last
/// renewal known to be committed, plus 90% of the lease, on its own clock) passed.
/// </summary>
internal sealed class ClientBelief(string client, string lockName, int maxCount, long token, long startUs, long startStep)
{
    public string Client { get; } = client;

    public string Lock { get; } = lockName;

    public int MaxCount { get; } = maxCount;

    /// <summary>What is held: of a mutex or semaphore (bounded by <see cref="MaxCount"/>), or a reader-writer lock for reading or writing.</summary>
    public LockHoldKind Kind { get; init; }

    public bool ReaderWriter => Kind is LockHoldKind.Read or LockHoldKind.Write;

    public long Token { get; } = token;

    public long StartUs { get; } = startUs;

    public long StartStep { get; } = startStep;

    /// <summary>The real time the holder's safe deadline falls on; moves on with each committed renewal.</summary>
    public long SafeUntilRealUs { get; set; }

    /// <summary>The cluster generation that granted it (elastic runs; 0 otherwise).</summary>
    public long Generation { get; init; }

    /// <summary>The log index of the grant, in its generation's log.</summary>
    public long GrantIndex { get; init; }

    public override string ToString()
        => $"{Client} (token {Token} granted at index {GrantIndex}{(Generation == 0 ? "" : $" of generation {Generation}")}, from {StartUs} us at step {StartStep}, safe until {SafeUntilRealUs} us)";
}

/// <summary>The checks of what clients observed.</summary>
internal sealed partial class LockHistoryChecker
{
    private readonly Dictionary<string, List<ClientBelief>> _beliefs = new(StringComparer.Ordinal);

    /// <summary>
    /// A client saw its acquire granted: the common history of its generation granted exactly those
    /// tokens of exactly those locks to that request, and no other lock. A grant of several locks at
    /// once came from one entry: every token carries the same log index.
    /// </summary>
    public void ObserveClientGrant(string client, RequestId request, IReadOnlyList<(string Lock, long Token)> grants, long index, long generation = 0)
    {
        var history = HistoryOf(generation);
        foreach (var (name, token) in grants)
        {
            if (!history.GrantedTokens.TryGetValue((request, name), out long granted) || granted != token)
            {
                throw new LockSimViolation($"{client} saw token {token} of '{name}' granted at index {index}, but the committed history granted its request {(granted == 0 ? "nothing of it" : $"token {granted}")}");
            }
        }

        if (history.GrantedLocks.GetValueOrDefault(request) != grants.Count)
        {
            throw new LockSimViolation($"{client} saw {grants.Count} locks granted at index {index}, but the committed history granted its request {history.GrantedLocks.GetValueOrDefault(request)}");
        }

        if (grants.Count > 1)
        {
            if (grants.Select(g => LockTokens.IndexOf(g.Token)).Distinct().Count() != 1)
            {
                throw new LockSimViolation($"{client} saw the locks it asked for at once granted with tokens of several log indices: {string.Join(", ", grants.Select(g => $"'{g.Lock}' {LockTokens.Describe(g.Token)}"))}");
            }

            Stats.ClientGroupGrants++;
        }

        Stats.ClientGrants++;
    }

    /// <summary>
    /// A client starts to believe it holds a lock: no more than the lock's slots may believe so at this
    /// real time, whichever generation granted them; of a reader-writer lock, a writer alone or readers
    /// only; and never holders of a name as two kinds of lock at once.
    /// </summary>
    public void BeginBelief(ClientBelief belief)
    {
        if (!_beliefs.TryGetValue(belief.Lock, out var current))
        {
            current = [];
            _beliefs[belief.Lock] = current;
        }

        if (belief.SafeUntilRealUs <= belief.StartUs)
        {
            // The grant came after the safe deadline (a long wait, a lagging node): the handle is lost from the start.
            Stats.LostOnArrival++;
            return;
        }

        // A belief whose safe deadline passed is over even if its holder has not looked at the clock yet.
        var concurrent = current.Where(b => b.SafeUntilRealUs > belief.StartUs).ToList();
        bool excluded = concurrent.Exists(b => b.ReaderWriter != belief.ReaderWriter) || belief.Kind switch
        {
            LockHoldKind.Read => concurrent.Exists(b => b.Kind == LockHoldKind.Write),
            LockHoldKind.Write => concurrent.Count > 0,
            _ => concurrent.Count >= belief.MaxCount,
        };
        if (excluded)
        {
            throw new LockSimViolation($"{belief} believes it holds '{belief.Lock}' ({(belief.ReaderWriter ? $"for {belief.Kind}" : $"max {belief.MaxCount}")}) at real time {belief.StartUs} us, "
                + $"while so do {string.Join(", ", concurrent.Select(b => b.ReaderWriter ? $"{b} for {b.Kind}" : b.ToString()))}");
        }

        if (concurrent.Count > 0)
        {
            Stats.ContendedBeliefs++;
        }

        current.Add(belief);
    }

    /// <summary>The client stopped believing (at the latest, when its safe deadline passed).</summary>
    public void EndBelief(ClientBelief belief, long nowUs)
    {
        belief.SafeUntilRealUs = Math.Min(belief.SafeUntilRealUs, nowUs);
        if (_beliefs.TryGetValue(belief.Lock, out var current))
        {
            current.Remove(belief);
        }
    }

    /// <summary>A client was told its hold ended (HandleLostToken): the history of its generation must have ended exactly that hold.</summary>
    public void ObserveHoldEnded(string client, string name, long token, long generation = 0)
    {
        if (HistoryOf(generation).Locks.TryGetValue(name, out var state) && state.Holds(token))
        {
            throw new LockSimViolation($"{client} was told its hold {token} of '{name}' ended, but the history still has it");
        }
    }

    /// <summary>The hold ended in the history while its holder still trusted it: the holder must be told at once.</summary>
    public static void RequireNotified(SimulatedLockClient holder, string name, long token)
    {
        if (holder.Trusts(name, token))
        {
            throw new LockSimViolation($"{holder.Name}'s hold {token} of '{name}' ended in its node's table, but it was not told (HandleLostToken)");
        }
    }

    /// <summary>A client's release was committed and applied on its node: the hold is gone from the history.</summary>
    public void ObserveReleaseAcknowledged(string client, string name, long token, long index, long generation = 0)
    {
        if (HistoryOf(generation).Locks.TryGetValue(name, out var state) && state.Holds(token))
        {
            throw new LockSimViolation($"{client}'s release of token {token} of '{name}' was acknowledged at index {index}, but the hold remains");
        }
    }
}
