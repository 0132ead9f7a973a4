using System.Text;
using Gaggle.Raft;

namespace Gaggle.Tests.Simulation;

/// <summary>A broken Raft safety property (or a broken driver contract), described for a human.</summary>
internal sealed class SafetyViolationException(string message) : Exception(message);

/// <summary>
/// What the whole run has seen, across crashes and terms, and Raft's safety properties (Raft §5.2,
/// §5.3, §5.4, Figure 3) checked against it incrementally so that every step can be checked.
/// Each Observe method throws <see cref="SafetyViolationException"/> when a property breaks.
/// </summary>
internal sealed class SafetyChecker
{
    /// <summary>Every (term, leader) ever seen.</summary>
    private readonly Dictionary<long, string> _leaders = [];

    /// <summary>Every (index, term) ever written to any log, with its content and the term before it.</summary>
    private readonly Dictionary<(long Index, long Term), LoggedEntry> _logged = [];

    /// <summary>The committed prefix of the log (position i holds index i + 1), as first seen committed.</summary>
    private readonly List<CommittedEntry> _committed = [];

    /// <summary>The applied prefix of the log (position i holds index i + 1), as first applied anywhere.</summary>
    private readonly List<(LogEntry Entry, string Node)> _applied = [];

    /// <summary>Every vote ever granted: (voter, term) to candidate, across crashes and lost storage.</summary>
    private readonly Dictionary<(string Voter, long Term), string> _votes = [];

    /// <summary>Candidacies their candidate forgot with its storage (see <see cref="ObserveForgottenTerms"/>).</summary>
    private readonly HashSet<(string Candidate, long Term)> _forgottenCandidacies = [];

    public int CommittedCount => _committed.Count;

    public int AppliedCount => _applied.Count;

    /// <summary>Entries of the prefix a forced cluster took over from the one it replaced (see <see cref="ContinuedAfter"/>).</summary>
    public int InheritedCount { get; private set; }

    /// <summary>How many terms had a leader.</summary>
    public int LeaderCount => _leaders.Count;

    /// <summary>Election Safety (Raft §5.2): at most one leader per term, over the whole run.</summary>
    public void ObserveLeader(string node, long term)
    {
        if (!_leaders.TryGetValue(term, out var known))
        {
            _leaders[term] = node;
        }
        else if (known != node)
        {
            throw new SafetyViolationException($"election safety: two leaders in term {term}: {known}, {node}");
        }
    }

    /// <summary>
    /// Log Matching (Raft §5.3), checked by induction: an (index, term) pair must always name the same
    /// entry and follow the same term. If every log obeys that, two logs that share an (index, term)
    /// are identical up to it, so checking each entry once, when it is written, is enough.
    /// </summary>
    public void ObserveLogged(string node, LogEntry entry, long previousTerm)
    {
        var key = (entry.Index, entry.Term);
        if (!_logged.TryGetValue(key, out var known))
        {
            _logged[key] = new LoggedEntry(entry, previousTerm, node);
            return;
        }

        if (!SameContent(known.Entry, entry))
        {
            throw new SafetyViolationException(
                $"log matching: two different entries at index {entry.Index} of term {entry.Term}: {known.Node} wrote {Describe(known.Entry)}, {node} wrote {Describe(entry)}");
        }

        if (known.PreviousTerm != previousTerm)
        {
            throw new SafetyViolationException(
                $"log matching: entry {entry.Index} of term {entry.Term} follows an entry of term {known.PreviousTerm} on {known.Node} but of term {previousTerm} on {node}");
        }
    }

    /// <summary>
    /// Records that <paramref name="node"/> (in <paramref name="nodeTerm"/>) now knows indexes
    /// <paramref name="from"/>..<paramref name="to"/> to be committed. A committed index never changes
    /// its entry; the node's term bounds the term the entry was committed in from above, which is the
    /// safe side for <see cref="CheckLeaderCompleteness"/>.
    /// </summary>
    public void ObserveCommitted(string node, long nodeTerm, long from, long to, Func<long, long> termAt)
    {
        for (long index = from; index <= to; index++)
        {
            long term = termAt(index);
            if (index <= _committed.Count)
            {
                var known = _committed[(int)index - 1];
                if (known.Term != term)
                {
                    throw new SafetyViolationException(
                        $"committed entry changed: {known.Node} committed index {index} with term {known.Term}, {node} commits it with term {term}");
                }
            }
            else if (index == _committed.Count + 1)
            {
                _committed.Add(new CommittedEntry(term, nodeTerm, node));
            }
            else
            {
                throw new SafetyViolationException($"{node} commits index {index} but nothing before {_committed.Count + 1} was seen committed");
            }
        }
    }

    /// <summary>
    /// Leader Completeness (Raft §5.4): the log of a leader of term T holds every entry committed in a
    /// term before T. A leader's log only grows, so the check resumes after <paramref name="checkedUpTo"/>;
    /// returns the new position to resume from.
    /// </summary>
    public long CheckLeaderCompleteness(string leader, long leaderTerm, long checkedUpTo, Func<long, long> termAt)
    {
        for (long index = checkedUpTo + 1; index <= _committed.Count; index++)
        {
            var committed = _committed[(int)index - 1];
            long held = termAt(index);
            if (committed.CommitTerm < leaderTerm && held != committed.Term)
            {
                string what = held < 0 ? "nothing" : $"an entry of term {held}";
                throw new SafetyViolationException(
                    $"leader completeness: {leader}, leader of term {leaderTerm}, holds {what} at index {index}, "
                    + $"which {committed.Node} committed with term {committed.Term} in term {committed.CommitTerm}");
            }
        }

        return _committed.Count;
    }

    /// <summary>
    /// State Machine Safety (Raft §5.4.3) and the apply contract: a node applies index n + 1 after n,
    /// and every node applies the same entry at the same index.
    /// </summary>
    public void ObserveApplied(string node, long appliedBefore, LogEntry entry)
    {
        if (entry.Index != appliedBefore + 1)
        {
            throw new SafetyViolationException($"{node} applied index {entry.Index} after index {appliedBefore}: applied entries must be contiguous and in order");
        }

        if (entry.Index <= _applied.Count)
        {
            var (known, knownNode) = _applied[(int)entry.Index - 1];
            if (!SameContent(known, entry))
            {
                throw new SafetyViolationException(
                    $"state machine safety: at index {entry.Index} {knownNode} applied {Describe(known)} but {node} applied {Describe(entry)}");
            }
        }
        else
        {
            _applied.Add((entry, node));
        }
    }

    /// <summary>
    /// State Machine Safety for snapshots: a state machine restored from a snapshot at index i must
    /// hold the same sequence that every node applied up to i.
    /// </summary>
    public void ObserveRestored(string node, IReadOnlyList<LogEntry> content)
    {
        for (int i = 0; i < content.Count; i++)
        {
            var entry = content[i];
            if (i < _applied.Count)
            {
                var (known, knownNode) = _applied[i];
                if (!SameContent(known, entry))
                {
                    throw new SafetyViolationException(
                        $"state machine safety: at index {entry.Index} {knownNode} applied {Describe(known)} but {node} restored {Describe(entry)} from a snapshot");
                }
            }
            else
            {
                _applied.Add((entry, node));
            }
        }
    }

    /// <summary>
    /// State Machine Safety for snapshots: a node restored from a snapshot at (index, term) holds what
    /// every node applied up to that index, so the entry applied there has that term.
    /// </summary>
    public void ObserveRestoredAt(string node, long index, long term)
    {
        if (index >= 1 && index <= _applied.Count && _applied[(int)index - 1].Entry.Term != term)
        {
            var (known, knownNode) = _applied[(int)index - 1];
            throw new SafetyViolationException($"state machine safety: {node} restored a snapshot at {index}/t{term}, but {knownNode} applied {Describe(known)} there");
        }

        if (index > _applied.Count)
        {
            throw new SafetyViolationException($"{node} restored a snapshot at {index}/t{term}, beyond anything any node applied ({_applied.Count})");
        }
    }

    /// <summary>The term of the entry applied at <paramref name="index"/> (by any node); -1 when none was.</summary>
    public long AppliedTermAt(long index) => index >= 1 && index <= _applied.Count ? _applied[(int)index - 1].Entry.Term : -1;

    /// <summary>
    /// One vote per term (Raft §5.2), the premise of Election Safety: a server that lost its storage
    /// must not grant a second vote in a term in which it may already have voted for someone else.
    /// </summary>
    public void ObserveVote(string voter, long term, string candidate)
    {
        if (!_votes.TryGetValue((voter, term), out var known) || (known != candidate && _forgottenCandidacies.Contains((known, term))))
        {
            // A vote for a candidacy its candidate has since forgotten with its storage counts for
            // nobody: the candidate never counts an answer sent to its previous incarnation (the loss
            // model's premise), and a leader it may have become then is checked by election safety.
            // The rejoin procedure's term-0 rule relies on this (RaftCore.Rejoin.cs).
            _votes[(voter, term)] = candidate;
        }
        else if (known != candidate)
        {
            throw new SafetyViolationException($"vote safety: {voter} granted its vote in term {term} to {known} and then to {candidate}");
        }
    }

    /// <summary>
    /// <paramref name="node"/> lost the terms after <paramref name="keptTerm"/> up to <paramref name="lostTerm"/>
    /// with its storage: any candidacy it ran in them is forgotten.
    /// </summary>
    public void ObserveForgottenTerms(string node, long keptTerm, long lostTerm)
    {
        for (long term = keptTerm + 1; term <= lostTerm; term++)
        {
            _forgottenCandidacies.Add((node, term));
        }
    }

    /// <summary>
    /// The history of a cluster forced out of this one (GaggleNode.ForceNewGenerationAsync): its log
    /// starts with this cluster's committed prefix up to <paramref name="upTo"/> (the survivor's commit
    /// index), its terms above the survivor's. That prefix counts as committed before any term of the
    /// new cluster, so every leader of it must hold it (Leader Completeness), and every node of it must
    /// apply exactly it there (State Machine Safety). What this cluster committed after
    /// <paramref name="upTo"/> is lost by design; the new cluster's own history starts empty.
    /// </summary>
    public SafetyChecker ContinuedAfter(string survivor, long upTo)
    {
        if (upTo > _committed.Count || upTo > _applied.Count)
        {
            throw new SafetyViolationException(
                $"{survivor} forces a new cluster keeping its commit index {upTo}, beyond what its cluster committed ({_committed.Count}) or applied ({_applied.Count})");
        }

        var next = new SafetyChecker { InheritedCount = (int)upTo };
        for (int i = 0; i < upTo; i++)
        {
            var committed = _committed[i];
            next._committed.Add(committed with { CommitTerm = 0 });
            next._applied.Add(_applied[i]);
            if (_logged.TryGetValue((i + 1, committed.Term), out var logged))
            {
                next._logged[(i + 1, committed.Term)] = logged;
            }
        }

        return next;
    }

    public static bool SameContent(LogEntry a, LogEntry b)
        => a.Index == b.Index && a.Term == b.Term && a.Kind == b.Kind && a.Data.Span.SequenceEqual(b.Data.Span);

    public static string Describe(LogEntry entry)
        => entry.Kind == EntryKind.NoOp
            ? $"{entry.Index}/t{entry.Term} no-op"
            : $"{entry.Index}/t{entry.Term} '{Encoding.UTF8.GetString(entry.Data.Span)}'";

    private readonly record struct LoggedEntry(LogEntry Entry, long PreviousTerm, string Node);

    private readonly record struct CommittedEntry(long Term, long CommitTerm, string Node);
}

/// <summary>
/// A run's Raft history, kept by cluster generation: in an elastic run every generation is a cluster of
/// its own (its log starts at index 1 and its terms at 1, under a new leader), so Raft's properties
/// hold within each and say nothing across two. Runs with a fixed member list use generation 0 alone.
/// </summary>
internal sealed class GenerationSafetyCheckers
{
    private readonly SortedDictionary<long, SafetyChecker> _checkers = [];

    /// <summary>Histories of clusters that ended and whose generation was founded again (see <see cref="Close"/>).</summary>
    private readonly List<SafetyChecker> _closed = [];

    /// <summary>The history of generation <paramref name="generation"/>.</summary>
    public SafetyChecker For(long generation)
    {
        if (!_checkers.TryGetValue(generation, out var checker))
        {
            checker = new SafetyChecker();
            _checkers[generation] = checker;
        }

        return checker;
    }

    /// <summary>
    /// The cluster of <paramref name="generation"/> ended (no member left) and a new one was founded
    /// with its number: the old history is closed, and the new cluster's starts empty.
    /// </summary>
    public void Close(long generation)
    {
        if (_checkers.Remove(generation, out var checker))
        {
            _closed.Add(checker);
        }
    }

    /// <summary>
    /// An operator forced generation <paramref name="forced"/> on a survivor of <paramref name="generation"/>
    /// whose commit index was <paramref name="upTo"/>: the new generation's history continues the old
    /// one's up to there (see <see cref="SafetyChecker.ContinuedAfter"/>).
    /// </summary>
    public void Fork(long generation, long forced, string survivor, long upTo)
    {
        if (_checkers.ContainsKey(forced))
        {
            throw new SafetyViolationException($"{survivor} forces generation {forced}, which already has a history");
        }

        _checkers[forced] = For(generation).ContinuedAfter(survivor, upTo);
    }

    private IEnumerable<SafetyChecker> All => _checkers.Values.Concat(_closed);

    /// <summary>Entries committed, over all generations (a forced generation's inherited prefix counted once, in the generation that committed it).</summary>
    public int CommittedCount => All.Sum(c => c.CommittedCount - c.InheritedCount);

    public int AppliedCount => All.Sum(c => c.AppliedCount - c.InheritedCount);

    /// <summary>Terms that had a leader, over all generations.</summary>
    public int LeaderCount => All.Sum(c => c.LeaderCount);

    /// <summary>Clusters (generations, and generations founded again) that committed something.</summary>
    public int GenerationsCommitted => All.Count(c => c.CommittedCount > c.InheritedCount);
}
