using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>
/// The leader's side of membership requests: each is proposed as soon as the Raft core accepts it
/// (retried while the previous change has not committed, the new leader's no-op has not, or the
/// learner to promote has not caught up), then completed once its entry commits; a transfer once the
/// chosen node leads. Each ends by its deadline at the latest.
/// </summary>
/// <remarks>
/// Idempotent: a request whose outcome already holds (adding a learner that is one, promoting a voter,
/// removing a non-member) completes with the configuration in force once that has committed, whatever
/// the expected index, so a caller that retries after a lost answer gets the same result. Otherwise
/// the expected index is a compare-and-set: a change is never applied twice.
/// </remarks>
internal sealed class MembershipChanges(NodeEvents events)
{
    private readonly List<Pending> _pending = [];

    public int Count => _pending.Count;

    /// <summary>Requests that change the configuration or leadership themselves (not leaves, which the autopilot carries out).</summary>
    public bool ChangePending => _pending.Exists(p => p.Request.Kind != MembershipRequestKind.Leave);

    public void Request(RaftCore core, MembershipRequest request, long nowUs)
    {
        var pending = new Pending(request, nowUs + request.TimeoutUs);
        if (!TryFinish(core, pending, nowUs))
        {
            _pending.Add(pending);
        }
    }

    /// <summary>Moves every request on (after a tick, or after committed entries were applied).</summary>
    public void Update(RaftCore core, long nowUs)
    {
        if (_pending.Count > 0)
        {
            _pending.RemoveAll(pending => TryFinish(core, pending, nowUs));
        }
    }

    /// <summary>Acts on one request; true when it ended (its result is in the events).</summary>
    private bool TryFinish(RaftCore core, Pending pending, long nowUs)
    {
        var result = pending.Request.Kind switch
        {
            MembershipRequestKind.Transfer => Transfer(core, pending, nowUs),
            MembershipRequestKind.Leave => Leave(core, pending, nowUs),
            _ => Change(core, pending, nowUs),
        };
        if (result is null)
        {
            return false;
        }

        events.MembershipResults.Add((pending.Request, result));
        return true;
    }

    private static MembershipResult? Change(RaftCore core, Pending pending, long nowUs)
    {
        var request = pending.Request;
        if (pending.Index == 0)
        {
            if (AlreadyHolds(core.Configuration, request))
            {
                // Done once the configuration that holds it has committed.
                return core.ConfigurationIndex <= core.CommitIndex ? Done(core)
                    : TimedOut(pending, nowUs, $"the configuration at index {core.ConfigurationIndex} has not committed");
            }

            switch (core.ProposeConfigChange(request.Change, request.ExpectedIndex, out long index, out string? error))
            {
                case ConfigChangeOutcome.Proposed:
                    pending.Index = index;
                    pending.Term = core.Term;
                    break;
                case ConfigChangeOutcome.NotLeader:
                    return MembershipResult.NotLeader($"node '{core.Id}' is not the leader" + (error is null ? "" : $" ({error})"));
                case ConfigChangeOutcome.InProgress:
                case ConfigChangeOutcome.NotCaughtUp:
                    return TimedOut(pending, nowUs, error!);
                case ConfigChangeOutcome.Stale:
                    return MembershipResult.Refused(GaggleMembershipError.ConfigurationChanged, $"{Describe(request)} was refused: {error}.");
                default:
                    return MembershipResult.Refused(InvalidKind(core.Configuration, request), $"{Describe(request)} was refused: {error}.");
            }
        }

        if (core.CommitIndex >= pending.Index)
        {
            // Committed at that index: ours if the entry there is still the one proposed, else a new
            // leader replaced it (the caller asks again; the expected index keeps that safe).
            return core.TermAt(pending.Index) == pending.Term ? Done(core)
                : MembershipResult.NotLeader($"{Describe(request)} at index {pending.Index} was replaced by a new leader's entries");
        }

        return TimedOut(pending, nowUs, $"it was proposed at index {pending.Index} but has not committed (commit index {core.CommitIndex})");
    }

    private static MembershipResult? Transfer(RaftCore core, Pending pending, long nowUs)
    {
        string target = pending.Request.NodeId;
        if (pending.Term == 0)
        {
            if (core.Role != RaftRole.Leader)
            {
                return MembershipResult.NotLeader($"node '{core.Id}' is not the leader");
            }

            if (target == core.Id)
            {
                return Done(core);
            }

            if (!core.Configuration.IsVoter(target))
            {
                return MembershipResult.Refused(GaggleMembershipError.UnknownNode,
                    $"Leadership cannot go to '{target}': it is not a voter ({core.Configuration}).");
            }

            core.TransferLeadership(target);
            pending.Term = core.Term;
        }

        if (core.Term > pending.Term && core.LeaderId is { } leader)
        {
            return leader == target ? Done(core)
                : MembershipResult.Refused(GaggleMembershipError.TransferFailed, $"Leadership went to '{leader}' instead of '{target}' (term {core.Term}).");
        }

        return nowUs >= pending.DeadlineUs
            ? MembershipResult.Refused(GaggleMembershipError.TransferFailed, $"'{target}' did not become the leader in time (term {core.Term}, leader {core.LeaderId ?? "none"}).")
            : null;
    }

    /// <summary>A leave is carried out by the autopilot (replace, hand leadership away, remove); it is done once the node is out of the committed configuration.</summary>
    private static MembershipResult? Leave(RaftCore core, Pending pending, long nowUs)
    {
        string id = pending.Request.NodeId;
        if (!core.Configuration.Contains(id) && core.ConfigurationIndex <= core.CommitIndex)
        {
            return Done(core);
        }

        if (core.Role != RaftRole.Leader)
        {
            // Leadership moved (a leaving leader hands it away first): the caller asks the new leader.
            return MembershipResult.NotLeader($"node '{core.Id}' is not the leader");
        }

        return TimedOut(pending, nowUs, $"'{id}' is still in the configuration ({core.Configuration})");
    }

    private static MembershipResult? TimedOut(Pending pending, long nowUs, string why)
        => nowUs >= pending.DeadlineUs
            ? MembershipResult.Refused(GaggleMembershipError.ChangeInProgress, $"{Describe(pending.Request)} did not complete in time: {why}.")
            : null;

    private static MembershipResult Done(RaftCore core) => MembershipResult.Done(MembershipResult.ToPublic(core.Configuration, core.ConfigurationIndex));

    private static bool AlreadyHolds(ClusterConfig config, MembershipRequest request) => request.Kind switch
    {
        MembershipRequestKind.AddLearner => config.IsLearner(request.NodeId),
        MembershipRequestKind.Promote => config.IsVoter(request.NodeId),
        MembershipRequestKind.Remove => !config.Contains(request.NodeId),
        MembershipRequestKind.Demote => config.IsLearner(request.NodeId),
        _ => false,
    };

    private static GaggleMembershipError InvalidKind(ClusterConfig config, MembershipRequest request)
        => request.Kind is MembershipRequestKind.Promote or MembershipRequestKind.Demote && !config.Contains(request.NodeId) ? GaggleMembershipError.UnknownNode : GaggleMembershipError.Invalid;

    private static string Describe(MembershipRequest request) => request.Kind switch
    {
        MembershipRequestKind.AddLearner => $"Adding '{request.NodeId}' as a learner",
        MembershipRequestKind.Promote => $"Promoting '{request.NodeId}' to voter",
        MembershipRequestKind.Remove => $"Removing '{request.NodeId}'",
        MembershipRequestKind.Demote => $"Demoting '{request.NodeId}' to learner",
        MembershipRequestKind.Leave => $"The leave of '{request.NodeId}'",
        _ => $"Handing leadership to '{request.NodeId}'",
    };

    private sealed class Pending(MembershipRequest request, long deadlineUs)
    {
        public MembershipRequest Request { get; } = request;

        public long DeadlineUs { get; } = deadlineUs;

        /// <summary>The index of the proposed entry (0 until proposed).</summary>
        public long Index { get; set; }

        /// <summary>The term it was proposed in (a transfer: the term it started in; 0 until then).</summary>
        public long Term { get; set; }
    }
}
