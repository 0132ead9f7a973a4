using System.Text;
using Gaggle.Raft;

namespace Gaggle.Tests.Raft;

/// <summary>
/// A deterministic in-process cluster of <see cref="RaftCore"/> nodes named "a", "b", "c", ... that
/// plays the driver's part: it persists each <see cref="Ready"/> (hard state and log copies, so a node
/// can be restarted from them) BEFORE it puts the ready's messages on the network, applies committed
/// entries, and delivers messages when asked. Time passes only through <see cref="Tick"/> and
/// <see cref="Advance"/>.
/// </summary>
/// <remarks>
/// Every ready is checked against Raft's safety properties: Election Safety (one leader per term)
/// and State Machine Safety (every node applies the same entry at an index, in log order).
/// A violation throws, failing the scenario at the step that broke it.
/// </remarks>
internal sealed partial class RaftTestCluster
{
    private readonly SortedDictionary<string, TestNode> _nodes = new(StringComparer.Ordinal);
    private readonly List<RaftMessage> _inFlight = [];
    private readonly List<Func<RaftMessage, bool>> _dropRules = [];
    private readonly HashSet<string> _isolated = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _partition = new(StringComparer.Ordinal);
    private readonly string[] _seedIds;
    private readonly Dictionary<long, string> _leaderOfTerm = [];
    private readonly Dictionary<long, LogEntry> _appliedAt = [];

    public RaftTestCluster(int size, ClusterOptions? options = null)
    {
        Options = options ?? new ClusterOptions();
        var ids = Enumerable.Range(0, size).Select(i => ((char)('a' + i)).ToString()).ToArray();
        _seedIds = ids;
        for (int i = 0; i < ids.Length; i++)
        {
            var node = new TestNode(ids[i], i, joining: false);
            _nodes.Add(node.Id, node);
        }

        foreach (var node in _nodes.Values)
        {
            node.Core = Build(node);
        }
    }

    public ClusterOptions Options { get; }

    /// <summary>
    /// Adds a node new to the running cluster (<see cref="RaftConfig.Joining"/>, the seed ids as
    /// <see cref="RaftConfig.Members"/>): it answers messages but never campaigns until a configuration
    /// entry makes it a voter. Nothing is proposed: the leader must add it as a learner.
    /// </summary>
    public RaftCore AddNode(string id)
    {
        if (_nodes.ContainsKey(id))
        {
            throw new ArgumentException($"The cluster already has a node '{id}'.", nameof(id));
        }

        var node = new TestNode(id, _nodes.Count, joining: true);
        _nodes.Add(id, node);
        node.Core = Build(node);
        return node.Core;
    }

    /// <summary>Proposes a single-server configuration change on <paramref name="leader"/> (expected index -1: any).</summary>
    public ConfigChangeOutcome ProposeChange(string leader, ConfigChangeType type, string node, out long index, long expectedIndex = -1)
    {
        var outcome = this[leader].ProposeConfigChange(new ConfigChange(type, node), expectedIndex, out index, out _);
        Collect();
        return outcome;
    }

    public IReadOnlyCollection<string> Ids => _nodes.Keys;

    /// <summary>Every message a node handed to the network, delivered or not, in send order.</summary>
    public List<RaftMessage> Sent { get; } = [];

    /// <summary>Messages (per target) the network did not deliver: isolation, a drop rule or a stopped target.</summary>
    public List<RaftMessage> Dropped { get; } = [];

    /// <summary>Messages sent but not delivered yet.</summary>
    public IReadOnlyList<RaftMessage> InFlight => _inFlight;

    public RaftCore this[string id] => _nodes[id].Core;

    public RaftRole Role(string id) => this[id].Role;

    public long Term(string id) => this[id].Term;

    /// <summary>The terms of the entries in a node's in-memory log, index 1 first.</summary>
    public long[] LogTerms(string id) => this[id].Log.All().Select(e => e.Term).ToArray();

    public IReadOnlyList<LogEntry> Log(string id) => this[id].Log.All();

    /// <summary>What the node has persisted: the driver's copy it restarts from (entries after its snapshot, if any).</summary>
    public (HardState HardState, IReadOnlyList<LogEntry> Entries) Persisted(string id)
        => (_nodes[id].HardState, _nodes[id].Stored.ToArray());

    /// <summary>The snapshot the node has persisted (taken locally or installed from the leader), or null.</summary>
    public RaftSnapshot? PersistedSnapshot(string id) => _nodes[id].Snapshot;

    /// <summary>The snapshots the node installed from its leader, in order.</summary>
    public IReadOnlyList<RaftSnapshot> InstalledSnapshots(string id) => _nodes[id].Installed;

    /// <summary>
    /// The driver's snapshot step: takes a snapshot of <paramref name="id"/> at its applied index (the
    /// state machine bytes are the applied payloads), persists it, drops the entries it covers from
    /// storage and compacts the core's log.
    /// </summary>
    public RaftSnapshot Compact(string id)
    {
        var node = _nodes[id];
        var snapshot = node.Core.CreateSnapshot(node.AppliedThrough, Encoding.UTF8.GetBytes(string.Join(",", AppliedData(id))));
        node.Core.CompactTo(snapshot);
        node.StoreSnapshot(snapshot, keepEntriesAfter: true);
        return snapshot;
    }

    /// <summary>The payloads of the application entries the node applied, in order.</summary>
    public IReadOnlyList<string> AppliedData(string id)
        => _nodes[id].Applied.Where(e => e.Kind == EntryKind.Normal).Select(e => Encoding.UTF8.GetString(e.Data.Span)).ToArray();

    public long AppliedIndex(string id) => _nodes[id].AppliedThrough;

    /// <summary>Running nodes that believe they lead, in id order.</summary>
    public IReadOnlyList<string> Leaders()
        => _nodes.Values.Where(n => !n.Stopped && n.Core.Role == RaftRole.Leader).Select(n => n.Id).ToArray();

    public int CountSent(Func<RaftMessage, bool> predicate) => Sent.Count(predicate);

    /// <summary>Runs every ready the running nodes have: persist, apply, and put their messages on the network.</summary>
    public void Collect()
    {
        foreach (var node in _nodes.Values)
        {
            if (!node.Stopped)
            {
                DrainReady(node, _inFlight);
            }
        }
    }

    /// <summary>Delivers every message in flight once (broadcasts to every other node), then collects the replies.</summary>
    /// <returns>The number of messages delivered.</returns>
    public int Deliver()
    {
        Collect();
        var batch = _inFlight.ToArray();
        _inFlight.Clear();
        int delivered = 0;
        foreach (var message in batch)
        {
            foreach (var target in Targets(message))
            {
                if (IsDropped(message, target))
                {
                    Dropped.Add(message);
                    continue;
                }

                target.Core.Step(message);
                delivered++;
            }
        }

        Collect();
        return delivered;
    }

    /// <summary>Delivers messages until the network is quiet (no ticks pass).</summary>
    public void Stabilize()
    {
        for (int round = 0; round < 10_000; round++)
        {
            Collect();
            if (_inFlight.Count == 0)
            {
                return;
            }

            Deliver();
        }

        throw new InvalidOperationException("The cluster did not stabilize within 10000 delivery rounds.");
    }

    /// <summary>Ticks one node <paramref name="ticks"/> times; what it sends stays in flight.</summary>
    public void Tick(string id, int ticks = 1)
    {
        for (int i = 0; i < ticks; i++)
        {
            this[id].Tick();
            Collect();
        }
    }

    /// <summary>Lets <paramref name="ticks"/> ticks pass on every running node, stabilizing after each.</summary>
    public void Advance(int ticks)
    {
        for (int i = 0; i < ticks; i++)
        {
            foreach (var node in _nodes.Values.Where(n => !n.Stopped))
            {
                node.Core.Tick();
            }

            Stabilize();
        }
    }

    /// <summary>Advances time until <paramref name="condition"/> holds; returns the ticks it took.</summary>
    public int AdvanceUntil(Func<bool> condition, int maxTicks = 1000)
    {
        for (int ticks = 0; ticks <= maxTicks; ticks++)
        {
            if (condition())
            {
                return ticks;
            }

            Advance(1);
        }

        throw new InvalidOperationException($"The condition did not hold within {maxTicks} ticks.");
    }

    /// <summary>Ticks <paramref name="id"/> alone until its election timeout fires; its vote requests stay in flight.</summary>
    public void StartCampaign(string id)
    {
        var core = this[id];
        long term = core.Term;
        for (int i = 0; i <= Options.ElectionTicksMax; i++)
        {
            Tick(id);
            if (core.Role is RaftRole.PreCandidate or RaftRole.Candidate || core.Term != term)
            {
                return;
            }
        }

        throw new InvalidOperationException($"{id} did not campaign within {Options.ElectionTicksMax + 1} ticks (role {core.Role}).");
    }

    /// <summary>Times <paramref name="id"/> out and runs the election to its end.</summary>
    public void Campaign(string id)
    {
        StartCampaign(id);
        Stabilize();
    }

    /// <summary>Campaigns with <paramref name="id"/> and requires that it won.</summary>
    public RaftCore Elect(string id)
    {
        Campaign(id);
        if (Role(id) != RaftRole.Leader)
        {
            throw new InvalidOperationException($"{id} campaigned but is {Role(id)} in term {Term(id)}.");
        }

        return this[id];
    }

    /// <summary>Proposes one application entry; returns its index (-1 when refused).</summary>
    public long Propose(string id, string data) => this[id].Propose([Encoding.UTF8.GetBytes(data)]);

    /// <summary>Proposes <paramref name="count"/> entries in one call; returns the first index (-1 when refused).</summary>
    public long ProposeMany(string id, int count, string prefix = "x")
        => this[id].Propose(Enumerable.Range(0, count).Select(i => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes($"{prefix}{i}")).ToArray());

    /// <summary>Crashes a node: it stops ticking, messages to it are lost, its volatile state is gone.</summary>
    public void Stop(string id) => _nodes[id].Stopped = true;

    public bool Stopped(string id) => _nodes[id].Stopped;

    /// <summary>Rebuilds a node from what it persisted (hard state, log, applied index) and starts it.</summary>
    public void Restart(string id)
    {
        var node = _nodes[id];
        node.Incarnation++;
        node.Stopped = false;
        node.Core = Build(node);
    }

    /// <summary>Replaces what a node has persisted (as if it had lived through an earlier history) and restarts it.</summary>
    public void Preload(string id, HardState hardState, params long[] entryTerms)
        => Preload(id, hardState, Entries(1, entryTerms));

    public void Preload(string id, HardState hardState, IEnumerable<LogEntry> entries)
    {
        var node = _nodes[id];
        node.HardState = hardState;
        node.Stored.Clear();
        node.Stored.AddRange(entries);
        node.Applied.Clear();
        node.AppliedThrough = 0;
        node.Snapshot = null;
        Restart(id);

        // The history is set up, not lived through: no lease from a leader to honour.
        node.Core.EndStartupLease();
    }

    /// <summary>Steps one message straight into its target and returns what the target answered (not put on the network).</summary>
    public IReadOnlyList<RaftMessage> Send(RaftMessage message)
    {
        var target = _nodes[message.To ?? throw new ArgumentException("Send needs a target.", nameof(message))];
        target.Core.Step(message);
        var replies = new List<RaftMessage>();
        DrainReady(target, replies);
        return replies;
    }

    /// <summary>Entries with the given terms, numbered from <paramref name="firstIndex"/>, carrying their index as data.</summary>
    public static LogEntry[] Entries(long firstIndex, params long[] terms)
        => terms.Select((term, i) => new LogEntry(firstIndex + i, term, EntryKind.Normal, Encoding.UTF8.GetBytes($"e{firstIndex + i}"))).ToArray();

    private RaftCore Build(TestNode node)
    {
        var config = new RaftConfig
        {
            Id = node.Id,
            Members = Options.Discovery ? null : _seedIds,
            Joining = node.Joining,
            ClusterSize = _seedIds.Length,
            ElectionTicksMin = Options.ElectionTicksMin,
            ElectionTicksMax = Options.ElectionTicksMax,
            HeartbeatTicks = Options.HeartbeatTicks,
            PreVote = Options.PreVote,
            CheckQuorum = Options.CheckQuorum,
            AccelerateCommit = Options.AccelerateCommit,
            FollowerCommit = Options.FollowerCommit,
            BroadcastAppends = Options.BroadcastAppends,
            MaxInflightMessages = Options.MaxInflightMessages,
            MaxEntriesPerMessage = Options.MaxEntriesPerMessage,
            MaxBytesPerMessage = Options.MaxBytesPerMessage,
            Random = new Random(unchecked((Options.Seed * 7919) + (node.Ordinal * 104_729) + (node.Incarnation * 1_299_709))),
        };
        return new RaftCore(config, node.HardState, node.Stored.ToArray(), node.AppliedThrough, node.Snapshot);
    }

    /// <summary>The driver's loop body: persist, then send, then apply (the <see cref="Ready"/> ordering contract).</summary>
    private void DrainReady(TestNode node, List<RaftMessage> outbox)
    {
        while (node.Core.TakeReady() is { } ready)
        {
            if (ready.Snapshot is { } snapshot)
            {
                // Persisted before the rest of the ready; it replaces the whole log and the state machines.
                node.StoreSnapshot(snapshot, keepEntriesAfter: false);
                node.Installed.Add(snapshot);
            }

            if (ready.HardState is { } hardState)
            {
                node.HardState = hardState;
            }

            Persist(node, ready.EntriesToPersist);
            if (ready.SoftState is { Role: RaftRole.Leader } soft)
            {
                if (_leaderOfTerm.TryGetValue(soft.Term, out var other) && other != node.Id)
                {
                    throw new InvalidOperationException($"Election Safety violated: {other} and {node.Id} both lead term {soft.Term}.");
                }

                _leaderOfTerm[soft.Term] = node.Id;
            }

            Sent.AddRange(ready.Messages);
            outbox.AddRange(ready.Messages);
            foreach (var entry in ready.CommittedEntries)
            {
                Apply(node, entry);
            }
        }
    }

    private static void Persist(TestNode node, IReadOnlyList<LogEntry> entries)
    {
        if (entries.Count == 0)
        {
            return;
        }

        int keep = (int)(entries[0].Index - 1 - node.StoredAfter);
        if (keep < 0 || keep > node.Stored.Count)
        {
            throw new InvalidOperationException(
                $"{node.Id} was asked to persist from index {entries[0].Index}; it stores entries {node.StoredAfter + 1}..{node.StoredAfter + node.Stored.Count}.");
        }

        node.Stored.RemoveRange(keep, node.Stored.Count - keep);
        node.Stored.AddRange(entries);
    }

    private void Apply(TestNode node, LogEntry entry)
    {
        long expected = node.AppliedThrough + 1;
        if (entry.Index != expected)
        {
            throw new InvalidOperationException($"{node.Id} applied index {entry.Index}; expected {expected} (apply strictly in log order).");
        }

        long position = entry.Index - node.StoredAfter - 1;
        if (position < 0 || position >= node.Stored.Count || node.Stored[(int)position].Term != entry.Term)
        {
            throw new InvalidOperationException($"{node.Id} applied entry {entry.Index} (term {entry.Term}) before persisting it.");
        }

        if (_appliedAt.TryGetValue(entry.Index, out var first)
            && (first.Term != entry.Term || first.Kind != entry.Kind || !first.Data.Span.SequenceEqual(entry.Data.Span)))
        {
            throw new InvalidOperationException(
                $"State Machine Safety violated: {node.Id} applied term {entry.Term} at index {entry.Index}, another node term {first.Term}.");
        }

        _appliedAt[entry.Index] = entry;
        node.Applied.Add(entry);
        node.AppliedThrough = entry.Index;
    }

    private sealed class TestNode(string id, int ordinal, bool joining)
    {
        public string Id { get; } = id;

        public int Ordinal { get; } = ordinal;

        /// <summary>Started as a new node joining the seed members (<see cref="RaftConfig.Joining"/>).</summary>
        public bool Joining { get; } = joining;

        /// <summary>The persisted snapshot; <see cref="Stored"/> holds the entries after it.</summary>
        public RaftSnapshot? Snapshot { get; set; }

        /// <summary>The index before the first entry of <see cref="Stored"/>: the snapshot's (0 without one).</summary>
        public long StoredAfter => Snapshot?.Index ?? 0;

        public long AppliedThrough { get; set; }

        public List<RaftSnapshot> Installed { get; } = [];

        public RaftCore Core { get; set; } = null!;

        public HardState HardState { get; set; } = HardState.Empty;

        public List<LogEntry> Stored { get; } = [];

        public List<LogEntry> Applied { get; } = [];

        public bool Stopped { get; set; }

        public int Incarnation { get; set; }

        /// <summary>
        /// Persists <paramref name="snapshot"/>: a local one keeps the stored entries after it, one
        /// installed from the leader replaces the whole log (and the applied state).
        /// </summary>
        public void StoreSnapshot(RaftSnapshot snapshot, bool keepEntriesAfter)
        {
            int covered = (int)Math.Clamp(snapshot.Index - StoredAfter, 0, Stored.Count);
            if (keepEntriesAfter)
            {
                Stored.RemoveRange(0, covered);
            }
            else
            {
                Stored.Clear();
                AppliedThrough = snapshot.Index;
            }

            Snapshot = snapshot;
        }
    }
}
