using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>What the <see cref="Autopilot"/> works towards.</summary>
/// <param name="TargetVoters">The voters wanted: 1, 3, 5 or 7.</param>
/// <param name="MemberTimeoutUs">A member not heard from for this long is removed, in microseconds.</param>
/// <param name="StabilizationUs">How long a learner must have stayed caught up before it is promoted, in microseconds.</param>
/// <param name="Fingerprint">What a joining node must share with the cluster (protocol, timing, state machine and RPC names).</param>
internal sealed record AutopilotSettings(int TargetVoters, long MemberTimeoutUs, long StabilizationUs, ulong Fingerprint)
{
    /// <summary>
    /// A gap between two of the leader's ticks longer than this (the longest election timeout) is a
    /// pause of the leader itself (a garbage collection, SIGSTOP, a frozen VM), in microseconds; none
    /// is told apart when unset.
    /// </summary>
    public long PauseUs { get; init; } = long.MaxValue;

    /// <summary>
    /// Elastic mode: every process joins under an id of its own, so a node that left never comes back
    /// under its id, and its leaving mark stays until the leave's deadline: an announcement of it that
    /// arrives late does not add it back. With a member list (false) a restarted instance asks to join
    /// again under its id at once, and the mark ends with its removal.
    /// </summary>
    public bool IdsNeverReturn { get; init; }
}

/// <summary>
/// Voter management on the leader: joining nodes that announce themselves are added as learners;
/// members not heard from for the member timeout are removed; caught-up learners are promoted (and
/// surplus voters demoted) so the voters are the largest odd number not above the target and the
/// number of live members. One change at a time, each with its expected configuration index; the
/// Raft core enforces the rest (one uncommitted change, the new leader's no-op first).
/// </summary>
/// <remarks>
/// Never removes a voter unless the voters left alive are a majority of the current voters (so a
/// removal never costs the quorum), never removes anyone during a new leader's first member timeout
/// (it has not had the time to hear from everyone), and never removes itself: a leader that leaves
/// hands leadership to another voter first, and that leader removes it.
/// <para>
/// A member that leaves (<see cref="Leaving"/>) is neither counted as live nor promoted. A leaving
/// voter is replaced first (a caught-up learner promoted while the staying voters are fewer than
/// wanted), then removed; with no learner to promote it is removed at once. So a rolling deploy, one
/// instance at a time, never leaves a voter that is gone in the configuration.
/// </para>
/// </remarks>
internal sealed class Autopilot(AutopilotSettings settings)
{
    private readonly Dictionary<string, long> _lastHeardUs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _caughtUpSinceUs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _announcedUs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _leavingUntilUs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _silentSinceUs = new(StringComparer.Ordinal);
    private long _leaderSinceUs = -1;
    private long _leaderTerm;
    private long _lastNextUs = long.MaxValue / 2;

    public AutopilotSettings Settings => settings;

    /// <summary>A message arrived from <paramref name="from"/>.</summary>
    public void Heard(string from, long nowUs)
    {
        _lastHeardUs[from] = nowUs;
        _silentSinceUs[from] = nowUs;
    }

    /// <summary>A node asked to join; false when its fingerprint differs (it is not added).</summary>
    public bool Announced(string from, ulong fingerprint, long nowUs)
    {
        if (fingerprint != settings.Fingerprint)
        {
            return false;
        }

        // In elastic mode a node that leaves never asks to join again (it stops announcing once it
        // departs), but members announce themselves while a change is uncommitted in their log, and one
        // sent before it departed can arrive late: it must not add the node back once it is removed. With
        // a member list the announcement may be a restarted instance's, under the same id: it counts
        // (once the node is removed, AddAnnounced adds it again).
        if (!settings.IdsNeverReturn || !IsLeaving(from))
        {
            _announcedUs[from] = nowUs;
        }

        return true;
    }

    /// <summary>
    /// Member <paramref name="id"/> is leaving for good; it asks again before <paramref name="untilUs"/> if
    /// it is still a member then. What it announced before is forgotten (see <see cref="AutopilotSettings.IdsNeverReturn"/> for what it announces after).
    /// </summary>
    public void Leaving(string id, long untilUs)
    {
        _leavingUntilUs[id] = Math.Max(untilUs, _leavingUntilUs.GetValueOrDefault(id));
        _announcedUs.Remove(id);
    }

    /// <summary>The change to make now, or null (not the leader, a change under way, nothing to do).</summary>
    public MembershipRequest? Next(RaftCore core, long nowUs, bool changePending)
    {
        long gapUs = nowUs - _lastNextUs;
        _lastNextUs = nowUs;
        if (gapUs > settings.PauseUs)
        {
            // A pause of this node: what it did not listen to, it did not hear. Its length does not
            // count as anyone's silence (a leader thawed after a pause past the member timeout, still
            // leading when the voters left cannot elect anyone, removed live members on its first
            // tick), but the silence before it does: a leader pausing again and again, every few
            // seconds, must still remove the dead.
            foreach (var id in _silentSinceUs.Keys.ToList())
            {
                _silentSinceUs[id] = Math.Min(_silentSinceUs[id] + gapUs, nowUs);
            }

            if (_leaderSinceUs >= 0)
            {
                _leaderSinceUs = Math.Min(_leaderSinceUs + gapUs, nowUs);
            }

            _caughtUpSinceUs.Clear();
        }

        if (core.Role != RaftRole.Leader)
        {
            _leaderSinceUs = -1;
            return null;
        }

        if (_leaderSinceUs < 0 || _leaderTerm != core.Term)
        {
            _leaderSinceUs = nowUs;
            _leaderTerm = core.Term;
            _caughtUpSinceUs.Clear();
        }

        var config = core.Configuration;
        TrackCaughtUp(core, config, nowUs);
        if (changePending || core.ConfigurationIndex > core.CommitIndex)
        {
            return null;
        }

        return RemoveDead(core, config, nowUs) ?? ReplaceLeaving(core, config, nowUs) ?? AddAnnounced(core, config, nowUs) ?? Balance(core, config, nowUs);
    }

    /// <summary>A leaving member: a voter replaced by a caught-up learner first; a leaving leader hands leadership to a staying voter; then it is removed.</summary>
    private MembershipRequest? ReplaceLeaving(RaftCore core, ClusterConfig config, long nowUs)
    {
        // In elastic mode a node removed stays marked until its leave's deadline, so that an announcement
        // of its arriving late does not add it back (see Announced); with a member list its id may be a
        // restarted instance's, which must be added again.
        foreach (var id in _leavingUntilUs.Where(l => l.Value <= nowUs || (!settings.IdsNeverReturn && !config.Contains(l.Key))).Select(l => l.Key).ToList())
        {
            _leavingUntilUs.Remove(id);
        }

        if (!config.Members.Any(IsLeaving))
        {
            return null;
        }

        int stayingVoters = config.Voters.Count(v => !IsLeaving(v));
        int wanted = Wanted(core, config, nowUs);
        bool learnerComing = config.Learners.Any(l => !IsLeaving(l) && IsAlive(core, l, nowUs));
        if (stayingVoters < wanted && CaughtUpLearners(config, nowUs).FirstOrDefault(core.AnsweredLastHeartbeats) is { } replacement)
        {
            return Request(MembershipRequestKind.Promote, replacement, core);
        }

        if (IsLeaving(core.Id))
        {
            // This leader leaves: leadership goes to the most caught-up staying voter, which removes it.
            var successor = config.Voters.Where(v => v != core.Id && !IsLeaving(v) && IsAlive(core, v, nowUs))
                .OrderByDescending(v => core.ProgressOf(v)?.Match ?? 0)
                .ThenBy(v => v, StringComparer.Ordinal)
                .FirstOrDefault();
            if (successor is not null && (stayingVoters >= wanted || !learnerComing))
            {
                return Request(MembershipRequestKind.Transfer, successor, core);
            }
        }

        foreach (var id in config.Members.Where(m => m != core.Id && IsLeaving(m)).Order(StringComparer.Ordinal))
        {
            if (config.IsLearner(id))
            {
                return Request(MembershipRequestKind.Remove, id, core);
            }

            // A leaving voter waits for its replacement while a learner is on its way to being caught up.
            int aliveVoters = config.Voters.Count(v => IsAlive(core, v, nowUs));
            if ((stayingVoters >= wanted || !learnerComing) && aliveVoters - 1 >= Quorum.Majority(config.Voters.Count - 1) && config.Voters.Count > 1)
            {
                return Request(MembershipRequestKind.Remove, id, core);
            }
        }

        return null;
    }

    private MembershipRequest? RemoveDead(RaftCore core, ClusterConfig config, long nowUs)
    {
        if (nowUs - _leaderSinceUs < settings.MemberTimeoutUs)
        {
            return null;
        }

        int aliveVoters = config.Voters.Count(v => IsAlive(core, v, nowUs));
        foreach (var voter in config.Voters)
        {
            // A dead voter goes first (then a learner replaces it), if the live voters left still make
            // a majority of the current voters: the removal itself must be able to commit.
            if (!IsAlive(core, voter, nowUs) && aliveVoters >= Quorum.Majority(config.Voters.Count) && config.Voters.Count > 1)
            {
                return Request(MembershipRequestKind.Remove, voter, core);
            }
        }

        foreach (var learner in config.Learners)
        {
            if (!IsAlive(core, learner, nowUs))
            {
                return Request(MembershipRequestKind.Remove, learner, core);
            }
        }

        return null;
    }

    private MembershipRequest? AddAnnounced(RaftCore core, ClusterConfig config, long nowUs)
    {
        foreach (var (id, at) in _announcedUs)
        {
            if (config.Contains(id) || nowUs - at >= settings.MemberTimeoutUs)
            {
                continue;
            }

            return Request(MembershipRequestKind.AddLearner, id, core);
        }

        _announcedUs.Clear();
        return null;
    }

    private MembershipRequest? Balance(RaftCore core, ClusterConfig config, long nowUs)
    {
        int wanted = Wanted(core, config, nowUs);
        if (config.Voters.Count < wanted)
        {
            // From an odd number of voters, one promotion makes an even number that tolerates no more
            // failures than before while more voters may fail: of two voters, the leader's death stops
            // the cluster, and no new generation forms while the other lives. So that step is taken only
            // once the learner for the step after it is ready too: the even count lasts one commit.
            // The one promoted must also have answered the last heartbeats: a learner that died a moment
            // ago still looks caught up, and promoting it makes a voter whose absence counts.
            var ready = CaughtUpLearners(config, nowUs).ToList();
            var fresh = ready.FirstOrDefault(core.AnsweredLastHeartbeats);
            return fresh is not null && ready.Count >= (config.Voters.Count % 2 == 1 ? 2 : 1) ? Request(MembershipRequestKind.Promote, fresh, core) : null;
        }

        if (config.Voters.Count > wanted && config.Voters.Count > 1)
        {
            // Demote the voter least useful to the quorum: a silent one first, then the least caught up,
            // never this leader. Only while the voters left that were really heard from lately (not
            // merely presumed alive in a new leader's first member timeout) make a majority of the
            // voters left: demoting a live voter of five of which two are dead would leave a
            // configuration that can never commit, not even the removal of the dead.
            var surplus = config.Voters.Where(v => v != core.Id)
                .OrderBy(v => HeardLately(core, v, nowUs))
                .ThenBy(v => core.ProgressOf(v)?.Match ?? 0)
                .ThenBy(v => v, StringComparer.Ordinal)
                .FirstOrDefault();
            int heardLeft = config.Voters.Count(v => v != surplus && HeardLately(core, v, nowUs));
            return surplus is null || heardLeft < Quorum.Majority(config.Voters.Count - 1) ? null : Request(MembershipRequestKind.Demote, surplus, core);
        }

        return null;
    }

    /// <summary>The voters wanted: the largest odd number not above the target and the live members that stay.</summary>
    private int Wanted(RaftCore core, ClusterConfig config, long nowUs)
        => LargestOddAtMost(Math.Min(settings.TargetVoters, config.Members.Count(m => IsAlive(core, m, nowUs) && !IsLeaving(m))));

    /// <summary>The learners that stay and have kept up for the stabilization time, in id order.</summary>
    private IEnumerable<string> CaughtUpLearners(ClusterConfig config, long nowUs)
        => config.Learners
            .Where(l => !IsLeaving(l) && _caughtUpSinceUs.TryGetValue(l, out long since) && nowUs - since >= settings.StabilizationUs)
            .OrderBy(l => l, StringComparer.Ordinal);

    private bool IsLeaving(string id) => _leavingUntilUs.ContainsKey(id);

    private void TrackCaughtUp(RaftCore core, ClusterConfig config, long nowUs)
    {
        foreach (var learner in config.Learners)
        {
            if (core.IsCaughtUp(learner) && IsAlive(core, learner, nowUs))
            {
                _caughtUpSinceUs.TryAdd(learner, nowUs);
            }
            else
            {
                _caughtUpSinceUs.Remove(learner);
            }
        }
    }

    /// <summary>Heard from within the member timeout, this node's own pauses not counted (a member never heard from counts from when this node began to lead).</summary>
    private bool IsAlive(RaftCore core, string id, long nowUs)
        => id == core.Id || nowUs - Math.Max(_silentSinceUs.GetValueOrDefault(id, long.MinValue / 2), _leaderSinceUs) < settings.MemberTimeoutUs;

    /// <summary>Really heard from within the stabilization time (the window in which a learner must also have kept up).</summary>
    private bool HeardLately(RaftCore core, string id, long nowUs)
        => id == core.Id || (_lastHeardUs.TryGetValue(id, out long heard) && nowUs - heard < settings.StabilizationUs);

    private MembershipRequest Request(MembershipRequestKind kind, string id, RaftCore core)
        => new() { Kind = kind, NodeId = id, ExpectedIndex = core.ConfigurationIndex, TimeoutUs = settings.MemberTimeoutUs };

    private static int LargestOddAtMost(int n) => n < 1 ? 1 : (n % 2 == 1 ? n : n - 1);
}
