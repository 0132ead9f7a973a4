using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// Bugs the simulation found: the seed that exposed each one (replayed as it ran then, with the
/// workload of that time: no lock reads; a later change to the harness or the core may route the
/// seed elsewhere, so each also has a focused script of the cluster's life that does not depend on
/// the harness).
/// </summary>
[TestFixture]
[Category("Simulation")]
public sealed class SimulationRegressionTests
{
    [TestCase(908, 5, false, TestName = "Seed 908 (5 nodes): a reply to a stale append acknowledged the replier's whole log")]
    [TestCase(2120, 3, true, TestName = "Seed 2120 (3 nodes, discovery): a reply to a stale append acknowledged the replier's whole log")]
    [TestCase(10, 3, true, TestName = "Seed 10 (3 nodes, discovery): a member discovered after the election was never probed")]
    [TestCase(494, 3, false, TestName = "Seed 494 (3 nodes): a stale leader counted a rejoining node's acknowledgement and committed over a committed entry")]
    [TestCase(1659, 5, false, TestName = "Seed 1659 (5 nodes): a rejoining node committed its stale entry on a heartbeat's word")]
    [TestCase(1349, 5, false, TestName = "Seed 1349 (5 nodes, lossy storage): a follower committed on an acknowledgement of a voter that then lost its tail, and the rejoining voter caught up only to the leader's commit index")]
    [TestCase(2698, 3, true, TestName = "Seed 2698 (3 nodes, discovery): a follower fast-forwarding to a snapshot acknowledged its unchecked entries after it")]
    [TestCase(228, 3, true, TestName = "Seed 228 (3 nodes, discovery, no check-quorum): two leaders trusted their leadership lease at once")]
    [TestCase(48, 5, false, true, TestName = "Seed 48 (5 initial voters, membership changes): a leader whose own removal was not committed stepped down and never campaigned again, while the other voters needed its vote")]
    [TestCase(30, 1, false, true, TestName = "Seed 30 (1 initial voter, membership changes): a learner promoted by an entry it lacked ignored the candidate that needed its vote, for ever")]
    [TestCase(198, 5, false, true, true, TestName = "Seed 198 (5 initial voters, autopilot): a new leader demoted a live voter while two voters were dead, leaving a configuration that could never commit")]
    [TestCase(186, 3, false, true, true, TestName = "Seed 186 (3 initial voters, autopilot): a joining node whose addition a deposed leader had logged never announced itself again")]
    public void SeedThatOnceFailedNowPasses(int seed, int size, bool discovery, bool membership = false, bool autopilot = false)
    {
        var failure = Simulator.RunAndExplain(seed, new ClusterShape(size, discovery, membership, autopilot), lockReads: false);

        Assert.That(failure, Is.Null, () => failure!.Report());
    }

    /// <summary>
    /// Elastic runs (<see cref="ClusterShape.ElasticOf"/>, the shape of <see cref="RaftSimulationTests.ElasticGenerationsUnheardPastTheFoundingWait"/>
    /// without its long silences) that failed before the fixes to the founding of a generation; the
    /// scripts of each are in Runtime.GenerationClaimTests.
    /// </summary>
    [TestCase(52, 3, TestName = "Elastic seed 52 (3 instances): a newcomer that took the term of a cluster it never joined threw when it founded the next generation")]
    [TestCase(130, 1, TestName = "Elastic seed 130 (1 instance): a newcomer that took the term of a cluster it never joined threw when it founded the next generation")]
    [TestCase(62, 3, TestName = "Elastic seed 62 (3 instances): a newcomer paused past the member timeout counted the pause as silence and founded a generation beside the live one")]
    [TestCase(155, 1, TestName = "Elastic seed 155 (1 instance): a newcomer paused past the member timeout counted the pause as silence and founded a generation beside the live one")]
    [TestCase(110, 1, TestName = "Elastic seed 110 (1 instance): a newcomer founded although it heard the live leader while its claim was on its way; two leaders trusted their leadership")]
    [TestCase(131, 2, TestName = "Elastic seed 131 (2 instances): a generation founded beside the live one granted a lock its holder in the live one still held")]
    [TestCase(2766, 1, TestName = "Elastic seed 2766 (1 instance): a learner that started over while still a member rejoined from a log ending in the founding configuration and, acknowledging nothing, was sent its first entry for ever")]
    [TestCase(238, 4, TestName = "Elastic seed 238 (4 instances, a Redis outage): a newcomer that waited through the outage claimed as soon as Redis was back and founded a generation beside the live one; two leaders trusted their leadership")]
    public void ElasticSeedThatOnceFailedNowPasses(int seed, int instances)
    {
        var failure = Simulator.RunAndExplain(seed, ClusterShape.ElasticOf(instances), lockReads: false);

        Assert.That(failure, Is.Null, () => failure!.Report());
    }

    /// <summary>
    /// Seeds of the unheard-generations run (<see cref="RaftSimulationTests.ElasticGenerationsUnheardPastTheFoundingWait"/>: 1 + seed % 5 instances, with lock reads)
    /// that once failed. The first ones were found before the store lost its value while instances ran and
    /// before generation ids had tags, so they now follow other trajectories. On today's code, 32 fails
    /// with the founder's tag dropped, 40 with the rival check dropped, 28 with a hold-off entry applied after the expiries it finds due, 2852 failed before the learner fix.
    /// </summary>
    [TestCase(7, TestName = "Seed 7 of the unheard-generations run (3 instances): without the generation fence, a leader of generation 1 that newcomers could not hear and the founder of generation 2 both trusted their leadership")]
    [TestCase(307, TestName = "Seed 307 of the unheard-generations run (3 instances): without the settle time of a node that changed the generation key, a leader whose last confirmation preceded the claim and the founder of the next generation both trusted their leadership")]
    [TestCase(618, TestName = "Seed 618 of the unheard-generations run (4 instances): with one confirmation at a time and a store slower than the fence, the leader's fence opened for milliseconds at a time and a follower's append never got through")]
    [TestCase(240, TestName = "Seed 240 of the unheard-generations run (1 instance): a learner removed (committed), added back, then told 'not a member' from the removal before it heard of its addition started over; the checker took that for a premature removal")]
    [TestCase(2146, TestName = "Seed 2146 of the unheard-generations run (2 instances): a voter removed while paused resumed still a voter in its own eyes after the cluster lost two of its three voters; the simulated operator took it for a live majority and never stepped in")]
    [TestCase(2351, TestName = "Seed 2351 of the unheard-generations run (2 instances): a learner whose own log committed its removal started over after it had been added back; the checker took that for a premature removal")]
    [TestCase(28, TestName = "Seed 28 of the unheard-generations run (4 instances): a leader that wrote a lost generation key back logged a hold-off, and the expiry that entry found due granted the lock to the next waiter at that very entry, before the hold-off took effect")]
    [TestCase(32, TestName = "Seed 32 of the unheard-generations run (3 instances): without the founder's tag in generation ids, a newcomer founded generation 1 again on a key Redis had lost while the first generation 1 lived on unheard")]
    [TestCase(40, TestName = "Seed 40 of the unheard-generations run (1 instance): without the rival check, members of a generation founded again under the same number never learnt from the key that the other one lives and never joined it")]
    [TestCase(2852, TestName = "Seed 2852 of the unheard-generations run (3 instances): a learner paused past the member timeout dropped its copy the moment it resumed though it had been promoted meanwhile, and its generation lost the majority of the new configuration")]
    public void SeedOfTheUnheardGenerationsRunThatOnceFailedNowPasses(int seed)
    {
        var failure = Simulator.RunAndExplain(seed, ClusterShape.ElasticOf(1 + (seed % 5), unheardGenerations: true));

        Assert.That(failure, Is.Null, () => failure!.Report());
    }

    /// <summary>Seeds of the three- and five-node runs (<see cref="ClusterShape.ForSeed"/>: these are elastic runs, with lock reads) that once failed.</summary>
    [TestCase(2694, 5, TestName = "Seed 2694 of the five-node run (4 instances, elastic): a learner removed while paused and added again before it had caught up with its removal started over on replaying it")]
    [TestCase(1698, 3, TestName = "Seed 1698 of the three-node run (5 instances, elastic): no live voter could win an election (the most up-to-date one held a configuration whose new voter had died) and the operator, seeing a live majority in the others' configuration, never stepped in")]
    public void SeedOfTheMainRunsThatOnceFailedNowPasses(int seed, int size)
    {
        var failure = Simulator.RunAndExplain(seed, ClusterShape.ForSeed(seed, size));

        Assert.That(failure, Is.Null, () => failure!.Report());
    }

    /// <summary>Seeds of the elastic run (<see cref="RaftSimulationTests.ElasticClusterStaysSafeAndMakesProgress"/>: 1 + seed % 5 instances, with lock reads) that once failed.</summary>
    [TestCase(599, TestName = "Seed 599 of the elastic run (5 instances): a learner removed while paused and added again heard the leader's 'not a member', sent before it was added again, after the leader had replicated to it, and started over")]
    [TestCase(1620, TestName = "Seed 1620 of the elastic run (1 instance): a learner added back while catching up heard only the leader's heartbeats (its probes rejected) and took a late 'not a member', sent before it was added back, for its removal")]
    [TestCase(753, TestName = "Seed 753 of the elastic run (4 instances): a newcomer that adopted generation 3 resumed a snapshot transfer generation 2 had begun at the same (index, term), splicing the two snapshots; the state machines diverged")]
    [TestCase(653, TestName = "Seed 653 of the elastic run (4 instances): a node that began a rejoin in generation 2 (a leader took it for a member that lost its log) founded generation 3 still rejoining, never campaigned, and the cluster never elected a leader")]
    [TestCase(209, TestName = "Seed 209 of the elastic run (5 instances): a generation forced on a stranded voter kept retried copies of another node's append in the tail it moved behind its configuration, which made the duplicate table forget that node; the append applied twice")]
    public void SeedOfTheElasticRunThatOnceFailedNowPasses(int seed)
    {
        var failure = Simulator.RunAndExplain(seed, ClusterShape.ElasticOf(1 + (seed % 5)));

        Assert.That(failure, Is.Null, () => failure!.Report());
    }

    /// <summary>
    /// Raft §5.1 and Figure 2 ("reply false if term &lt; currentTerm"): n2, already in term 3, answers a
    /// stale term-2 append. n1, elected in term 3 with a different entry 2, must not take that answer
    /// for an acknowledgement of n2's log: doing so committed n1's entry 2 over n2's, and n2 then
    /// applied its own conflicting entry 2 when told the commit index.
    /// </summary>
    [Test]
    public void AReplyToAStaleAppendAcknowledgesNothing()
    {
        var n2 = new RaftCore(Config("n2"), new HardState(3, null, 0), [new LogEntry(1, 1, EntryKind.NoOp, default), new LogEntry(2, 2, EntryKind.NoOp, default)]);
        n2.Step(new RaftMessage { Type = MessageType.Append, From = "n3", To = "n2", Term = 2, Index = 2, LogTerm = 2, Commit = 0 });
        var reply = n2.TakeReady()!.Messages.Single(m => m.To == "n3");

        Assert.That(reply.Type, Is.EqualTo(MessageType.AppendResponse));
        Assert.That(reply.Term, Is.EqualTo(3));

        // n1 wins term 3 with n3's vote: its log is [1/t1, 2/t3 no-op], which n2 does not hold.
        var n1 = new RaftCore(Config("n1"), new HardState(2, null, 0), [new LogEntry(1, 1, EntryKind.NoOp, default)]);
        for (int i = 0; i < 10 && n1.Role != RaftRole.Candidate; i++)
        {
            n1.Tick();
        }

        n1.Step(new RaftMessage { Type = MessageType.VoteResponse, From = "n3", To = "n1", Term = 3 });
        Assert.That(n1.Role, Is.EqualTo(RaftRole.Leader));
        n1.TakeReady();

        // The same answer, as if n2 had sent it to n1 (say, to n1's append from an earlier term).
        n1.Step(new RaftMessage
        {
            Type = reply.Type, From = "n2", To = "n1", Term = reply.Term, Index = reply.Index, Reject = reply.Reject,
            RejectHint = reply.RejectHint, LogTerm = reply.LogTerm,
        });

        Assert.That(n1.ProgressOf("n2")!.Match, Is.Zero);
        Assert.That(n1.CommitIndex, Is.Zero);
        Assert.That(reply.Reject, Is.True, "Figure 2: reply false if term < currentTerm");
    }

    /// <summary>
    /// Discovery mode: n1 is elected by n2 before it has heard of n3. When n3 answers n1's broadcast
    /// heartbeat, n1 learns it with next = last index + 1 and nothing to send; it must still probe
    /// n3 (an empty append) so that n3's log catches up.
    /// </summary>
    [Test]
    public void AMemberDiscoveredAfterTheElectionIsProbedAndCatchesUp()
    {
        var nodes = new[] { "n1", "n2", "n3" }.ToDictionary(id => id, id => new RaftCore(Config(id, discovery: true), HardState.Empty, []));
        var n1 = nodes["n1"];
        for (int i = 0; i < 10 && n1.Role != RaftRole.Candidate; i++)
        {
            n1.Tick();
        }

        Exchange(nodes, reachable: ["n1", "n2"]);
        Assert.That(n1.Role, Is.EqualTo(RaftRole.Leader));
        Assert.That(n1.Propose([new byte[] { 1 }]), Is.EqualTo(2));
        Exchange(nodes, reachable: ["n1", "n2"]);

        for (int i = 0; i < 3; i++)
        {
            n1.Tick();
        }

        Exchange(nodes, reachable: ["n1", "n2", "n3"]);

        Assert.That(nodes["n3"].LastIndex, Is.EqualTo(2));
        Assert.That(nodes["n3"].CommitIndex, Is.EqualTo(2));
    }

    private static RaftConfig Config(string id, bool discovery = false) => new()
    {
        Id = id,
        Members = discovery ? null : ["n1", "n2", "n3"],
        ClusterSize = discovery ? 3 : 0,
        ElectionTicksMin = 10,
        ElectionTicksMax = 10,
        HeartbeatTicks = 3,
        PreVote = false,
        Random = new Random(1),
    };

    /// <summary>Delivers messages among <paramref name="reachable"/> nodes until none is left; the rest are lost.</summary>
    private static void Exchange(Dictionary<string, RaftCore> nodes, string[] reachable)
    {
        var queue = new Queue<(string To, RaftMessage Message)>();
        bool any = true;
        while (any || queue.Count > 0)
        {
            any = false;
            foreach (var id in reachable)
            {
                foreach (var message in nodes[id].TakeReady()?.Messages ?? [])
                {
                    foreach (var to in reachable.Where(to => to != id && (message.To is null || message.To == to)))
                    {
                        queue.Enqueue((to, message));
                    }
                }
            }

            while (queue.TryDequeue(out var next))
            {
                nodes[next.To].Step(next.Message);
                any = true;
            }
        }
    }
}
