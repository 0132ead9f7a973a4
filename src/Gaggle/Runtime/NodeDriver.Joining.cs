using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;

namespace Gaggle.Runtime;

/// <summary>
/// How a node gets into a cluster and stays in the right one: join announcements (a newcomer asks the
/// leader to add it, the leader answers or refuses), a removed member told so, and in elastic mode the
/// cluster generation (see <see cref="GenerationTracker"/>): founding a new cluster, adopting a live
/// one, leaders announcing their generation, and noticing that a newer generation replaced this one.
/// </summary>
internal sealed partial class NodeDriver
{
    private readonly GenerationTracker? _generations;
    private readonly GenerationFence? _fence;
    private bool _fenceWasOpen;
    private long _fenceHoldOffMs;
    private readonly Dictionary<string, long> _toldNotAMemberAtTick = new(StringComparer.Ordinal);
    private long _askToJoinUntilTick = -1;
    private bool _ledLastTick;
    private bool _wasMember;
    private long _voterHeardUs;
    private long _lastJoiningTickUs = long.MaxValue / 2;
    private long _removalIndexTold;
    private long? _lifeGeneration;
    private long _lifeFloorIndex;

    /// <summary>
    /// For a node starting over under this id (removed, or orphaned): the highest configuration index
    /// of this life, its own or the removal it was told of. See <see cref="StartOverAfter"/>.
    /// </summary>
    public long LifeConfigurationIndex => Math.Max(_core.ConfigurationIndex, _removalIndexTold);

    /// <summary>
    /// This driver replaces one of the same member id whose life knew configurations up to
    /// <paramref name="configurationIndex"/> (its <see cref="LifeConfigurationIndex"/>): what it replays
    /// of them never makes it a voter again (see RaftCore.NoVoterThrough).
    /// </summary>
    public void StartOverAfter(long configurationIndex)
    {
        _core.NoVoterThrough(configurationIndex);
        _lifeFloorIndex = configurationIndex;
        _lifeGeneration = Generation;
    }

    /// <summary>The floor of <see cref="StartOverAfter"/> holds in the generation it was set in only: another generation's log is another numbering.</summary>
    private void ClearLifeIfGenerationChanged()
    {
        if (_lifeGeneration is { } generation && generation != Generation)
        {
            _lifeGeneration = null;
            _lifeFloorIndex = 0;
            _core.NoVoterThrough(-1);
        }
    }

    /// <summary>This node's cluster generation: in elastic mode the one it belongs to or waits to join; 0 otherwise.</summary>
    public long Generation => _generations?.Generation ?? 0;

    /// <summary>In elastic mode, the generation timing (null otherwise).</summary>
    public ElasticSettings? Elastic => _settings.Elastic;

    /// <summary>In elastic mode, the generation tracker (null otherwise).</summary>
    public GenerationTracker? Generations => _generations;

    /// <summary>This node is leaving for good (see <see cref="GaggleNode.LeaveAsync"/>): once removed it neither asks to join again nor starts over.</summary>
    public bool Departing { get; set; }

    /// <summary>Whether this node holds a cluster's state: a log or a snapshot.</summary>
    private bool Belongs => _core.LastIndex > 0 || _core.Snapshot is not null;

    /// <summary>Elastic mode: starts from the generation the store recorded (or, after a reset, the newer one that replaced this node's).</summary>
    public void StartGeneration(long generation, bool live) => _generations?.Start(generation, live);

    /// <summary>
    /// The claim of generation id <paramref name="claimed"/> after <paramref name="expected"/> was
    /// <paramref name="won"/>, or lost to <paramref name="recorded"/> (the value the store holds now):
    /// when this node won and still belongs to no cluster, it founds one.
    /// </summary>
    public void GenerationClaimed(long expected, long claimed, bool won, long recorded)
    {
        if (_generations?.Claimed(expected, claimed, won, recorded, Belongs, _nowUs) == true)
        {
            ClearLifeIfGenerationChanged();
            // The silence before founding proves nothing about a generation alive but unheard: its
            // fence may stay open until a fence after the claim (see GenerationFence), and its holds a
            // lease longer. This one opens its fence a settle time after the claim and grants nothing
            // for a hold limit after that.
            _fence!.Changed(_nowUs);
            _core.Found(GenerationStart(_generations.Generation, FenceHoldOffMs));
        }
        else if (won && _generations is not null)
        {
            // A member of the live generation spoke while the claim was on its way, or this node joined
            // it meanwhile: the claim is given back, so that generation's fence opens again.
            Events.ReleaseClaim = (claimed, expected);
        }
    }

    /// <summary>How long a generation this node opened (founded, forced) grants nothing: a hold limit after its fence opens.</summary>
    private long FenceHoldOffMs => _settings.Elastic!.FenceHoldOffUs / 1000;

    /// <summary>
    /// An operator's recovery (see <see cref="GaggleNode.ForceNewGenerationAsync"/>): after this node
    /// won the claim of <paramref name="generation"/>, it becomes the sole voter of that generation with
    /// its own log, all of it committed, what it cannot know committed moved behind the generation's
    /// start (see <see cref="RaftCore.ForceNewCluster"/>). Nothing is granted for a full hold limit: the
    /// lost majority may have granted or renewed holds this node never heard of.
    /// </summary>
    public void ForceNewGeneration(long generation)
    {
        if (_generations is null)
        {
            throw new InvalidOperationException($"Node '{Id}' has a fixed member list; only an elastic cluster has generations.");
        }

        _generations.Forced(generation, _nowUs);
        _fence!.Changed(_nowUs);
        ClearLifeIfGenerationChanged();
        _wasMember = true;
        _core.ForceNewCluster(tail => ForcedStart(generation, tail));
        // Its appends whose entries it holds unapplied (moved, or committed and not yet applied) are in
        // its own log under its new admission: they complete when applied. The others were sent under
        // its old admission, their outcome unknown (see AppendPipeline.GiveUpOtherAdmissions).
        _appends.AdoptLogged(OwnUnappliedSequences(), _core, Id, _tickCount, _core.AdmissionOf(Id));
    }

    /// <summary>The sequence numbers of this process's entries in the log after the applied index.</summary>
    private List<long> OwnUnappliedSequences()
    {
        var sequences = new List<long>();
        for (long index = _core.AppliedIndex + 1; index <= _core.LastIndex; index++)
        {
            var entry = _core.Log.Entry(index);
            if (entry.Kind == EntryKind.Normal && EntryEnvelope.TryDecode(entry.Data, out var envelope) && envelope.Origin == Id && envelope.Incarnation == _settings.Incarnation)
            {
                sequences.Add(envelope.Sequence);
            }
        }

        return sequences;
    }

    /// <summary>
    /// A forced generation's opening entry, and what it keeps of the tail of entries this node cannot
    /// know committed (the core moves them behind it). It keeps every entry but the lock commands of
    /// other nodes: none of them is a member of the new generation (its sole voter is this node), and
    /// each starts over when it hears of it, failing whatever it was waiting for; a hold one had ends
    /// with its lease, within the hold-off. Kept, another node's acquire would queue in a generation
    /// it is not part of. The opening entry carries the tail's latest stamp, so that the hold-off
    /// counts from there: a moved entry stamped after the table's time must not end it early.
    /// </summary>
    private (ReadOnlyMemory<byte> First, IReadOnlyList<ReadOnlyMemory<byte>> Kept) ForcedStart(long generation, IReadOnlyList<LogEntry> tail)
    {
        long stamp = 0;
        var kept = new List<ReadOnlyMemory<byte>>(tail.Count);
        foreach (var entry in tail)
        {
            if (!EntryEnvelope.TryDecode(entry.Data, out var envelope))
            {
                // Every replica skips a malformed entry alike, wherever it is.
                kept.Add(entry.Data);
                continue;
            }

            stamp = Math.Max(stamp, envelope.Stamp);
            if (envelope.Kind != EntryPayloadKind.Lock || envelope.Origin == Id)
            {
                kept.Add(entry.Data);
            }
        }

        var start = GenerationStart(generation, FenceHoldOffMs);
        return (stamp > 0 ? EntryEnvelope.WithStamp(start, stamp) : start, kept);
    }

    /// <summary>The entry that opens a generation in the lock table: its token bits and its hold-off.</summary>
    private ReadOnlyMemory<byte> GenerationStart(long generation, long holdOffMs)
        => new EntryEnvelope(EntryPayloadKind.Lock, 0, Id, _settings.Incarnation, _sequences.Next(),
            new LockCommand(LockCommandType.Generation, "", Token: GenerationIds.NumberOf(generation), LeaseMs: holdOffMs).Encode()).Encode();

    /// <summary>The claim could not be made (the store was unreachable): it is tried again after another founding wait.</summary>
    public void GenerationClaimFailed() => _generations?.ClaimFailed(_nowUs);

    /// <summary>
    /// Elastic mode: the store answered the confirmation this node sent at <paramref name="sentAtUs"/>
    /// for <paramref name="generation"/> with <paramref name="answer"/>: the id it held (0: none; if that
    /// was none or a lower number it holds <paramref name="generation"/> now), and how and how long ago
    /// its value last changed (see <see cref="GenerationFence"/>).
    /// </summary>
    public void GenerationConfirmed(long sentAtUs, long generation, GenerationConfirmation answer)
    {
        if (_fence is null)
        {
            return;
        }

        if (generation != Generation)
        {
            return;
        }

        switch (_fence.Confirmed(sentAtUs, generation, answer, _nowUs, out long holdOffUs))
        {
            case FenceVerdict.HoldOff:
                // Another cluster may have held the value before and granted holds this one never saw.
                _fenceHoldOffMs = Math.Max(_fenceHoldOffMs, (holdOffUs + 999) / 1000);
                break;
            case FenceVerdict.Superseded:
                Events.Superseded ??= answer.Recorded;
                break;
        }

        FenceProposals();
    }

    /// <summary>Whether this node may propose and trust its leadership: always outside elastic mode; in it, while its generation fence is open.</summary>
    private bool FenceOpen => FenceOpenAt(_nowUs, startClock: true);

    /// <summary>The fence at <paramref name="nowUs"/>; <paramref name="startClock"/> lets the lease clock start for this term (not from a query), from the first tick a node leads, so the settle time counts from then.</summary>
    private bool FenceOpenAt(long nowUs, bool startClock)
        => _fence is null || (!SettlingAfterGenerationStart(nowUs, startClock) && _fence.IsOpen(nowUs));

    /// <summary>
    /// Whether this leader's generation opened (or replaced a lower value in the store) less than the
    /// settle time ago, by the lock table's clock: the generation start entry's hold-off ends a hold
    /// limit after the settle time. So the settle time binds every leader of the generation, not only
    /// the one that changed the store (a learner promoted and handed the leadership soon after the
    /// founding). A leader's lease clock starts from the table's time, which only lengthens the wait.
    /// </summary>
    private bool SettlingAfterGenerationStart(long nowUs, bool startClock)
        => _core.Role == RaftRole.Leader && Machines.Locks.Table.GrantsFrom - _settings.Elastic!.HoldLimitMs
            > (startClock ? LeaseClockNow() : _leaseClock.Peek(_core.Term, Machines.Locks.Table.Now, nowUs));

    /// <summary>
    /// Holds the core's proposals while the generation fence is shut (see <see cref="GenerationFence"/>);
    /// when it opens, the hold-off a replaced lower value calls for goes first, and what waited goes now.
    /// </summary>
    private void FenceProposals()
    {
        if (_fence is null)
        {
            return;
        }

        bool open = FenceOpen;
        _core.ProposalsHeld = !open;
        if (_core.Role != RaftRole.Leader)
        {
            // The next leader learns of the change from its own confirmations.
            _fenceHoldOffMs = 0;
        }

        if (open && _fenceHoldOffMs > 0 && _core.Role == RaftRole.Leader && _core.Propose([EntryEnvelope.WithStamp(GenerationStart(Generation, _fenceHoldOffMs), LeaseClockNow())]) > 0)
        {
            _fenceHoldOffMs = 0;
        }

        if (open && !_fenceWasOpen && _core.Role == RaftRole.Leader)
        {
            _appends.ResubmitForNewLeader(_core);
        }

        _fenceWasOpen = open;
    }

    /// <summary>
    /// Elastic mode: the store, read after a generation of this node's number but another tag spoke,
    /// holds <paramref name="recorded"/>: if that is the other one (or newer), this node's cluster is over.
    /// </summary>
    public void RivalChecked(long recorded)
    {
        if (_generations?.RivalChecked(recorded) == true)
        {
            Events.Superseded ??= recorded;
        }
    }

    /// <summary>A probe of the store failed (see <see cref="NodeEvents.ProbeGenerationStore"/>): the founding wait starts over.</summary>
    public void GenerationStoreUnreachable() => _generations?.StoreUnreachable(_nowUs);

    /// <summary>Checks a message's generation; false when it must not be handled (dropped, or a newer generation replaced this node's).</summary>
    private bool AdmitGeneration(string from, WireMessage message, long generation)
    {
        if (_generations is null)
        {
            if (generation == 0)
            {
                return true;
            }

            Drop(from, $"a message of cluster generation {generation} reached a node with a fixed member list", "generation");
            return false;
        }

        switch (_generations.Admit(message, generation, Belongs, _nowUs))
        {
            case GenerationVerdict.Accept:
                ClearLifeIfGenerationChanged();
                if (generation == _generations.Generation && message is not VoterAnnounce { Leads: true }
                    && (_core.Configuration.IsVoter(from) || ReplicatesHere(message)))
                {
                    // A voter lives: it replicates to this node, or (leaderless) announces itself. A
                    // leader's announcement alone does not count: a leader that announces itself but
                    // replicates nothing here for the member timeout has removed this node (a learner
                    // removed while paused is never told so: it does not campaign). A leader replicating
                    // to this node counts even when this node's configuration does not name it yet (a
                    // learner thawed after a pause, catching up with the voters that replaced the ones
                    // it knew): it sends only to members of its own configuration, where it is a voter.
                    _voterHeardUs = _nowUs;
                }

                return true;
            case GenerationVerdict.Superseded:
                Events.Superseded ??= generation;
                return false;
            case GenerationVerdict.Rival:
                Events.CheckRival = true;
                Drop(from, $"a message of cluster generation {GenerationIds.Describe(generation)} reached a node of generation {GenerationIds.Describe(_generations.Generation)}, "
                    + "another cluster of the same number (the generation store lost its value while one was unheard): the store decides which lives", "generation");
                return false;
            default:
                Drop(from, $"a message of cluster generation {GenerationIds.Describe(generation)} reached a node of generation {GenerationIds.Describe(_generations.Generation)}", "generation");
                return false;
        }
    }

    /// <summary>Whether <paramref name="message"/> is a leader's replication sent to this node alone (not a broadcast), of this node's term or a newer one.</summary>
    private bool ReplicatesHere(WireMessage message)
        => message is RaftWireMessage { Message: { To: not null, Type: MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot } replication }
            && replication.Term >= _core.Term;

    private void ReceiveJoining(string from, WireMessage message)
    {
        switch (message)
        {
            case JoinAnnounce join when _autopilot is not null && _core.Role == RaftRole.Leader:
                if (!_autopilot.Announced(from, join.Fingerprint, _nowUs))
                {
                    Drop(from, $"a node asked to join with fingerprint {join.Fingerprint:x16}, but this cluster's is {_settings.Fingerprint:x16}: "
                        + "its protocol, timing options, state machine or RPC method names differ", "join-refused");
                    _outbox.Add(new Outgoing(from, new JoinRefused(_settings.Fingerprint)));
                }

                break;
            case JoinRefused refused when _settings.Raft.Joining && !_core.Configuration.Contains(Id):
                Events.JoinRefused ??= (from, refused.Fingerprint, _settings.Fingerprint);
                break;
            case NotAMember notAMember when _autopilot is not null && notAMember.ConfigurationIndex > 0 && !KnowsNewerMembership(from, notAMember.ConfigurationIndex):
                // Removed while it was paused or cut off (the removal has committed): ask to join again
                // (as a learner, then promoted). In elastic mode the node starts over as a new
                // incarnation first (see NodeEvents.Removed). A newcomer not added yet and a node that
                // left are told so too (they answer the leader's broadcast AppendEntries): neither was
                // removed, so neither reports a removal. With a member list (its first configuration
                // is not logged in this life) every node told so that is not leaving reports it, as before.
                _removalIndexTold = Math.Max(_removalIndexTold, notAMember.ConfigurationIndex);
                if (_askToJoinUntilTick < _tickCount)
                {
                    if ((_wasMember || _generations is null) && !Departing)
                    {
                        Events.RemovedBy ??= from;
                    }

                    Events.Removed |= _generations is not null && Belongs && !Departing;
                }

                _askToJoinUntilTick = _tickCount + 2 * _settings.RetryTicks;
                break;
        }
    }

    /// <summary>
    /// This node holds a committed configuration listing it that is newer than the one a "not a member"
    /// was told from: the teller is a deposed leader that never learned of this node's addition (it was
    /// removed, then added again). Committed, so every later leader has it: the node is a member and
    /// ignores the stale word (starting over would throw a voter's log away for nothing).
    /// </summary>
    /// <remarks>
    /// Or the teller is the leader this node hears from now, and that leader has since sent it
    /// AppendEntries naming a later configuration of its own (it replicates only to its members): the
    /// word was sent before it added this node back, and arrived late. Only while that leader is heard:
    /// if it removed the node again, it stops replicating to it, and tells it again when it talks.
    /// </remarks>
    private bool KnowsNewerMembership(string teller, long toldIndex)
        => (_core.Configuration.Contains(Id) && _core.ConfigurationIndex > toldIndex && _core.ConfigurationIndex <= _core.CommitIndex)
            || (teller == _core.LeaderId && _core.HearsFromLeader && _core.LeaderConfigurationSeen > toldIndex);

    /// <summary>Each tick: join announcements, and in elastic mode the founding claim, the leader's announcement and its restoring of the store.</summary>
    private void TickJoining()
    {
        // Until the cluster adds it (again), a joining or removed node asks whoever leads to add it. A
        // joining node's addition counts once committed: a deposed leader's addition may be overwritten,
        // and the node, holding it in its log, would otherwise wait for a leader that never replicates
        // to it. A leader ignores the announcement of a member.
        bool retryTick = _tickCount % _settings.RetryTicks == 0;
        bool wantsIn = (_settings.Raft.Joining || _autopilot is not null)
            && (!_core.Configuration.Contains(Id) || (_settings.Raft.Joining && _core.ConfigurationIndex > _core.CommitIndex));
        // A node starting over under the same id replays its previous life's configurations as it
        // catches up: being in one of those (or removed by a later one) says nothing about this life.
        if (!_wasMember && _core.Configuration.Contains(Id) && _core.ConfigurationIndex > _lifeFloorIndex)
        {
            _wasMember = true;
            _voterHeardUs = Math.Max(_voterHeardUs, _nowUs);
        }

        if (_generations is not null && _wasMember && !_core.Configuration.Contains(Id))
        {
            // Elastic mode: a member asks to join again only as a new incarnation, with no log (its
            // pending appends fail: the leader refuses what a non-member forwards), once its removal
            // has committed.
            // (A newcomer catching up has never been in its own configuration until its addition arrives.)
            // Not while it is still catching up from a leader that replicates to it: a leader sends
            // only to members, so a later entry may add it again (it was removed while paused, then
            // announced itself and was added before it had caught up with its removal).
            wantsIn = false;
            bool catchingUp = _core.HearsFromLeader && _core.CommitIndex < _core.LeaderCommitSeen;
            Events.Removed |= _core.ConfigurationIndex <= _core.CommitIndex && !Departing && !catchingUp;
        }

        wantsIn &= !Departing;
        if ((wantsIn || (_askToJoinUntilTick >= _tickCount && !Departing)) && retryTick)
        {
            _outbox.Add(new Outgoing(null, new JoinAnnounce(_settings.Fingerprint)));
        }

        if (_generations is null)
        {
            return;
        }

        if (_generations.ClaimDue(Belongs, _nowUs, _settings.GenerationTags) is { } claim)
        {
            Events.ClaimGeneration = claim;
        }
        else if (_generations.ProbeDue(Belongs, _nowUs))
        {
            Events.ProbeGenerationStore = true;
        }

        bool leads = _core.Role == RaftRole.Leader;
        if (leads || (_core.LeaderId is null && _core.Configuration.IsVoter(Id)))
        {
            // Every node on the channel hears that this generation lives, idle or not: from its leader,
            // or while it has none from each voter (a voter is alive: no new generation may form).
            if (retryTick || (leads && !_ledLastTick))
            {
                _outbox.Add(new Outgoing(null, new VoterAnnounce(_core.Term, leads)));
            }
        }

        if (_fence!.ConfirmDue(leads, leads && !_ledLastTick, _nowUs))
        {
            // Also restores a value the store lost (evicted, flushed, failed over).
            Events.ConfirmGeneration = (_generations.Generation, _nowUs);
        }

        _ledLastTick = leads;
        if (_nowUs - _lastJoiningTickUs > _settings.Elastic!.ElectionTimeoutUs)
        {
            // The first tick after a pause (a GC, SIGSTOP, a frozen VM): what the node did not listen
            // to, it did not hear; silence counts from here, as for founding (GenerationTracker.ClaimDue).
            // Otherwise a learner paused past the member timeout would drop its copy the moment it resumed,
            // though the cluster lives and may have promoted it meanwhile (unheard seed 2852).
            _voterHeardUs = Math.Max(_voterHeardUs, _nowUs);
        }

        _lastJoiningTickUs = _nowUs;
        if (Belongs && _wasMember && !Departing && !_core.Configuration.IsVoter(Id) && _core.Configuration.Contains(Id)
            && _nowUs - _voterHeardUs >= _generations.MemberTimeoutUs)
        {
            // A learner that heard no voter for the member timeout: every voter is gone (the founder
            // died before its first promotion, or every voter crashed). Its copy counts for nothing:
            // it starts over, and like any newcomer founds the next generation after another member
            // timeout of silence.
            Events.Orphaned = true;
        }
    }
}
