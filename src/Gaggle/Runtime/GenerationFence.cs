using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>What an elastic leader does after its generation store answered a confirmation.</summary>
internal enum FenceVerdict
{
    /// <summary>The store holds this node's generation (it may have just written it back).</summary>
    Confirmed,

    /// <summary>
    /// The store holds this node's generation, put there less than a hold-off ago by a confirmation
    /// that restored it or replaced a lower one (this node's or another leader's): another generation
    /// may have held the value meanwhile and granted holds, so this one grants nothing new for the rest
    /// of the hold-off.
    /// </summary>
    HoldOff,

    /// <summary>The store holds another generation (a higher number, or the same number with another founder's tag): this node's fence stays shut.</summary>
    Other,

    /// <summary>The store has held another generation for the member timeout: this node's cluster is over.</summary>
    Superseded,
}

/// <summary>
/// An elastic leader's fence against a live generation it cannot hear: it proposes nothing and trusts
/// no leadership unless its generation store (Redis) said lately that its generation is the current one.
/// Pure: time comes in as arguments.
/// </summary>
/// <remarks>
/// <para>
/// A newcomer founds a generation after hearing no member of the live one for the member timeout. That
/// silence proves nothing when the live generation is alive but unheard: a Redis Cluster whose bus is
/// partitioned between the two, or every member of it paused past the member timeout (a frozen VM).
/// Both generations would then commit, trust their leadership and grant the same lock. The store is
/// the one thing both reach, and it holds one value at a time; the fence makes it a lease:
/// </para>
/// <list type="number">
/// <item>A leader confirms every <see cref="ElasticSettings.ConfirmEveryUs"/> (answers may come in any order): it reads the store,
/// writing its generation back if the store lost it (or holds a lower one). A confirmation sent at s
/// that finds its generation keeps the fence open until s + <see cref="ElasticSettings.FenceUs"/> on
/// the leader's clock. The read ran at Redis after s, so the value was there then.</item>
/// <item>The store records when (its own clock) and how its value last changed, and every confirmation
/// answers with that. A value changed to this node's generation by a claim (founded, forced), a restore
/// (written where none was) or a replacement (of a lower number) less than
/// <see cref="ElasticSettings.FenceSettleUs"/> (the fence plus an election timeout, for clock rates)
/// before the answer keeps the fence shut until that settle time has passed since the change, whoever
/// made it: the node that changed it, or a leader elected right after. A value a claimant gave back
/// carries the change before the claim (nobody acted under the claim).</item>
/// <item>While the fence is shut the leader proposes nothing: no append, forwarded append, lock command
/// or read, no time entry; and its leadership is not trusted (GaggleLeadership).</item>
/// </list>
/// <para>
/// Why two generations never propose, or trust their leadership, at once: say the value went from g to
/// h at time x. g's leader's last confirmation finding g ran before x, so was sent before x, so its fence
/// shut before x + fence. Every leader of h confirms before it acts, learns of the change at x and opens
/// its fence only after x + fence + an election timeout. (An entry g proposed before may still commit
/// later; what matters for locks is the next paragraph.)
/// </para>
/// <para>
/// Why two generations never hold one lock at once: a client's hold rests on a request sent before
/// its entry was proposed, so every hold of g ends within a lease of g's fence shutting, before
/// x + fence + a lease. h grants nothing for <see cref="ElasticSettings.FenceHoldOffUs"/> after x
/// (settle time plus a hold limit): a founder's generation start entry says so, and a leader that
/// learns of a restore or replacement that recent logs the rest of that hold-off
/// (<see cref="FenceVerdict.HoldOff"/>) before anything else.
/// </para>
/// <para>
/// Generation ids carry a random tag beside their number (see <see cref="GenerationIds"/>): if the store
/// lost its value while g lived on unheard, a newcomer founds g's number again under another tag, and
/// the two are different values to the store, as any two generations are.
/// </para>
/// <para>
/// What the argument assumes of the store: every change of its value is recorded with its time. A
/// store that rolls back (a failover to a replica that lacks the latest change) can hand g its own old
/// record after h changed it, and g cannot tell: the README's failure table says so, and how to avoid it.
/// The store's clock must not step back across a failover by more than an election timeout.
/// </para>
/// <para>
/// A leader that finds another generation keeps its fence shut: a newcomer's claim that it
/// gives up once it hears this generation is live is released soon (the value goes back), and then the
/// fence opens again. If the other value is found answer after answer for the member timeout (while
/// this node leads), that generation formed (or its claimant died before giving the claim back): this
/// node's cluster is over, as when it hears the newer generation's messages.
/// </para>
/// </remarks>
internal sealed class GenerationFence(ElasticSettings settings)
{
    private long _confirmedSentAtUs = long.MinValue / 2;
    private long _shutUntilUs = long.MinValue / 2;
    private long _lastSentAtUs = long.MinValue / 2;
    private long _otherSinceUs = -1;
    private long _otherLastUs;
    private long _holdOffUntilUs = long.MinValue / 2;

    /// <summary>Whether the fence is open at <paramref name="nowUs"/>: proposals may go and leadership may be trusted.</summary>
    public bool IsOpen(long nowUs) => nowUs >= _shutUntilUs && nowUs - _confirmedSentAtUs < settings.FenceUs;

    /// <summary>
    /// Whether a leader should send a confirmation now: at once when it begins to lead, then every
    /// <see cref="ElasticSettings.ConfirmEveryUs"/>, whether or not the earlier ones were answered (a
    /// store slower than a fence still opens it: any answer to a confirmation sent within the last
    /// fence does).
    /// </summary>
    public bool ConfirmDue(bool leads, bool beganToLead, long nowUs)
    {
        if (!leads || (!beganToLead && nowUs - _lastSentAtUs < settings.ConfirmEveryUs))
        {
            return false;
        }

        if (beganToLead)
        {
            // What an earlier leadership found counts for nothing now (a claim seen then may long be given
            // back), and a hold-off it asked for may never have been logged.
            _otherSinceUs = -1;
            _holdOffUntilUs = long.MinValue / 2;
        }

        _lastSentAtUs = nowUs;
        return true;
    }

    /// <summary>
    /// The store answered the confirmation of <paramref name="generation"/> sent at
    /// <paramref name="sentAtUs"/> with <paramref name="answer"/>: the id it held before (if none or a
    /// lower number, it holds <paramref name="generation"/> now) and its last change.
    /// <paramref name="holdOffUs"/> is how much longer nothing may be granted, with <see cref="FenceVerdict.HoldOff"/>.
    /// </summary>
    public FenceVerdict Confirmed(long sentAtUs, long generation, GenerationConfirmation answer, long nowUs, out long holdOffUs)
    {
        holdOffUs = 0;
        long before = answer.Recorded;
        if (before != generation && before != 0 && !GenerationIds.IsNewer(generation, before))
        {
            // Counted only while the other value is found answer after answer, with no gap longer than a fence.
            if (_otherSinceUs < 0 || nowUs - _otherLastUs > settings.FenceUs)
            {
                _otherSinceUs = nowUs;
            }

            _otherLastUs = nowUs;
            return nowUs - _otherSinceUs >= settings.MemberTimeoutUs ? FenceVerdict.Superseded : FenceVerdict.Other;
        }

        _otherSinceUs = -1;
        _confirmedSentAtUs = Math.Max(_confirmedSentAtUs, sentAtUs);
        long sinceUs = answer.Change == GenerationChange.Unknown || answer.SinceChange >= TimeSpan.FromMicroseconds(settings.FenceHoldOffUs)
            ? settings.FenceHoldOffUs
            : Math.Max(0, (long)answer.SinceChange.TotalMicroseconds);
        if (answer.Change is GenerationChange.Claimed or GenerationChange.Restored or GenerationChange.Replaced)
        {
            // Another generation's fence may have stayed open until a fence after the change.
            _shutUntilUs = Math.Max(_shutUntilUs, nowUs + settings.FenceSettleUs - sinceUs);
        }

        if (answer.Change is GenerationChange.Restored or GenerationChange.Replaced && sinceUs < settings.FenceHoldOffUs
            && nowUs + settings.FenceHoldOffUs - sinceUs > _holdOffUntilUs + settings.ElectionTimeoutUs)
        {
            // Another generation may have held the value before, and granted holds that last a lease
            // longer. (Once per change in a leadership: later answers about the same change ask for no more.)
            // Asked once per change, so an election timeout longer: a second change up to an election
            // timeout later asks for nothing more, and must be covered.
            holdOffUs = settings.FenceHoldOffUs - sinceUs + settings.ElectionTimeoutUs;
            _holdOffUntilUs = nowUs + holdOffUs;
            return FenceVerdict.HoldOff;
        }

        return FenceVerdict.Confirmed;
    }

    /// <summary>This node changed the store's value (it won a claim, or was forced): its fence stays shut for <see cref="ElasticSettings.FenceSettleUs"/>.</summary>
    public void Changed(long nowUs) => _shutUntilUs = Math.Max(_shutUntilUs, nowUs + settings.FenceSettleUs);

    public override string ToString() => $"confirmed at {_confirmedSentAtUs}, shut until {_shutUntilUs}, last sent at {_lastSentAtUs}";
}
