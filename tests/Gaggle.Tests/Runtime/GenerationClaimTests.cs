using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Storage;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// An elastic node's claim of the next generation, driver by driver on a scripted clock (ticks of 10 ms,
/// election timeout 100..150 ms, member timeout 600 ms): when it claims, and when a won claim founds.
/// </summary>
[TestFixture]
public sealed class GenerationClaimTests
{
    internal const long TickUs = 10_000;
    internal const long MemberTimeoutUs = 600_000;

    /// <summary>An elastic instance's driver on this fixture's timing (also the generation fence's tests').</summary>
    internal static NodeDriver NewInstance(string id, bool echoes = false)
    {
        var options = new GaggleOptions
        {
            NodeId = id,
            HeartbeatInterval = TimeSpan.FromMilliseconds(20),
            ElectionTimeoutMin = TimeSpan.FromMilliseconds(100),
            ElectionTimeoutMax = TimeSpan.FromMilliseconds(150),
            MemberTimeout = TimeSpan.FromMicroseconds(MemberTimeoutUs),
            RandomSeed = 5,
        };
        return new NodeDriver(NodeDriverSettings.From(options, 1, TimeSpan.FromMicroseconds(TickUs), echoes), new PersistedState(default, []), new SequenceCounter());
    }

    /// <summary>Ticks from <paramref name="fromUs"/> to <paramref name="toUs"/>; the generation the node claimed after, if it did.</summary>
    private static long? TickUntil(NodeDriver driver, long fromUs, long toUs)
    {
        long? claimed = null;
        for (long now = fromUs; now <= toUs; now += TickUs)
        {
            driver.Tick(now);
            claimed ??= driver.Events.ClaimGeneration?.Expected;
            driver.Events.Clear();
            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

        return claimed;
    }

    /// <summary>
    /// Over a channel that echoes (Redis), a node waiting to found counts silence only while its own
    /// announcements come back: with none heard it never claims, however long it waits; echoes every
    /// election timeout let it claim after the member timeout; a gap of more than three election
    /// timeouts between echoes (its subscription dropped, then came back) starts the wait over.
    /// </summary>
    [TestCase(false, 0, ExpectedResult = 610_000L, Description = "no echo: the wait counts from the first tick")]
    [TestCase(true, 0, ExpectedResult = null, Description = "deaf: never claims")]
    [TestCase(true, 100_000, ExpectedResult = 690_000L, Description = "an echo every election timeout: claims a member timeout after it first heard itself (the tick before the first echo, at 90 ms)")]
    [TestCase(true, 500_000, ExpectedResult = null, Description = "echoes 500 ms apart: every gap starts the wait over")]
    public long? A_node_counts_silence_only_while_it_hears_itself(bool echoes, long echoEveryUs)
    {
        var driver = NewInstance("late.e", echoes);
        driver.StartGeneration(1, live: false);
        for (long now = TickUs; now <= 3 * MemberTimeoutUs; now += TickUs)
        {
            if (echoEveryUs > 0 && now % echoEveryUs == 0)
            {
                driver.HeardOwnEcho(now);
            }

            driver.Tick(now);
            if (driver.Events.ClaimGeneration is not null)
            {
                return now;
            }

            driver.Events.Clear();
            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

        return null;
    }

    /// <summary>
    /// Instances of another wire version (another Gaggle release) on the cluster's channel are no
    /// silence: their messages cannot be read, but some member of theirs lives. A node waiting to found
    /// claims nothing while they talk (the two releases never form one cluster, and must not form two
    /// beside each other), and once they are gone it claims after the member timeout.
    /// </summary>
    [Test]
    public void A_node_claims_nothing_while_instances_of_another_wire_version_talk()
    {
        var driver = NewInstance("late.v", echoes: true);
        driver.StartGeneration(1, live: false);
        byte[] otherRelease = [(byte)(WireCodec.Version - 1), 1, 5, 0];
        long? claimedAt = null;
        var dropped = new List<string>();
        for (long now = TickUs; now <= 6 * MemberTimeoutUs && claimedAt is null; now += TickUs)
        {
            if (now % 100_000 == 0)
            {
                driver.HeardOwnEcho(now);
                if (now <= 3 * MemberTimeoutUs)
                {
                    driver.Observe(now);
                    driver.Receive("old.a", otherRelease);
                }
            }

            driver.Tick(now);
            claimedAt = driver.Events.ClaimGeneration is not null ? now : null;
            dropped.AddRange(driver.Events.Dropped.Select(d => d.Kind));
            driver.Events.Clear();
            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

        Assert.That(dropped, Has.Member("wire-version"));
        Assert.That(claimedAt, Is.EqualTo(3 * MemberTimeoutUs + MemberTimeoutUs), "claimed a member timeout after the other release's last message");
    }

    /// <summary>
    /// Found by the simulation (elastic seeds 52 and 130): a newcomer that heard a leader of a cluster
    /// it never joined took its term; once that cluster was gone it claimed the next generation, won,
    /// and founding threw (only a node without a term could found), which stops GaggleNode's loop.
    /// </summary>
    [Test]
    public void A_newcomer_that_took_a_term_from_a_cluster_it_never_joined_founds_the_next_generation_in_a_later_term()
    {
        var driver = NewInstance("late.a");
        driver.StartGeneration(1, live: false);
        driver.Tick(TickUs);
        driver.Receive("old.b", new RaftWireMessage(new RaftMessage { Type = MessageType.Append, From = "old.b", To = "late.a", Term = 3, Index = 7, LogTerm = 3, Commit = 7 }), 1);
        Assert.That(driver.Core.Term, Is.EqualTo(3));

        Assert.That(TickUntil(driver, 2 * TickUs, 2 * TickUs + MemberTimeoutUs), Is.EqualTo(1), "it heard no member of generation 1 for the member timeout");
        driver.GenerationClaimed(1, 2, won: true, 2);

        Assert.That(driver.Generation, Is.EqualTo(2));
        Assert.That(driver.Core.Role, Is.EqualTo(RaftRole.Leader), "a sole voter");
        Assert.That(driver.Core.Log.All()[0].Term, Is.EqualTo(4), "the founding entry follows the term it had");
        Assert.That(driver.Core.Term, Is.GreaterThan(3));
    }

    /// <summary>
    /// Found by the simulation (elastic seed 653): a leader of a cluster this node had left took it for a
    /// member that lost its log (its heartbeat's commit above the node's empty log) and the node began a
    /// rejoin; once that cluster was gone it founded the next generation, still rejoining, so it never
    /// campaigned and the new generation never had a leader. A founder's rejoin is over: nothing of the
    /// old cluster counts in the new one.
    /// </summary>
    [Test]
    public void A_node_that_began_a_rejoin_in_an_old_cluster_founds_the_next_generation_and_leads_it()
    {
        var driver = NewInstance("late.r");
        driver.StartGeneration(1, live: false);
        driver.Tick(TickUs);
        driver.Receive("old.b", new RaftWireMessage(new RaftMessage { Type = MessageType.Heartbeat, From = "old.b", To = "late.r", Term = 3, Index = 1, Commit = 5 }), 1);
        Assert.That(driver.Core.Rejoining, Is.True, "taken for a member that lost its log");

        Assert.That(TickUntil(driver, 2 * TickUs, 2 * TickUs + MemberTimeoutUs), Is.EqualTo(1), "it heard no member of generation 1 for the member timeout");
        driver.GenerationClaimed(1, 2, won: true, 2);
        TickUntil(driver, 3 * TickUs + MemberTimeoutUs, 3 * TickUs + MemberTimeoutUs);

        Assert.That((driver.Generation, driver.Core.Rejoining, driver.Core.Role), Is.EqualTo((2L, false, RaftRole.Leader)), "the sole voter of the generation it founded leads it");
    }

    /// <summary>
    /// Found by the simulation (elastic seed 110, after a pause): a node claimed the next generation,
    /// then heard the leader of its own generation while the claim was on its way; the claim won and the
    /// node founded a new generation beside the live one, both leaders trusting their leadership (the
    /// newer one then replaces the live cluster: its state and its holds are gone).
    /// </summary>
    [Test]
    public void A_won_claim_founds_nothing_when_a_member_of_the_claimed_generation_spoke_meanwhile()
    {
        var driver = NewInstance("late.a");
        driver.StartGeneration(1, live: false);
        Assert.That(TickUntil(driver, TickUs, TickUs + MemberTimeoutUs), Is.EqualTo(1));

        driver.Receive("live.b", new VoterAnnounce(2, Leads: true), 1);
        driver.GenerationClaimed(1, 2, won: true, 2);

        Assert.That(driver.Generation, Is.EqualTo(1), "generation 1 lives: the claimed one stays unused");
        Assert.That(driver.Core.LastIndex, Is.Zero);
        Assert.That(driver.Core.Role, Is.Not.EqualTo(RaftRole.Leader));
    }

    /// <summary>
    /// Found by the simulation (elastic seeds 62 and 155): a newcomer paused for longer than the member
    /// timeout claimed at its first tick after the pause, counting the pause as silence, though it had
    /// heard a live leader just before it, and founded a generation beside the live one. Only silence it
    /// listened to counts.
    /// </summary>
    [Test]
    public void A_pause_is_not_silence_the_founding_wait_starts_over_after_it()
    {
        var driver = NewInstance("late.a");
        driver.StartGeneration(1, live: false);
        TickUntil(driver, TickUs, 10 * TickUs);
        driver.Receive("live.b", new VoterAnnounce(2, Leads: true), 1);

        long resumedUs = 10 * TickUs + (2 * MemberTimeoutUs);
        Assert.That(TickUntil(driver, resumedUs, resumedUs + MemberTimeoutUs - TickUs), Is.Null, "no claim before a member timeout of silence after the pause");
        Assert.That(TickUntil(driver, resumedUs + MemberTimeoutUs, resumedUs + MemberTimeoutUs + TickUs), Is.EqualTo(1), "then it claims");
    }

    /// <summary>
    /// Pub/sub and the store are one Redis: while it is down a newcomer hears nothing, and that silence
    /// proves nothing. A newcomer that waited through an outage longer than the member timeout claimed
    /// as soon as Redis came back, before the live cluster's announcements reached it, and founded a
    /// generation that replaced the live cluster. It probes the store while it waits, and each failed
    /// probe starts the wait over.
    /// </summary>
    [Test]
    public void Silence_while_the_store_is_unreachable_is_no_silence_the_founding_wait_starts_over_after_it()
    {
        var driver = NewInstance("late.a");
        driver.StartGeneration(1, live: false);

        // Redis is down for three member timeouts: every probe fails (reported as GaggleNode reports it).
        long outageEndsUs = 3 * MemberTimeoutUs;
        int probes = 0;
        long? claimed = null;
        for (long now = TickUs; now <= outageEndsUs; now += TickUs)
        {
            driver.Tick(now);
            claimed ??= driver.Events.ClaimGeneration?.Expected;
            if (driver.Events.ProbeGenerationStore)
            {
                probes++;
                driver.Events.Clear();
                driver.GenerationStoreUnreachable();
            }

            driver.Events.Clear();
            while (driver.TakeReady(now) is not null)
            {
                driver.Advance();
            }
        }

        Assert.That(probes, Is.GreaterThanOrEqualTo(3 * MemberTimeoutUs / 150_000 - 1), $"a probe every election timeout while it waits (claimed {claimed})");
        Assert.That(claimed, Is.Null, "no claim while the store is unreachable");
        Assert.That(TickUntil(driver, outageEndsUs + TickUs, outageEndsUs + MemberTimeoutUs - (200 * 1000)), Is.Null, "none until a member timeout after the last failed probe");
        Assert.That(TickUntil(driver, outageEndsUs + MemberTimeoutUs - (190 * 1000), outageEndsUs + MemberTimeoutUs + TickUs), Is.EqualTo(1), "then it claims");
    }

    /// <summary>
    /// A member hears a generation of its own number under another founder's tag (founded after the
    /// store lost its value while this one lived on unheard): neither is newer, so it drops the message
    /// and asks the store, at most once per election timeout; the one the store holds lives, and this
    /// one is over only if the store holds the other.
    /// </summary>
    [Test]
    public void A_member_that_hears_another_generation_of_its_number_asks_the_store_which_lives()
    {
        long mine = (0xAL << GenerationIds.NumberBits) | 1, rival = (0xBL << GenerationIds.NumberBits) | 1;
        var driver = NewInstance("f.1");
        driver.StartGeneration(0, live: false);
        Assert.That(TickUntil(driver, TickUs, TickUs + (4 * 150_000) + TickUs), Is.EqualTo(0), "it claims the first generation");
        driver.GenerationClaimed(0, mine, won: true, mine);
        Assert.That(driver.Generation, Is.EqualTo(mine));

        long now = 700_000;
        driver.Tick(now);
        driver.Events.Clear();
        driver.Receive("r.1", new VoterAnnounce(1, Leads: true), rival);
        Assert.That((driver.Events.CheckRival, driver.Events.Superseded), Is.EqualTo((true, (long?)null)), "dropped; the store is asked");
        driver.Events.Clear();
        driver.Receive("r.1", new VoterAnnounce(1, Leads: true), rival);
        Assert.That(driver.Events.CheckRival, Is.False, "once per election timeout");

        driver.RivalChecked(mine);
        driver.RivalChecked(0);
        Assert.That(driver.Events.Superseded, Is.Null, "the store holds this one (or lost its value): it lives on");
        driver.RivalChecked(rival);
        Assert.That(driver.Events.Superseded, Is.EqualTo(rival), "the store holds the other: this cluster is over");
    }

    /// <summary>
    /// Founders' tags never come from the election jitter's random alone: instances sharing a
    /// <c>RandomSeed</c> (one appsettings file) would draw the same tags and found one number twice
    /// under one id. With a seed the tags depend on the incarnation too (a seeded simulation stays
    /// repeatable).
    /// </summary>
    [Test]
    public void Instances_sharing_a_random_seed_draw_different_founders_tags()
    {
        var options = new GaggleOptions { NodeId = "a", RandomSeed = 5, MemberTimeout = TimeSpan.FromSeconds(5) };
        long Tag(ulong incarnation) => GenerationIds.TagOf(GenerationIds.Next(0, NodeDriverSettings.From(options, incarnation, TimeSpan.FromMilliseconds(10)).GenerationTags));
        long first = Tag(1);
        Assert.That(first, Is.Not.EqualTo(Tag(2)));
        Assert.That(Tag(1), Is.EqualTo(first), "repeatable for one incarnation");
    }
}
