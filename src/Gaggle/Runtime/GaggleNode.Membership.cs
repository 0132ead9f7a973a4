using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;

namespace Gaggle;

/// <summary>
/// Membership changes and leadership transfer: the public API. Every request goes to the leader
/// through Gaggle's own leader RPC (from any node, learners included), where the driver's
/// <see cref="MembershipChanges"/> proposes it and answers once it has committed.
/// </summary>
public sealed partial class GaggleNode
{
    /// <summary>How long a membership request waits for the leader, a change in progress, a learner to catch up and its commit, unless told otherwise.</summary>
    public static readonly TimeSpan DefaultMembershipTimeout = TimeSpan.FromSeconds(30);

    private volatile GaggleMembership _membership = new([], [], 0);

    /// <summary>
    /// The configuration in force on this node: the latest one in its log, committed or not (Raft
    /// thesis §4.1), else the seed (<see cref="GaggleOptions.Members"/>).
    /// </summary>
    public GaggleMembership Membership => _membership;

    /// <summary>
    /// Adds <paramref name="nodeId"/> as a learner: it receives the log but does not vote. Start that
    /// node with <see cref="GaggleOptions.Join"/>. Completes when the change has committed; adding a
    /// node that already is a learner completes at once.
    /// </summary>
    /// <param name="nodeId">The new member's node id.</param>
    /// <param name="expectedIndex">When set, the change applies only if the configuration is still the one logged at this index (<see cref="GaggleMembership.Index"/>).</param>
    /// <param name="timeout">How long to try; <see cref="DefaultMembershipTimeout"/> when null.</param>
    /// <param name="cancellationToken">Stops waiting (the change may still happen).</param>
    /// <returns>The configuration after the change.</returns>
    /// <exception cref="GaggleMembershipException">The change was refused, or did not complete in time.</exception>
    public Task<GaggleMembership> AddLearnerAsync(string nodeId, long? expectedIndex = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => ChangeMembershipAsync(MembershipRequestKind.AddLearner, nodeId, expectedIndex, timeout, cancellationToken);

    /// <summary>
    /// Makes learner <paramref name="nodeId"/> a voter once it has caught up (its log holds every entry
    /// the leader has committed, and it answered within an election timeout); the leader waits for
    /// that within <paramref name="timeout"/>. Completes when the change has committed.
    /// </summary>
    /// <param name="nodeId">The learner's node id.</param>
    /// <param name="expectedIndex">When set, the change applies only if the configuration is still the one logged at this index.</param>
    /// <param name="timeout">How long to try; <see cref="DefaultMembershipTimeout"/> when null.</param>
    /// <param name="cancellationToken">Stops waiting (the change may still happen).</param>
    /// <returns>The configuration after the change.</returns>
    /// <exception cref="GaggleMembershipException">The change was refused, or did not complete in time.</exception>
    public Task<GaggleMembership> PromoteAsync(string nodeId, long? expectedIndex = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => ChangeMembershipAsync(MembershipRequestKind.Promote, nodeId, expectedIndex, timeout, cancellationToken);

    /// <summary>
    /// Removes voter or learner <paramref name="nodeId"/> (the leader included: it hands leadership
    /// to an up-to-date voter once its removal has committed, Raft thesis §4.2.2). A removed node
    /// stops campaigning; stop it. Removing the last voter is refused.
    /// </summary>
    /// <param name="nodeId">The member's node id.</param>
    /// <param name="expectedIndex">When set, the change applies only if the configuration is still the one logged at this index.</param>
    /// <param name="timeout">How long to try; <see cref="DefaultMembershipTimeout"/> when null.</param>
    /// <param name="cancellationToken">Stops waiting (the change may still happen).</param>
    /// <returns>The configuration after the change.</returns>
    /// <exception cref="GaggleMembershipException">The change was refused, or did not complete in time.</exception>
    public Task<GaggleMembership> RemoveMemberAsync(string nodeId, long? expectedIndex = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => ChangeMembershipAsync(MembershipRequestKind.Remove, nodeId, expectedIndex, timeout, cancellationToken);

    /// <summary>
    /// Hands leadership to voter <paramref name="nodeId"/> (Raft thesis §3.10): the leader stops
    /// proposing, ends its leadership lease, brings the target's log up to date and tells it to
    /// campaign at once. Completes when the target leads.
    /// </summary>
    /// <param name="nodeId">The voter to lead.</param>
    /// <param name="timeout">How long to try; <see cref="DefaultMembershipTimeout"/> when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>A task that completes when <paramref name="nodeId"/> leads.</returns>
    /// <exception cref="GaggleMembershipException">The target is not a voter, or did not become the leader in time.</exception>
    public async Task TransferLeadershipAsync(string nodeId, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => await RequestMembershipAsync(MembershipRequestKind.Transfer, nodeId, null, timeout, cancellationToken).ConfigureAwait(false);

    private async Task<GaggleMembership> ChangeMembershipAsync(MembershipRequestKind kind, string nodeId, long? expectedIndex, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        if (_options.ClusterSize is not null)
        {
            throw new GaggleMembershipException(GaggleMembershipError.NotSupported,
                $"Node '{Id}' runs with ClusterSize {_options.ClusterSize} (members discovered from traffic); membership changes need Members.");
        }

        if (!_options.IsElastic && _storage is InMemoryRaftStorage { SurvivesRestart: false })
        {
            throw new GaggleMembershipException(GaggleMembershipError.NotSupported,
                $"Node '{Id}' keeps its log in memory; membership changes need durable storage (FileRaftStorage): a node restarted without its log "
                + "would fall back to Members and could elect a leader together with removed nodes.");
        }

        var result = await RequestMembershipAsync(kind, nodeId, expectedIndex, timeout, cancellationToken).ConfigureAwait(false);
        return result.Membership!;
    }

    /// <summary>
    /// Leaves the cluster for good, gracefully (a host stopping calls it): releases this node's locks,
    /// then asks the leader to replace it: a voter gets a caught-up learner promoted in its place
    /// first (or is removed at once when there is none), a leader hands leadership to another voter,
    /// then the node is removed. Several nodes leaving at once are handled one change at a time. Only
    /// with voter management (elastic mode, or <see cref="GaggleOptions.Voters"/>); otherwise, and for a
    /// node that is not a member, it only releases the locks.
    /// </summary>
    /// <param name="timeout">How long to wait for the removal; 30 seconds when null.</param>
    /// <param name="cancellationToken">Stops waiting (the leader may still complete the leave).</param>
    /// <returns>The configuration without this node.</returns>
    /// <exception cref="GaggleMembershipException">No leader took the request in time, or the removal did not complete in time.</exception>
    public async Task<GaggleMembership> LeaveAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ThrowIfStopped();
        await Locks.ReleaseAllAsync().ConfigureAwait(false);
        if (_options.EffectiveVoters is null || !_membership.Contains(Id) || _membership.Voters.Count + _membership.Learners.Count == 1)
        {
            // Not a member, or the last one: nobody can take its place (its state goes with it).
            return _membership;
        }

        Post(new ActionInput(driver => driver.Departing = true));
        var result = await RequestMembershipAsync(MembershipRequestKind.Leave, Id, null, timeout, cancellationToken).ConfigureAwait(false);
        return result.Membership!;
    }

    private async Task<MembershipResult> RequestMembershipAsync(MembershipRequestKind kind, string nodeId, long? expectedIndex, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        if (!GaggleOptionsValidator.IsValidId(nodeId))
        {
            throw new ArgumentException($"The node id '{nodeId}' is not valid; ids are 1 to 64 characters among letters, digits and . _ - :", nameof(nodeId));
        }

        if (expectedIndex is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(expectedIndex), expectedIndex, "The expected configuration index must be 0 or more (or null for any).");
        }

        var limit = timeout ?? DefaultMembershipTimeout;
        if (limit <= TimeSpan.Zero || limit == Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), limit, "The timeout of a membership request must be positive.");
        }

        ThrowIfStopped();
        long started = _time.GetTimestamp();
        while (true)
        {
            var left = limit - _time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                throw new GaggleMembershipException(GaggleMembershipError.NoLeader, $"No leader took the request for '{nodeId}' within {limit.TotalMilliseconds:0} ms (leader: {LeaderId ?? "none"}).");
            }

            // The leader gives up a little before the caller does, so its answer says why.
            var request = new MembershipRequest { Kind = kind, NodeId = nodeId, ExpectedIndex = expectedIndex ?? -1, TimeoutUs = Math.Max(1, (long)(left.TotalMicroseconds * 0.8)) };
            byte[] reply;
            try
            {
                reply = await DispatchCoreAsync(MembershipRequest.Method, request.Encode(), left, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new GaggleMembershipException(GaggleMembershipError.NoLeader, $"No leader answered the request for '{nodeId}' within {limit.TotalMilliseconds:0} ms (leader: {LeaderId ?? "none"}).");
            }

            var result = MembershipResult.Decode(reply);
            switch (result.Status)
            {
                case MembershipStatus.Done:
                    return result;
                case MembershipStatus.Refused:
                    throw new GaggleMembershipException(result.Error, result.Message);
                default:
                    // The node asked was no longer the leader: ask again once a leader is known.
                    await Task.Delay(_options.HeartbeatInterval, _time, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>Gaggle's own RPC handler on the leader: hands the request to the driver and answers once it is done.</summary>
    private async ValueTask<byte[]> ServeMembershipAsync(ReadOnlyMemory<byte> args, CancellationToken cancellationToken)
    {
        var request = MembershipRequest.Decode(args);
        var done = new TaskCompletionSource<MembershipResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        request.Caller = done;
        Post(new ActionInput(driver => driver.ChangeMembership(request), error => done.TrySetException(error)));
        var result = await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return result.Encode();
    }

    /// <summary>The voters this node's leader aims for (<see cref="GaggleOptions.Voters"/>), or null when the voters change only on request.</summary>
    public int? TargetVoters => _options.EffectiveVoters;

    /// <summary>Completes the membership requests the driver finished; logs and counts those done.</summary>
    private void CompleteMembership(NodeEvents events)
    {
        foreach (var (request, result) in events.MembershipResults)
        {
            // The autopilot's own requests have no caller.
            var caller = request.Caller as TaskCompletionSource<MembershipResult>;
            caller?.TrySetResult(result);
            string change = request.Kind switch
            {
                MembershipRequestKind.AddLearner => "add-learner",
                MembershipRequestKind.Promote => "promote",
                MembershipRequestKind.Demote => "demote",
                MembershipRequestKind.Remove => "remove",
                MembershipRequestKind.Leave => "leave",
                _ => "transfer",
            };
            string by = caller is null ? "autopilot" : "request";
            if (result.Status == MembershipStatus.Done)
            {
                GaggleMetrics.MembershipChanges.Add(1, _nodeTag, new KeyValuePair<string, object?>("change", change), new KeyValuePair<string, object?>("by", by));
                Log.MembershipChanged(_logger, Id, change, request.NodeId, by, result.Membership ?? _membership);
            }
            else if (caller is null)
            {
                Log.AutopilotRefused(_logger, Id, change, request.NodeId, result.Message);
            }
        }
    }

    private void PublishMembership(RaftCore core)
    {
        var current = _membership;
        if (current.Index != core.ConfigurationIndex || current.Voters.Count + current.Learners.Count != core.Configuration.Voters.Count + core.Configuration.Learners.Count)
        {
            _membership = MembershipResult.ToPublic(core.Configuration, core.ConfigurationIndex);
            _knownMembers = [.. core.Configuration.Members];
        }
    }
}
