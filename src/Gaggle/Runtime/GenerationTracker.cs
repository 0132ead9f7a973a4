using Gaggle.Channels;

namespace Gaggle.Runtime;

/// <summary>What a node in elastic mode does with a message of another cluster generation.</summary>
internal enum GenerationVerdict
{
    /// <summary>Handle the message.</summary>
    Accept,

    /// <summary>Drop it: it belongs to an older generation, or comes from a node of none that may only announce itself.</summary>
    Drop,

    /// <summary>A newer generation lives: this node's cluster is over; it must reset and join the newer one.</summary>
    Superseded,

    /// <summary>
    /// Drop it, and ask the store: it belongs to another generation of this node's number (founded after
    /// the store lost its value while this one lived on unheard). The one the store holds lives on; the
    /// other is over (its fence stays shut: see GenerationFence).
    /// </summary>
    Rival,
}

/// <summary>
/// An elastic node's cluster generation (see <see cref="IClusterGenerationStore"/>): which one it
/// belongs to or waits to join, whether a member of it was heard lately, and when it may found the next
/// one. Pure: time comes in as arguments.
/// </summary>
/// <remarks>
/// <para>
/// A node that belongs to no cluster yet (empty log, no snapshot) adopts the generation of any leader
/// it hears, even one below the recorded value (a claim whose claimant died before it formed, or a
/// store that lost the value: a live leader wins over the store). It claims the next generation only
/// after hearing no member of its known generation for the founding wait: <see cref="MemberTimeoutUs"/>
/// (well above an election timeout and a long pause, so a live cluster is always heard first), or
/// <see cref="BootstrapWaitUs"/> when no generation is recorded at all (a first start; leaders
/// announce themselves at least every election timeout, idle or not).
/// </para>
/// <para>
/// A node that belongs to generation g drops messages of generations below g (except join
/// announcements, which any leader may answer), and on a message of a generation above g knows its
/// cluster is over: a newer one formed only after hearing none of g's members for the founding wait.
/// </para>
/// <para>
/// Silence counts only while the node listens: a gap between its ticks longer than an election timeout
/// (a paused process, a stalled loop) starts the founding wait over, and a member heard while a claim
/// is on its way to the store cancels the founding even if the claim wins (the claimed generation stays
/// unused): either way its generation may well be alive. So does a store found unreachable: a node
/// waiting to found probes the store every election timeout, and each failed probe (or claim) starts
/// the wait over. Pub/sub and the store are one Redis: while it is down nothing is heard, and silence
/// proves nothing. Without it, a newcomer that waited through a Redis outage longer than the member
/// timeout claimed the moment Redis came back, before the live cluster's announcements reached it, and
/// its new generation replaced the live cluster (every member reset, its state lost).
/// </para>
/// <para>
/// With <paramref name="echoes"/> (the channel reports the node's own broadcasts coming back: Redis
/// pub/sub), silence counts only while they do: a node waiting to found announces itself every
/// election timeout, and a gap of <see cref="EchoGapUs"/> without its echo starts the wait over. A
/// node whose subscription is down (its commands still reaching Redis) hears neither the live leader
/// nor itself, and founds nothing.
/// </para>
/// </remarks>
internal sealed class GenerationTracker(long memberTimeoutUs, long bootstrapWaitUs, bool echoes = false)
{
    private long _lastEchoUs = long.MinValue / 2;
    private bool _live;
    private bool _started;
    private long _silentSinceUs;
    private long _lastTickUs;
    private bool _claiming;
    private bool _heardWhileClaiming;
    private long _probedAtUs = long.MinValue / 2;
    private long _rivalCheckedAtUs = long.MinValue / 2;

    public long MemberTimeoutUs => memberTimeoutUs;

    public long BootstrapWaitUs => bootstrapWaitUs;

    /// <summary>The generation this node belongs to, or the one it waits to join (0: none recorded).</summary>
    public long Generation { get; private set; }

    /// <summary>When this node founded its generation (its driver clock), or -1.</summary>
    public long FoundedAtUs { get; private set; } = -1;

    /// <summary>How long this node heard no member of any generation before it founded its own.</summary>
    public long SilenceBeforeFoundingUs { get; private set; }

    /// <summary>Starts from <paramref name="generation"/>: read from the store, or (<paramref name="live"/>) the one whose member made this node reset.</summary>
    public void Start(long generation, bool live)
    {
        Generation = generation;
        _live = live;
    }

    /// <summary>What to do with <paramref name="message"/> of generation <paramref name="generation"/>; <paramref name="belongs"/> when this node holds its generation's state.</summary>
    public GenerationVerdict Admit(WireMessage message, long generation, bool belongs, long nowUs)
    {
        if (message is JoinAnnounce)
        {
            // From a node of no cluster, or of an older one: any leader may add it; it adopts the
            // leader's generation from the leader's first message.
            return GenerationVerdict.Accept;
        }

        if (generation == 0)
        {
            return GenerationVerdict.Drop;
        }

        if (generation == Generation)
        {
            Heard(nowUs);
            return GenerationVerdict.Accept;
        }

        if (belongs)
        {
            // Another generation of the same number (founded after the store lost its value while this
            // one lived on unheard) is neither newer nor older: the store's value settles which one lives
            // (see GenerationFence), and until then neither takes the other's messages.
            return GenerationIds.IsNewer(generation, Generation) ? GenerationVerdict.Superseded
                : GenerationIds.NumberOf(generation) == GenerationIds.NumberOf(Generation) ? RivalHeard(nowUs)
                : GenerationVerdict.Drop;
        }

        if (GenerationIds.IsNewer(generation, Generation) || !_live)
        {
            Generation = generation;
            Heard(nowUs);
            return GenerationVerdict.Accept;
        }

        return GenerationVerdict.Drop;
    }

    /// <summary>A rival of this node's generation (same number, another tag) spoke: the store is asked at most once per election timeout.</summary>
    private GenerationVerdict RivalHeard(long nowUs)
    {
        if (nowUs - _rivalCheckedAtUs < LongestTickGapUs)
        {
            return GenerationVerdict.Drop;
        }

        _rivalCheckedAtUs = nowUs;
        return GenerationVerdict.Rival;
    }

    /// <summary>
    /// The store, asked after a rival of this node's generation spoke, holds <paramref name="recorded"/>:
    /// true when that is another generation of at least this one's number, which replaced this node's.
    /// </summary>
    public bool RivalChecked(long recorded)
        => recorded != Generation && recorded != 0 && !GenerationIds.IsNewer(Generation, recorded);

    /// <summary>
    /// The generation id to claim the next one from and the id claimed (the next number, with a tag
    /// drawn from <paramref name="random"/>), when this node (belonging to none) has waited long enough;
    /// null otherwise (also when the numbers ran out: see <see cref="GenerationIds.MaxNumber"/>).
    /// </summary>
    public (long Expected, long Claimed)? ClaimDue(bool belongs, long nowUs, Random random)
    {
        if (!_started || nowUs - _lastTickUs > LongestTickGapUs)
        {
            // The first tick, or the first after a pause: what the node did not listen to, it did not hear.
            _started = true;
            _silentSinceUs = nowUs;
        }

        _lastTickUs = nowUs;
        if (echoes && nowUs - _lastEchoUs > EchoGapUs)
        {
            // Its own announcements do not come back: whatever it did not hear may have been sent.
            _silentSinceUs = nowUs;
        }

        if (belongs || _claiming || nowUs - _silentSinceUs < FoundingWaitUs || GenerationIds.NumberOf(Generation) >= GenerationIds.MaxNumber)
        {
            return null;
        }

        _claiming = true;
        _heardWhileClaiming = false;
        return (Generation, GenerationIds.Next(Generation, random));
    }

    /// <summary>The claim of generation <paramref name="claimed"/> after <paramref name="expected"/> was <paramref name="won"/> or lost to <paramref name="recorded"/>, the value in the store now: true when this node founds generation <paramref name="claimed"/>.</summary>
    public bool Claimed(long expected, long claimed, bool won, long recorded, bool belongs, long nowUs)
    {
        _claiming = false;
        if (belongs || Generation != expected)
        {
            // It joined a live cluster meanwhile: the claimed generation stays unused (joiners still
            // join the live cluster, whose leader they hear).
            return false;
        }

        if (won && _heardWhileClaiming)
        {
            // A member of the generation it claimed after spoke meanwhile: that generation lives.
            return false;
        }

        if (won)
        {
            SilenceBeforeFoundingUs = nowUs - _silentSinceUs;
            Generation = claimed;
            FoundedAtUs = nowUs;
            _live = true;
            return true;
        }

        // Another node claimed first (or the store moved on): wait for its leader.
        Generation = recorded;
        _live = false;
        _silentSinceUs = nowUs;
        return false;
    }

    /// <summary>An operator forced this node into <paramref name="generation"/>, which it claimed (see <see cref="NodeDriver.ForceNewGeneration"/>).</summary>
    public void Forced(long generation, long nowUs)
    {
        Generation = generation;
        FoundedAtUs = nowUs;
        _live = true;
        _claiming = false;
    }

    /// <summary>The claim failed (the store was unreachable): try again after another founding wait.</summary>
    public void ClaimFailed(long nowUs)
    {
        _claiming = false;
        _silentSinceUs = nowUs;
    }

    /// <summary>Whether this node, waiting to found, should probe the store now (every election timeout, one probe at a time).</summary>
    public bool ProbeDue(bool belongs, long nowUs)
    {
        if (belongs || _claiming || !_started || nowUs - _probedAtUs < LongestTickGapUs)
        {
            return false;
        }

        _probedAtUs = nowUs;
        return true;
    }

    /// <summary>A probe (or any store operation) failed: Redis is down or out of reach, so what was not heard meanwhile proves nothing; a claim on its way founds nothing.</summary>
    public void StoreUnreachable(long nowUs)
    {
        _silentSinceUs = nowUs;
        _heardWhileClaiming |= _claiming;
    }

    /// <summary>
    /// A node of this cluster spoke a wire version this one cannot read (an instance of another Gaggle
    /// release): some member may be alive, so this is no silence; a claim on its way founds nothing.
    /// Instances of two wire versions never form one cluster (their fingerprints differ too), but
    /// neither founds a generation beside the other while both run.
    /// </summary>
    public void HeardIncompatible(long nowUs) => StoreUnreachable(nowUs);

    /// <summary>One of this node's own broadcasts came back: its subscription works (see <see cref="ClaimDue"/>).</summary>
    public void HeardOwnEcho(long nowUs) => _lastEchoUs = Math.Max(_lastEchoUs, nowUs);

    private long FoundingWaitUs => Generation == 0 ? bootstrapWaitUs : memberTimeoutUs;

    /// <summary>The longest gap between a waiting node's echoes that still counts as hearing: three election timeouts (it announces itself every election timeout; one echo may be late or lost).</summary>
    private long EchoGapUs => 3 * LongestTickGapUs;

    /// <summary>An election timeout (the bootstrap wait is a few): a leader announces itself at least that often.</summary>
    private long LongestTickGapUs => bootstrapWaitUs / ElasticSettings.BootstrapElectionTimeouts;

    private void Heard(long nowUs)
    {
        _live = true;
        _started = true;
        _silentSinceUs = nowUs;
        _heardWhileClaiming |= _claiming;
    }
}
