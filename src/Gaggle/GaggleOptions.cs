namespace Gaggle;

/// <summary>Handles a leader RPC: receives the caller's arguments, returns the result bytes.</summary>
/// <param name="args">The arguments the caller passed to <see cref="GaggleNode.DispatchOnLeaderAsync(string, ReadOnlyMemory{byte}, TimeSpan?, CancellationToken)"/>.</param>
/// <param name="cancellationToken">Cancelled when the node stops.</param>
public delegate ValueTask<byte[]> RpcHandler(ReadOnlyMemory<byte> args, CancellationToken cancellationToken);

/// <summary>Settings of a <see cref="GaggleNode"/>. Validated once, when the node is created.</summary>
public sealed class GaggleOptions
{
    /// <summary>
    /// With <see cref="Members"/> or <see cref="ClusterSize"/>: this node's id, 1 to 64 characters among
    /// letters, digits and <c>. _ - :</c>; unique in the cluster and stable across restarts; required.
    /// In elastic mode (neither set): a display name of at most 55 such characters, the machine's name
    /// when empty; the node's member id (<see cref="GaggleNode.Id"/>) is this name plus a random suffix
    /// (<c>web-1.k3v9x2qa</c>), new for every process, so a restarted instance never inherits the votes
    /// or acknowledgements of an earlier one.
    /// </summary>
    public string NodeId { get; set; } = "";

    /// <summary>
    /// Static mode: the ids of every voting member, this node included; quorums are computed over
    /// exactly these members (they change only through the membership API, or with
    /// <see cref="Voters"/>). Needs durable storage to be safe across restarts. Leave it empty (and
    /// <see cref="ClusterSize"/> unset) for elastic mode, the default: instances find each other on
    /// the channel, and the leader manages the voters (see <see cref="Voters"/>).
    /// </summary>
    public IList<string> Members { get; set; } = [];

    /// <summary>
    /// The number of voting members when <see cref="Members"/> is empty (the original gaggle's
    /// mode): member ids are discovered from traffic until this many are known. Limits: run exactly
    /// ClusterSize distinct ids, and never change them — a node that has not yet heard from every
    /// member gives a free seat to the first unknown id that talks to it, so an extra or renamed node
    /// can leave nodes with different member sets whose majorities need not overlap; once every seat
    /// is taken newcomers are refused. The cluster cannot shrink or grow; a quorum is ClusterSize/2+1
    /// of the configured size, not of the nodes seen. Prefer <see cref="Members"/>.
    /// </summary>
    /// <value>The default is null (use <see cref="Members"/>).</value>
    public int? ClusterSize { get; set; }

    /// <summary>The lower bound of the randomized election timeout. With <see cref="CheckQuorum"/>, a leader that has not heard from a majority for this long steps down.</summary>
    /// <value>The default is 300 ms.</value>
    public TimeSpan ElectionTimeoutMin { get; set; } = TimeSpan.FromMilliseconds(300);

    /// <summary>The upper bound of the randomized election timeout.</summary>
    /// <value>The default is 500 ms.</value>
    public TimeSpan ElectionTimeoutMax { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How often a leader tells followers it is alive. Must be below <see cref="ElectionTimeoutMin"/>.</summary>
    /// <value>The default is 50 ms.</value>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// When true, the leader tells followers about a new commit index as soon as it has one, so an
    /// append made on a follower completes in about two round trips; when false, followers learn it
    /// from the next heartbeat or replication message.
    /// </summary>
    /// <value>The default is true.</value>
    public bool AccelerateHeartbeats { get; set; } = true;

    /// <summary>Run a pre-vote round before an election so a node that was cut off cannot disrupt a healthy leader.</summary>
    /// <value>The default is true.</value>
    public bool PreVote { get; set; } = true;

    /// <summary>
    /// A leader that has not heard from a majority for <see cref="ElectionTimeoutMin"/> steps down, and
    /// members that hear from a leader refuse other candidates for that long. The leadership lease
    /// (<see cref="Leadership.GaggleLeadership.IsLeader"/>, singleton jobs) relies on the latter: without check-quorum only the
    /// sole voter of a one-voter cluster is ever trusted as leader.
    /// </summary>
    /// <value>The default is true.</value>
    public bool CheckQuorum { get; set; } = true;

    /// <summary>Replication messages in flight per follower before the leader waits for acknowledgements (1 to 1024).</summary>
    /// <value>The default is 64.</value>
    public int MaxInflightMessages { get; set; } = 64;

    /// <summary>
    /// Entry bytes in flight per follower before the leader waits for acknowledgements (64 KiB to
    /// 1 GiB; one message is always allowed). Over Redis keep it well below the server's
    /// <c>client-output-buffer-limit pubsub</c> (32 MB hard by default), or Redis drops the subscriber.
    /// </summary>
    /// <value>The default is 4 MiB.</value>
    public int MaxInflightBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Log entries per replication message (1 to 65536).</summary>
    /// <value>The default is 512.</value>
    public int MaxEntriesPerMessage { get; set; } = 512;

    /// <summary>Approximate payload bytes per replication message; a single larger entry is still sent alone.</summary>
    /// <value>The default is 512 KiB.</value>
    public int MaxMessageBytes { get; set; } = 512 * 1024;

    /// <summary>Leader RPC handlers by method name, callable with <see cref="GaggleNode.DispatchOnLeaderAsync(string, ReadOnlyMemory{byte}, TimeSpan?, CancellationToken)"/>. Register the same set on every node.</summary>
    public IDictionary<string, RpcHandler> RpcHandlers { get; } = new Dictionary<string, RpcHandler>(StringComparer.Ordinal);

    /// <summary>State machines fed by the committed log and included in snapshots, by a name stable across versions.</summary>
    public IDictionary<string, IGaggleStateMachine> StateMachines { get; } = new Dictionary<string, IGaggleStateMachine>(StringComparer.Ordinal);

    /// <summary>
    /// Applied entries beyond the last snapshot after which the node takes a new snapshot and
    /// compacts its log (Raft §7); this bounds the log kept in memory and storage. 0 disables snapshots.
    /// </summary>
    /// <value>The default is 10000.</value>
    public int SnapshotThresholdEntries { get; set; } = 10_000;

    /// <summary>Entries kept in memory behind a snapshot, so a follower slightly behind catches up without one.</summary>
    /// <value>The default is 1000.</value>
    public int SnapshotRetainEntries { get; set; } = 1_000;

    /// <summary>Registers a leader RPC handler whose arguments and result travel as JSON.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <typeparam name="TResult">The result's type.</typeparam>
    /// <param name="method">The method name callers use.</param>
    /// <param name="handler">Runs on the leader.</param>
    /// <param name="jsonOptions">Serializer options; the defaults when null.</param>
    /// <returns>These options, for chaining.</returns>
    public GaggleOptions AddRpcHandler<TArgs, TResult>(string method, Func<TArgs?, CancellationToken, ValueTask<TResult>> handler, System.Text.Json.JsonSerializerOptions? jsonOptions = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(method);
        ArgumentNullException.ThrowIfNull(handler);
        RpcHandlers[method] = async (args, cancellationToken) =>
        {
            var value = args.IsEmpty ? default : System.Text.Json.JsonSerializer.Deserialize<TArgs>(args.Span, jsonOptions);
            var result = await handler(value, cancellationToken).ConfigureAwait(false);
            return System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(result, jsonOptions);
        };
        return this;
    }

    /// <summary>
    /// How long a lock or semaphore hold lasts without renewal (100 ms to 1 hour). Holds are renewed
    /// automatically every third of it; when their node dies they end after it.
    /// </summary>
    /// <value>The default is 10 s.</value>
    public TimeSpan LockLeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Start this node in rejoin mode: it will not vote or campaign until it has proven it cannot
    /// break Raft's safety (it heard the current term from enough members and caught up from a leader
    /// elected without it). Set it when restarting a node whose storage was lost; a node also enters
    /// this mode by itself when a leader shows it acknowledged entries it no longer has.
    /// </summary>
    /// <value>The default is false.</value>
    public bool Rejoin { get; set; }

    /// <summary>
    /// Start this node as a newcomer to a running cluster whose initial voters are <see cref="Members"/>
    /// (which then need not include <see cref="NodeId"/>): it neither votes for itself nor campaigns
    /// until the cluster adds it (<see cref="GaggleNode.AddLearnerAsync"/>, then
    /// <see cref="GaggleNode.PromoteAsync"/>). Once a configuration has been logged it wins over
    /// <see cref="Members"/>, which only seeds a new cluster.
    /// </summary>
    /// <value>The default is false.</value>
    public bool Join { get; set; }

    /// <summary>
    /// Voter management by the leader (the autopilot): nodes that announce themselves (elastic mode,
    /// or <see cref="Join"/>) are added as learners; members not heard from for
    /// <see cref="MemberTimeout"/> are removed; caught-up learners are promoted (and surplus voters
    /// demoted) so that the voters are the largest odd number not above this target and the number of
    /// live members. 1, 3, 5 or 7. In static mode it needs <see cref="Members"/> and durable storage.
    /// </summary>
    /// <value>The default is null: 3 in elastic mode; in static mode the voters change only through the membership API.</value>
    public int? Voters { get; set; }

    /// <summary>
    /// With voter management: how long a member may go unheard before the leader removes it. Well
    /// above an election timeout and a long GC pause: a member removed while paused must rejoin. In
    /// elastic mode also how long a starting instance must hear no member of the recorded cluster
    /// generation before it forms a new one (the old one's state is then gone).
    /// </summary>
    /// <value>The default is 15 seconds.</value>
    public TimeSpan MemberTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Elastic mode: neither <see cref="Members"/> nor <see cref="ClusterSize"/> is set.</summary>
    internal bool IsElastic => (Members is null || Members.Count == 0) && ClusterSize is null;

    /// <summary>The voter target in force: <see cref="Voters"/>, or 3 in elastic mode.</summary>
    internal int? EffectiveVoters => Voters ?? (IsElastic ? DefaultElasticVoters : null);

    /// <summary>The voter target of an elastic cluster when <see cref="Voters"/> is not set.</summary>
    internal const int DefaultElasticVoters = 3;

    /// <summary>A copy of these options for the node whose member id is <paramref name="memberId"/> (elastic mode: the display name plus a random suffix).</summary>
    internal GaggleOptions WithNodeId(string memberId)
    {
        var copy = (GaggleOptions)MemberwiseClone();
        copy.NodeId = memberId;
        return copy;
    }

    /// <summary>The seed of the election timeout jitter; null picks a random one. Set it only to replay a run.</summary>
    /// <value>The default is null.</value>
    public int? RandomSeed { get; set; }
}
