namespace Gaggle.Runtime;

/// <summary>What an elastic leader does after its generation store answered a confirmation.</summary>
internal enum FenceVerdict
{
    /// <summary>The store holds this node's generation (it may have just written it back).</summary>
    Confirmed,

    /// <summary>The store held a lower generation, which this node replaced: another cluster may have formed from that value and granted holds, so this one grants nothing new for a hold limit.</summary>
    ReplacedLower,

    /// <summary>The store holds another generation: this node's fence stays shut.</summary>
    Other,

    /// <summary>The store has held another, higher generation for the member timeout: this node's cluster is over.</summary>
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
/// <item>A node that changed the value (won a claim and founds; wrote its generation back; was forced)
/// keeps its fence shut until <see cref="ElasticSettings.FenceSettleUs"/> (the fence plus an election
/// timeout, for clock rates) after the store answered.</item>
/// <item>While the fence is shut the leader proposes nothing: no append, forwarded append, lock command
/// or read, no time entry; and its leadership is not trusted (GaggleLeadership).</item>
/// </list>
/// <para>
/// Why two generations never commit at once: say the value went from g to h at time x. g's leader's
/// last confirmation finding g ran before x, so was sent before x, so its fence shut before x + fence.
/// h's first member to open its fence changed the value at x (a founder, or a leader writing it back),
/// so opened after x + fence + an election timeout; every other member of h led only after that. A
/// client's hold rests on a request sent before its entry was proposed, so every hold of g ends within
/// a lease of g's fence shutting; a founder grants nothing for a hold limit after its fence opens, and a
/// leader that replaced a lower value logs the same hold-off (<see cref="FenceVerdict.ReplacedLower"/>).
/// </para>
/// <para>
/// A leader that finds another, higher generation keeps its fence shut: a newcomer's claim that it
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
            // What an earlier leadership found counts for nothing now (a claim seen then may long be given back).
            _otherSinceUs = -1;
        }

        _lastSentAtUs = nowUs;
        return true;
    }

    /// <summary>
    /// The store answered the confirmation sent at <paramref name="sentAtUs"/>: it held
    /// <paramref name="recordedBefore"/> (0: none), and if that was lower than <paramref name="generation"/>
    /// it holds <paramref name="generation"/> now.
    /// </summary>
    public FenceVerdict Confirmed(long sentAtUs, long recordedBefore, long generation, long nowUs)
    {
        if (recordedBefore > generation)
        {
            // Counted only while the higher value is found answer after answer, with no gap longer than a fence.
            if (_otherSinceUs < 0 || nowUs - _otherLastUs > settings.FenceUs)
            {
                _otherSinceUs = nowUs;
            }

            _otherLastUs = nowUs;
            return nowUs - _otherSinceUs >= settings.MemberTimeoutUs ? FenceVerdict.Superseded : FenceVerdict.Other;
        }

        _otherSinceUs = -1;
        _confirmedSentAtUs = Math.Max(_confirmedSentAtUs, sentAtUs);
        if (recordedBefore == generation)
        {
            return FenceVerdict.Confirmed;
        }

        // This node wrote the value: another generation's fence may stay open for a fence after it.
        Changed(nowUs);
        return recordedBefore == 0 ? FenceVerdict.Confirmed : FenceVerdict.ReplacedLower;
    }

    /// <summary>This node changed the store's value (it won a claim, or was forced): its fence stays shut for <see cref="ElasticSettings.FenceSettleUs"/>.</summary>
    public void Changed(long nowUs) => _shutUntilUs = Math.Max(_shutUntilUs, nowUs + settings.FenceSettleUs);

    public override string ToString() => $"confirmed at {_confirmedSentAtUs}, shut until {_shutUntilUs}, last sent at {_lastSentAtUs}";
}
