using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>What a <see cref="NodeDriver"/> is configured with: the Raft core's settings plus the node's own, in ticks and microseconds.</summary>
internal sealed class NodeDriverSettings
{
    public required RaftConfig Raft { get; init; }

    /// <summary>This process's incarnation of the node: appends and RPC calls are tagged with it.</summary>
    public required ulong Incarnation { get; init; }

    /// <summary>
    /// Where the founder's tags of the generations this node founds come from (see Channels.GenerationIds):
    /// never the election jitter's <see cref="RaftConfig.Random"/> alone, which a shared
    /// <see cref="GaggleOptions.RandomSeed"/> makes the same on every instance; with a seed, it is mixed
    /// with the incarnation (so a seeded simulation stays repeatable).
    /// </summary>
    public Random GenerationTags { get; init; } = new();

    /// <summary>Ticks between retries of stalled appends and time entries (an election timeout).</summary>
    public required int RetryTicks { get; init; }

    /// <summary>The leadership lease: how long after a heartbeat round a majority acknowledged the leadership is trusted (90% of ElectionTimeoutMin), in microseconds.</summary>
    public required long LeadershipLeaseUs { get; init; }

    /// <summary>How long an append the node makes for itself (a release of an unwanted grant, a cancelled wait) is tried: long enough to ride out an election, at most a lease, in microseconds.</summary>
    public long LockSettleUs { get; init; } = 2_000_000;

    /// <summary>The largest entry payload and forwarded batch (GaggleOptions.MaxMessageBytes).</summary>
    public int MaxMessageBytes { get; init; } = 1024 * 1024;

    /// <summary>Entries applied since the last snapshot that trigger a new one; 0 disables snapshots.</summary>
    public int SnapshotThresholdEntries { get; init; }

    /// <summary>Entries kept in the log before a snapshot's index.</summary>
    public int SnapshotRetainEntries { get; init; }

    /// <summary>What a joining node must share with the cluster: the protocol, timing options, state machine and RPC method names (see <see cref="Channels.JoinAnnounce"/>).</summary>
    public ulong Fingerprint { get; init; }

    /// <summary>Voter management on the leader (see <see cref="Runtime.Autopilot"/>), or null when the voters change only on request.</summary>
    public AutopilotSettings? Autopilot { get; init; }

    /// <summary>Elastic mode (no member list): the cluster generation's timing; null with a fixed member list.</summary>
    public ElasticSettings? Elastic { get; init; }

    /// <summary>
    /// Admissions (elastic mode): this node forwards appends only as a member of its configuration, up
    /// to date with its leader's, each under its admission; as leader it refuses forwards under another
    /// admission; every replica forgets the duplicate sessions of members at their removal (see
    /// <see cref="Raft.ClusterConfig.AdmissionOf"/>). Off with a fixed member list, whose ids are few and
    /// stable: sessions are kept, and a node outside the configuration may append as before.
    /// </summary>
    public bool Admissions { get; init; }

    /// <summary>The application's state machines, by name.</summary>
    public IDictionary<string, IGaggleStateMachine> StateMachines { get; init; } = new Dictionary<string, IGaggleStateMachine>();

    public string Id => Raft.Id;

    /// <summary>
    /// The driver settings for <paramref name="options"/>, with one tick every <paramref name="tickInterval"/>;
    /// <paramref name="echoes"/> when the channel reports this node's own broadcasts coming back (see <see cref="Channels.IEchoingChannel"/>).
    /// </summary>
    public static NodeDriverSettings From(GaggleOptions options, ulong incarnation, TimeSpan tickInterval, bool echoes = false)
    {
        int heartbeatTicks = Math.Max(1, (int)Math.Round(options.HeartbeatInterval / tickInterval));
        int electionMin = Math.Max(heartbeatTicks + 1, (int)Math.Round(options.ElectionTimeoutMin / tickInterval));
        int electionMax = Math.Max(electionMin, (int)Math.Round(options.ElectionTimeoutMax / tickInterval));
        return new NodeDriverSettings
        {
            Raft = new RaftConfig
            {
                Id = options.NodeId,
                Members = options.Members.Count > 0 ? options.Members.ToArray() : options.IsElastic ? [] : null,
                ClusterSize = options.ClusterSize ?? 0,
                HeartbeatTicks = heartbeatTicks,
                ElectionTicksMin = electionMin,
                ElectionTicksMax = electionMax,
                PreVote = options.PreVote,
                StartRejoining = options.Rejoin,
                Incarnation = incarnation,
                Joining = options.Join || options.IsElastic,
                CheckQuorum = options.CheckQuorum,
                AccelerateCommit = options.AccelerateHeartbeats,
                FollowerCommit = true,
                MaxInflightMessages = options.MaxInflightMessages,
                MaxInflightBytes = options.MaxInflightBytes,
                MaxEntriesPerMessage = options.MaxEntriesPerMessage,
                MaxBytesPerMessage = options.MaxMessageBytes,
                Random = options.RandomSeed is { } seed ? new Random(seed) : new Random(),
            },
            Incarnation = incarnation,
            GenerationTags = options.RandomSeed is { } tagSeed ? new Random(tagSeed ^ (int)((incarnation * 0x9E3779B97F4A7C15UL) >> 33)) : new Random(),
            RetryTicks = Math.Max(1, (int)Math.Round(options.ElectionTimeoutMin / tickInterval)),
            LeadershipLeaseUs = (long)(options.ElectionTimeoutMin.TotalMicroseconds * 0.9),
            LockSettleUs = (long)Math.Min(options.LockLeaseDuration.TotalMicroseconds, 4 * options.ElectionTimeoutMax.TotalMicroseconds),
            MaxMessageBytes = options.MaxMessageBytes,
            SnapshotThresholdEntries = options.SnapshotThresholdEntries,
            SnapshotRetainEntries = options.SnapshotRetainEntries,
            StateMachines = options.StateMachines,
            Fingerprint = FingerprintOf(options),
            Autopilot = options.EffectiveVoters is { } voters
                ? new AutopilotSettings(voters, (long)options.MemberTimeout.TotalMicroseconds, (long)(2 * options.ElectionTimeoutMax.TotalMicroseconds), FingerprintOf(options))
                {
                    PauseUs = (long)options.ElectionTimeoutMax.TotalMicroseconds,
                    IdsNeverReturn = options.IsElastic,
                }
                : null,
            Admissions = options.IsElastic,
            Elastic = options.IsElastic
                ? new ElasticSettings(
                    (long)options.MemberTimeout.TotalMicroseconds,
                    (long)(ElasticSettings.BootstrapElectionTimeouts * options.ElectionTimeoutMax.TotalMicroseconds),
                    (long)(options.LockLeaseDuration + options.ElectionTimeoutMax).TotalMilliseconds,
                    echoes)
                : null,
        };
    }

    /// <summary>
    /// FNV-1a over what nodes of one cluster must agree on: the wire version, the timing options, and
    /// the names of the state machines and RPC methods (sorted).
    /// </summary>
    public static ulong FingerprintOf(GaggleOptions options)
    {
        string text = string.Join('|',
            [
                $"wire {Channels.WireCodec.Version}",
                options.HeartbeatInterval.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture),
                options.ElectionTimeoutMin.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture),
                options.ElectionTimeoutMax.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture),
                options.LockLeaseDuration.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture),
                options.IsElastic ? "elastic " + options.MemberTimeout.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture) : "static",
                .. options.StateMachines.Keys.Order(StringComparer.Ordinal).Select(name => "sm:" + name),
                .. options.RpcHandlers.Keys.Order(StringComparer.Ordinal).Select(name => "rpc:" + name),
            ]);
        ulong hash = 14695981039346656037;
        foreach (char c in text)
        {
            hash = (hash ^ c) * 1099511628211;
        }

        return hash;
    }
}

/// <summary>An elastic node's generation timing (see <see cref="GenerationTracker"/>).</summary>
/// <param name="MemberTimeoutUs">How long no member of a recorded generation must be heard before a node founds the next one.</param>
/// <param name="BootstrapWaitUs">How long nothing must be heard before a node founds the first generation (none recorded).</param>
/// <param name="HoldLimitMs">How long after the last sign of life of a generation one of its holds may still be believed valid: a lock lease plus an election timeout (for messages in flight and clock rates).</param>
/// <param name="Echoes">The channel reports this node's own broadcasts coming back: silence counts only while they do (see <see cref="Channels.IEchoingChannel"/>).</param>
internal sealed record ElasticSettings(long MemberTimeoutUs, long BootstrapWaitUs, long HoldLimitMs, bool Echoes = false)
{
    /// <summary>The bootstrap wait, in maximum election timeouts: a live leader announces itself at least once per election timeout.</summary>
    public const int BootstrapElectionTimeouts = 4;

    /// <summary>The longest election timeout.</summary>
    public long ElectionTimeoutUs => BootstrapWaitUs / BootstrapElectionTimeouts;

    /// <summary>How long a leader's confirmation that the store holds its generation keeps its fence open (see <see cref="GenerationFence"/>): two election timeouts, so one slow or lost confirmation of the four sent meanwhile shuts nothing.</summary>
    public long FenceUs => 2 * ElectionTimeoutUs;

    /// <summary>How often a leader confirms its generation in the store: every half election timeout.</summary>
    public long ConfirmEveryUs => ElectionTimeoutUs / 2;

    /// <summary>How long a node that changed the store's value keeps its fence shut: a fence plus an election timeout (clock rates).</summary>
    public long FenceSettleUs => FenceUs + ElectionTimeoutUs;

    /// <summary>How long a generation grants nothing after the store's value changed to it (founded, forced, restored, replaced): the settle time, then a hold limit.</summary>
    public long FenceHoldOffUs => FenceSettleUs + (HoldLimitMs * 1000);
}
