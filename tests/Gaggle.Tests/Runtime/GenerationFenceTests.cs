using System.Text;
using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// The generation fence (GenerationFence): an elastic leader proposes nothing and trusts no leadership
/// unless the store confirmed its generation within a fence (two election timeouts) of sending the
/// confirmation; a node that changed the store's value waits a fence plus an election timeout. Election
/// timeout 150 ms here: fence 300 ms, settle 450 ms, a confirmation every 75 ms.
/// </summary>
[TestFixture]
public sealed class GenerationFenceTests
{
    private const long TickUs = GenerationClaimTests.TickUs;
    private const long MemberTimeoutUs = GenerationClaimTests.MemberTimeoutUs;
    private static readonly ElasticSettings Settings = new(MemberTimeoutUs, 4 * 150_000, 1_150);

    [Test]
    public void The_timing_follows_the_election_timeout()
        => Assert.That((Settings.FenceUs, Settings.FenceSettleUs, Settings.ConfirmEveryUs), Is.EqualTo((300_000L, 450_000L, 75_000L)));

    [Test]
    public void A_confirmation_keeps_the_fence_open_for_a_fence_after_it_was_sent()
    {
        var fence = new GenerationFence(Settings);
        Assert.That(fence.IsOpen(0), Is.False, "shut until a first confirmation");
        Assert.That(fence.ConfirmDue(leads: true, beganToLead: true, 1_000), Is.True);
        Assert.That(Confirm(fence, 1_000, found: 4, generation: 4, now: 250_000), Is.EqualTo(FenceVerdict.Confirmed));
        Assert.That((fence.IsOpen(250_000), fence.IsOpen(300_999), fence.IsOpen(301_000)), Is.EqualTo((true, true, false)),
            "open from the answer until a fence after the send time, however late the answer came");
    }

    [Test]
    public void A_leader_confirms_when_it_begins_to_lead_then_every_half_election_timeout_answered_or_not()
    {
        var fence = new GenerationFence(Settings);
        Assert.That(fence.ConfirmDue(leads: false, beganToLead: false, 0), Is.False, "a follower confirms nothing");
        Assert.That(fence.ConfirmDue(leads: true, beganToLead: true, 10_000), Is.True);
        Assert.That(fence.ConfirmDue(leads: true, beganToLead: false, 80_000), Is.False);
        Assert.That(fence.ConfirmDue(leads: true, beganToLead: false, 85_000), Is.True, "the first is not answered yet: the next goes anyway");
        Assert.That(fence.ConfirmDue(leads: true, beganToLead: true, 90_000), Is.True, "at once when it begins to lead again");
    }

    /// <summary>
    /// A store slower than the fence still opens it: answers may come late and out of order, and any
    /// answer to a confirmation sent within the last fence keeps it open.
    /// </summary>
    [Test]
    public void Late_answers_out_of_order_keep_the_newest_confirmation()
    {
        var fence = new GenerationFence(Settings);
        Assert.That(Confirm(fence, 75_000, 5, 5, 500_000), Is.EqualTo(FenceVerdict.Confirmed));
        Assert.That(Confirm(fence, 0, 5, 5, 510_000), Is.EqualTo(FenceVerdict.Confirmed));
        Assert.That((fence.IsOpen(374_999), fence.IsOpen(510_000)), Is.EqualTo((true, false)), "open until a fence after the newest send time answered");
        Assert.That(Confirm(fence, 300_000, 5, 5, 520_000), Is.EqualTo(FenceVerdict.Confirmed));
        Assert.That((fence.IsOpen(520_000), fence.IsOpen(600_000)), Is.EqualTo((true, false)));
    }

    [Test]
    public void A_node_that_changed_the_value_keeps_its_fence_shut_for_the_settle_time()
    {
        var fence = new GenerationFence(Settings);
        fence.Changed(100_000);
        Assert.That(Confirm(fence, 120_000, 5, 5, 130_000), Is.EqualTo(FenceVerdict.Confirmed));
        Assert.That(fence.IsOpen(130_000), Is.False);
        Assert.That(Confirm(fence, 500_000, 5, 5, 510_000), Is.EqualTo(FenceVerdict.Confirmed));
        Assert.That((fence.IsOpen(549_999), fence.IsOpen(550_000)), Is.EqualTo((false, true)));
    }

    [TestCase(0L, true, Description = "the store lost its value: written back")]
    [TestCase(3L, false, Description = "a lower value: a cluster may have formed from it, and its holds may still run")]
    public void A_leader_that_writes_its_generation_back_waits_the_settle_time(long recordedBefore, bool wasLost)
    {
        // Either way another generation may have held the value meanwhile (founded after a loss) and granted holds.
        var verdict = FenceVerdict.HoldOff;
        var fence = new GenerationFence(Settings);
        Confirm(fence, 0, 5, 5, 1_000);
        Assert.That(fence.IsOpen(1_000), Is.True);
        Assert.That(Confirm(fence, 75_000, recordedBefore, 5, 80_000), Is.EqualTo(verdict));
        Assert.That(fence.IsOpen(80_000), Is.False, "another generation's fence may stay open until a fence after the write");
        Confirm(fence, 500_000, 5, 5, 501_000);
        Assert.That((fence.IsOpen(529_999), fence.IsOpen(530_000)), Is.EqualTo((false, true)));
    }

    /// <summary>
    /// The settle time binds every leader, not only the node that changed the value: the store says how
    /// long ago the change was (its clock), and a leader elected right after a write-back (or whose
    /// predecessor's answer was lost) waits out the rest. A restore or replacement also calls for the
    /// rest of the hold-off: another generation may have held the value meanwhile and granted holds.
    /// </summary>
    [TestCase(GenerationChange.Restored, true)]
    [TestCase(GenerationChange.Replaced, true)]
    [TestCase(GenerationChange.Claimed, false)]
    public void Every_leader_waits_out_a_recent_change_whoever_made_it(GenerationChange change, bool holdsOff)
    {
        var fence = new GenerationFence(Settings);
        var verdict = fence.Confirmed(1_000, 5, new GenerationConfirmation(5, change, TimeSpan.FromMilliseconds(100)), 2_000, out long holdOffUs);
        Assert.That((verdict, holdOffUs), Is.EqualTo(holdsOff ? (FenceVerdict.HoldOff, Settings.FenceHoldOffUs - 100_000 + Settings.ElectionTimeoutUs) : (FenceVerdict.Confirmed, 0L)));
        Assert.That((fence.IsOpen(351_999), fence.IsOpen(352_000)), Is.EqualTo((false, false)), "shut for the settle time after the change (450 ms, the change 100 ms before the answer), and the confirmation's fence ends at 301 ms");
        fence.Confirmed(300_000, 5, new GenerationConfirmation(5, change, TimeSpan.FromMilliseconds(450)), 352_000, out _);
        Assert.That((fence.IsOpen(351_999), fence.IsOpen(352_000)), Is.EqualTo((false, true)));
    }

    [TestCase(GenerationChange.Restored, 1_600)]
    [TestCase(GenerationChange.Claimed, 450)]
    [TestCase(GenerationChange.Unknown, 0)]
    public void A_change_older_than_its_wait_holds_nothing_back(GenerationChange change, long sinceMs)
    {
        var fence = new GenerationFence(Settings);
        var verdict = fence.Confirmed(1_000, 5, new GenerationConfirmation(5, change, change == GenerationChange.Unknown ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(sinceMs)), 2_000, out long holdOffUs);
        Assert.That((verdict, holdOffUs, fence.IsOpen(2_000)), Is.EqualTo((FenceVerdict.Confirmed, 0L, true)));
    }

    /// <summary>
    /// A generation founded with this one's number under another tag (the store lost its value while
    /// this one lived on unheard) is another value: the fence stays shut, and after the member timeout
    /// this cluster is over, as with a higher number.
    /// </summary>
    [Test]
    public void Another_generation_of_the_same_number_is_another_value()
    {
        long mine = (0xAL << GenerationIds.NumberBits) | 5, rival = (0xBL << GenerationIds.NumberBits) | 5;
        var fence = new GenerationFence(Settings);
        Assert.That(Confirm(fence, 0, rival, mine, 1_000), Is.EqualTo(FenceVerdict.Other));
        Assert.That(fence.IsOpen(1_000), Is.False);
        for (long now = 75_000; now < MemberTimeoutUs; now += 75_000)
        {
            Assert.That(Confirm(fence, now, rival, mine, now), Is.EqualTo(FenceVerdict.Other));
        }

        Assert.That(Confirm(fence, MemberTimeoutUs, rival, mine, MemberTimeoutUs + 1_000), Is.EqualTo(FenceVerdict.Superseded));
    }

    [Test]
    public void A_higher_value_shuts_the_fence_and_after_the_member_timeout_ends_the_cluster()
    {
        var fence = new GenerationFence(Settings);
        Confirm(fence, 0, 5, 5, 1_000);
        Assert.That(Confirm(fence, 75_000, 6, 5, 80_000), Is.EqualTo(FenceVerdict.Other));
        Assert.That(fence.IsOpen(80_000), Is.True, "the earlier confirmation still holds: the value changed after it was read");
        Assert.That(fence.IsOpen(300_000), Is.False);
        Assert.That(Confirm(fence, 150_000, 5, 5, 160_000), Is.EqualTo(FenceVerdict.Confirmed), "a claim given back: open again");
        for (long now = 230_000; now < 830_000; now += 75_000)
        {
            Assert.That(Confirm(fence, now - 5_000, 6, 5, now), Is.EqualTo(FenceVerdict.Other));
        }

        Assert.That(Confirm(fence, 825_000, 6, 5, 830_000), Is.EqualTo(FenceVerdict.Superseded), "found answer after answer for the member timeout");
    }

    /// <summary>
    /// The higher value counts only while it is found answer after answer in one leadership: a gap
    /// longer than a fence, or a new leadership, starts the count over (a claim seen long ago, and
    /// given back since, must not end the cluster the moment another short-lived claim is seen).
    /// </summary>
    [Test]
    public void A_higher_value_counts_only_answer_after_answer_in_one_leadership()
    {
        var fence = new GenerationFence(Settings);
        Assert.That(Confirm(fence, 0, 6, 5, 10_000), Is.EqualTo(FenceVerdict.Other));
        Assert.That(Confirm(fence, 700_000, 6, 5, 700_000), Is.EqualTo(FenceVerdict.Other), "a gap longer than a fence: counted from here");
        for (long now = 775_000; now < 1_300_000; now += 75_000)
        {
            Assert.That(Confirm(fence, now, 6, 5, now), Is.EqualTo(FenceVerdict.Other));
        }

        fence.ConfirmDue(leads: true, beganToLead: true, 1_310_000);
        Assert.That(Confirm(fence, 1_310_000, 6, 5, 1_320_000), Is.EqualTo(FenceVerdict.Other), "a new leadership: counted from here (else 620 ms since 700 ms)");
        Assert.That(Confirm(fence, 1_900_000, 6, 5, 1_920_000), Is.EqualTo(FenceVerdict.Other));
    }

    /// <summary>
    /// A founder (the sole voter of generation 1) proposes nothing and trusts no leadership until the
    /// settle time after its claim and a confirmation; once confirmations stop coming (the store is out
    /// of reach, or the node was paused), it stops proposing a fence after the last one was sent, and
    /// what waited goes as soon as one comes again.
    /// </summary>
    [Test]
    public void A_founder_proposes_only_while_its_fence_is_open()
    {
        var driver = GenerationClaimTests.NewInstance("f.1");
        driver.StartGeneration(0, live: false);
        long now = 0;
        (long Expected, long Claimed)? claim;
        while ((claim = Step(driver, now += TickUs)) is null)
        {
            Assert.That(now, Is.LessThan(10 * MemberTimeoutUs), "the founder claims");
        }

        Assert.That(claim!.Value.Expected, Is.EqualTo(0));
        driver.GenerationClaimed(0, 1, won: true, 1);
        long foundedAt = now;
        Step(driver, now += TickUs);
        Assert.That(driver.Core.Role, Is.EqualTo(RaftRole.Leader));
        long founding = driver.Core.LastIndex;
        Append(driver, 1);

        // Confirmations answered at once, from here on.
        long lastConfirmSent = -1;
        void Run(long untilUs, bool answer)
        {
            while (now < untilUs)
            {
                Step(driver, now += TickUs, onConfirm: (generation, sentAt) =>
                {
                    if (answer)
                    {
                        driver.GenerationConfirmed(sentAt, generation, Answer(generation, generation));
                        lastConfirmSent = sentAt;
                    }                });
            }
        }

        Run(foundedAt + Settings.FenceSettleUs - TickUs, answer: true);
        Assert.That((driver.Core.LastIndex, driver.IsLeadershipTrusted(now)), Is.EqualTo((founding, false)), "shut for the settle time after the claim");
        Run(foundedAt + Settings.FenceSettleUs + (2 * TickUs), answer: true);
        Assert.That((driver.Core.LastIndex, driver.IsLeadershipTrusted(now)), Is.EqualTo((founding + 1, true)), "then the append goes");

        Run(now + Settings.FenceUs, answer: false);
        Append(driver, 2);
        Step(driver, now += TickUs);
        Assert.That(now - lastConfirmSent, Is.GreaterThanOrEqualTo(Settings.FenceUs));
        Assert.That((driver.Core.LastIndex, driver.IsLeadershipTrusted(now)), Is.EqualTo((founding + 1, false)), "no confirmation for a fence: shut");

        Run(now + Settings.ConfirmEveryUs + TickUs, answer: true);
        Assert.That((driver.Core.LastIndex, driver.IsLeadershipTrusted(now)), Is.EqualTo((founding + 2, true)), "a confirmation again: the held append goes");
    }

    /// <summary>A store's answer to a confirmation of <paramref name="generation"/> that found <paramref name="found"/>: written back over none or a lower number, else unchanged since long ago.</summary>
    internal static GenerationConfirmation Answer(long found, long generation)
        => found == 0 ? new(0, GenerationChange.Restored, TimeSpan.Zero)
            : GenerationIds.IsNewer(generation, found) ? new(found, GenerationChange.Replaced, TimeSpan.Zero)
            : new(found, GenerationChange.Unknown, TimeSpan.MaxValue);

    private static FenceVerdict Confirm(GenerationFence fence, long sentAt, long found, long generation, long now)
        => fence.Confirmed(sentAt, generation, Answer(found, generation), now, out _);

    /// <summary>
    /// A leader that learns from the store of a restore made 100 ms ago by another node (a predecessor
    /// whose own hold-off entry never committed) logs the rest of the hold-off itself, once its fence
    /// opens, before anything else.
    /// </summary>
    [Test]
    public void A_leader_that_learns_of_a_restore_made_by_another_logs_the_rest_of_the_hold_off()
    {
        var driver = GenerationClaimTests.NewInstance("f.1");
        driver.StartGeneration(0, live: false);
        long now = 0;
        while (Step(driver, now += TickUs) is null)
        {
            Assert.That(now, Is.LessThan(10 * MemberTimeoutUs), "the founder claims");
        }

        driver.GenerationClaimed(0, 1, won: true, 1);
        var table = driver.Machines.Locks.Table;
        void Run(long untilUs, Func<long, GenerationConfirmation> answer)
        {
            while (now < untilUs)
            {
                Step(driver, now += TickUs, onConfirm: (generation, sentAt) => driver.GenerationConfirmed(sentAt, generation, answer(now)));
            }
        }

        var elastic = driver.Elastic!;
        Run(now + elastic.FenceHoldOffUs + MemberTimeoutUs, _ => Answer(1, 1));
        Append(driver, 1);
        Run(now + (2 * TickUs), _ => Answer(1, 1));
        long foundingHoldOff = table.GrantsFrom;
        long lastIndex = driver.Core.LastIndex;

        long restoredAt = now - 100_000;
        Run(now + elastic.FenceSettleUs, at => new GenerationConfirmation(1, GenerationChange.Restored, TimeSpan.FromMicroseconds(at - restoredAt)));
        Assert.That(driver.Core.LastIndex, Is.EqualTo(lastIndex + 1), "one entry once the fence opened again: the hold-off");
        Assert.That(table.GrantsFrom, Is.GreaterThan(foundingHoldOff));
        Assert.That(table.GrantsFrom - table.Now, Is.InRange((elastic.FenceHoldOffUs - 100_000 + elastic.ElectionTimeoutUs - elastic.ConfirmEveryUs - (2 * TickUs)) / 1000, (elastic.FenceHoldOffUs - 100_000 + elastic.ElectionTimeoutUs) / 1000),
            "the rest of the hold-off after the restore (100 ms before this run, up to a confirmation interval before the first answer) and an election timeout, from the hold-off entry's time");
    }

    private static void Append(NodeDriver driver, long sequence)
        => driver.Append(new DriverAppend(sequence, new EntryEnvelope(EntryPayloadKind.User, 0, driver.Id, driver.Incarnation, sequence, Encoding.UTF8.GetBytes($"a{sequence}")).Encode()) { DeadlineUs = long.MaxValue });

    /// <summary>One tick and what it readied; the claim it made, if any.</summary>
    private static (long Expected, long Claimed)? Step(NodeDriver driver, long now, Action<long, long>? onConfirm = null)
    {
        driver.Tick(now);
        var (confirm, claim) = (driver.Events.ConfirmGeneration, driver.Events.ClaimGeneration);
        driver.Events.Clear();
        if (confirm is { } c)
        {
            onConfirm?.Invoke(c.Generation, c.SentAtUs);
        }

        while (driver.TakeReady(now) is not null)
        {
            driver.Advance();
        }

        return claim;
    }
}
