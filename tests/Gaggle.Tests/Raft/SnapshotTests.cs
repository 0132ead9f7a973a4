using Gaggle.Raft;
using NUnit.Framework;

namespace Gaggle.Tests.Raft;

/// <summary>Raft §7: log compaction and InstallSnapshot in chunks, resumable after loss.</summary>
[TestFixture]
public sealed class SnapshotTests
{
    private sealed class Net
    {
        public Dictionary<string, RaftCore> Nodes { get; } = [];

        public Dictionary<string, List<RaftSnapshot>> Installed { get; } = [];

        public Func<RaftMessage, bool> Drop { get; set; } = _ => false;

        public List<RaftMessage> Delivered { get; } = [];

        public Net(int chunkBytes)
        {
            foreach (var id in new[] { "a", "b", "c" })
            {
                Nodes[id] = new RaftCore(
                    new RaftConfig { Id = id, Members = ["a", "b", "c"], BroadcastAppends = false, ElectionTicksMin = 10, ElectionTicksMax = 10 + (id[0] - 'a') * 5, HeartbeatTicks = 2, MaxBytesPerMessage = chunkBytes, Random = new Random(id[0]) },
                    HardState.Empty,
                    []);
                Installed[id] = [];
            }
        }

        public void Stabilize(int rounds = 50)
        {
            for (int i = 0; i < rounds; i++)
            {
                bool any = false;
                foreach (var (id, node) in Nodes)
                {
                    if (node.TakeReady() is not { } ready)
                    {
                        continue;
                    }

                    if (ready.Snapshot is { } snapshot)
                    {
                        Installed[id].Add(snapshot);
                    }

                    foreach (var message in ready.Messages)
                    {
                        any = true;
                        if (!Drop(message))
                        {
                            Delivered.Add(message);
                            Nodes[message.To!].Step(message);
                        }
                    }
                }

                if (!any)
                {
                    return;
                }
            }
        }

        public void Tick(int ticks)
        {
            for (int i = 0; i < ticks; i++)
            {
                foreach (var node in Nodes.Values)
                {
                    node.Tick();
                }

                Stabilize();
            }
        }
    }

    private static Net ClusterWithLeaderA(int chunkBytes)
    {
        var net = new Net(chunkBytes);
        for (int i = 0; i < 12 && net.Nodes["a"].Role != RaftRole.Leader; i++)
        {
            net.Nodes["a"].Tick();
            net.Stabilize();
        }

        Assert.That(net.Nodes["a"].Role, Is.EqualTo(RaftRole.Leader));
        return net;
    }

    [Test]
    public void ALaggingFollowerCatchesUpFromTheSnapshotInChunksAndResumesAfterALostChunk()
    {
        var net = ClusterWithLeaderA(chunkBytes: 100);
        var a = net.Nodes["a"];
        net.Drop = m => m.To == "c" || m.From == "c";
        for (int i = 0; i < 40; i++)
        {
            a.Propose([new byte[] { (byte)i }]);
            net.Stabilize();
        }

        long applied = a.AppliedIndex;
        var state = Enumerable.Range(0, 1000).Select(i => (byte)(i % 251)).ToArray();
        a.CompactTo(new RaftSnapshot(applied, a.TermAt(applied), state));
        Assert.That(a.Log.FirstIndex, Is.EqualTo(applied + 1), "Raft §7: the log before the snapshot is discarded");

        // Heal, but lose the third chunk once: the transfer must resume from where it stopped.
        int chunks = 0;
        bool lost = false;
        net.Drop = m =>
        {
            if (m.Type == MessageType.Snapshot && m.To == "c" && ++chunks == 3 && !lost)
            {
                lost = true;
                return true;
            }

            return false;
        };
        net.Tick(60);

        var c = net.Nodes["c"];
        Assert.That(lost, Is.True);
        Assert.That(net.Installed["c"], Has.Count.EqualTo(1));
        Assert.That(net.Installed["c"][0].Data.ToArray(), Is.EqualTo(state));
        Assert.That(net.Installed["c"][0].Index, Is.EqualTo(applied));
        Assert.That(net.Delivered.Where(m => m.Type == MessageType.Snapshot).Max(m => m.Data.Length), Is.LessThanOrEqualTo(100), "chunks are bounded by MaxBytesPerMessage");
        Assert.That(c.CommitIndex, Is.EqualTo(a.CommitIndex));
        Assert.That(c.Log.FirstIndex, Is.EqualTo(applied + 1));

        long next = a.Propose([new byte[] { 99 }]);
        net.Stabilize();
        Assert.That(c.CommitIndex, Is.EqualTo(next), "after the snapshot the follower replicates entries again");
    }

    [Test]
    public void AFollowerThatHoldsTheSnapshotsLastEntryFastForwardsInsteadOfRestoring()
    {
        var net = ClusterWithLeaderA(chunkBytes: 1 << 20);
        var a = net.Nodes["a"];
        for (int i = 0; i < 10; i++)
        {
            a.Propose([new byte[] { (byte)i }]);
        }

        net.Stabilize();
        long applied = a.AppliedIndex;
        var snapshot = new RaftSnapshot(applied, a.TermAt(applied), new byte[] { 1, 2, 3 });
        net.Nodes["b"].Step(new RaftMessage { Type = MessageType.Snapshot, From = "a", To = "b", Term = a.Term, Index = snapshot.Index, LogTerm = snapshot.Term, Data = snapshot.Data, Done = true });
        var ready = net.Nodes["b"].TakeReady();
        Assert.That(ready?.Snapshot, Is.Null, "b already holds every entry the snapshot covers");
    }

    /// <summary>
    /// One chunk in flight: a chunk goes out for an acknowledgement that moves the transfer forward,
    /// or a rejection that names another offset. Found by the simulation (a 5-node seed with 1-byte
    /// chunks): every delivered acknowledgement sent a chunk, so each duplicated one, or each chunk
    /// resent after a stall, kept one more chunk and answer circulating until the transfer ended
    /// (and a stale one moved the transfer back), until one round passed 50,000 deliveries.
    /// </summary>
    [Test]
    public void OnlyAnAcknowledgementThatMovesTheTransferOnOrARejectionSendsAChunk()
    {
        var net = ClusterWithLeaderA(chunkBytes: 10);
        var a = net.Nodes["a"];
        net.Drop = m => m.To == "c" || m.From == "c";
        for (int i = 0; i < 5; i++)
        {
            a.Propose([new byte[] { (byte)i }]);
            net.Stabilize();
        }

        long applied = a.AppliedIndex;
        a.CompactTo(new RaftSnapshot(applied, a.TermAt(applied), new byte[100]));
        long next = a.ProgressOf("c")!.Next;
        a.Step(Msg.AppendResponse("c", "a", a.Term, next - 1, reject: true, hint: 1));
        Assert.That(ChunksSent(), Is.EqualTo(new long[] { 0 }), "c's log is empty and the entries it needs are compacted");

        var acknowledged = SnapshotResponse(10);
        a.Step(acknowledged);
        Assert.That(ChunksSent(), Is.EqualTo(new long[] { 10 }));
        a.Step(acknowledged);
        Assert.That(ChunksSent(), Is.Empty, "a duplicated acknowledgement: the chunk it asks for is out already");

        a.Step(SnapshotResponse(20));
        Assert.That(ChunksSent(), Is.EqualTo(new long[] { 20 }));
        a.Step(acknowledged);
        Assert.That(ChunksSent(), Is.Empty, "a stale acknowledgement moves nothing back");

        a.Step(SnapshotResponse(0, reject: true));
        Assert.That(ChunksSent(), Is.EqualTo(new long[] { 0 }), "c lost what it had received: start over where it says");

        RaftMessage SnapshotResponse(long offset, bool reject = false) => new()
        {
            Type = MessageType.SnapshotResponse, From = "c", To = "a", Term = a.Term, Index = applied, Offset = offset, Reject = reject,
        };

        long[] ChunksSent() => a.TakeReady()?.Messages.Where(m => m.Type == MessageType.Snapshot).Select(m => m.Offset).ToArray() ?? [];
    }

    /// <summary>
    /// Found by the elastic simulation (seed 753): a newcomer of generation 2 received the first chunks
    /// of a snapshot at (3, term 2), paused, and then joined generation 3, whose leader sent its own
    /// snapshot at (3, term 2). The transfer resumed at the offset the first had reached, splicing the
    /// two clusters' snapshots; its state machines diverged. Chunks from another sender start over.
    /// </summary>
    [Test]
    public void ChunksFromAnotherSenderNeverContinueATransfer()
    {
        var b = new RaftCore(new RaftConfig { Id = "b", Members = ["a", "b", "c"], BroadcastAppends = false, Random = new Random(2) }, new HardState(2, null, 0), []);
        b.Step(new RaftMessage { Type = MessageType.Snapshot, From = "a", To = "b", Term = 2, Index = 3, LogTerm = 2, Offset = 0, Data = new byte[] { 1, 1, 1 } });
        b.TakeReady();

        b.Step(new RaftMessage { Type = MessageType.Snapshot, From = "c", To = "b", Term = 2, Index = 3, LogTerm = 2, Offset = 3, Data = new byte[] { 9, 9 }, Done = true });
        var ready = b.TakeReady();
        Assert.That(ready?.Snapshot, Is.Null, "nothing spliced from two senders is installed");
        Assert.That(ready!.Messages.Single(m => m.Type == MessageType.SnapshotResponse && m.To == "c"), Has.Property(nameof(RaftMessage.Offset)).EqualTo(0L).And.Property(nameof(RaftMessage.Reject)).True);

        b.Step(new RaftMessage { Type = MessageType.Snapshot, From = "c", To = "b", Term = 2, Index = 3, LogTerm = 2, Offset = 0, Data = new byte[] { 7, 7, 7 } });
        b.Step(new RaftMessage { Type = MessageType.Snapshot, From = "c", To = "b", Term = 2, Index = 3, LogTerm = 2, Offset = 3, Data = new byte[] { 9, 9 }, Done = true });
        Assert.That(b.TakeReady()?.Snapshot?.Data.ToArray(), Is.EqualTo(new byte[] { 7, 7, 7, 9, 9 }));
    }

    /// <summary>
    /// Found by the simulation (3-node discovery seed 2698): b held the snapshot's last entry 2 and an
    /// entry 3 of an older term than the leader's entry 3. Fast-forwarding to the snapshot, it
    /// acknowledged its whole log; the leader took entry 3 for replicated, committed its own, and b
    /// then committed and applied its conflicting entry 3. Only the snapshot's entries are vouched for.
    /// </summary>
    [Test]
    public void AFollowerFastForwardingToASnapshotAcknowledgesOnlyWhatTheSnapshotCovers()
    {
        var b = new RaftCore(
            new RaftConfig { Id = "b", Members = ["a", "b", "c"], BroadcastAppends = false, Random = new Random(2) },
            new HardState(3, null, 1),
            [new LogEntry(1, 1, EntryKind.NoOp, default), new LogEntry(2, 1, EntryKind.Normal, new byte[] { 2 }), new LogEntry(3, 2, EntryKind.Normal, new byte[] { 3 })]);

        b.Step(new RaftMessage { Type = MessageType.Snapshot, From = "a", To = "b", Term = 3, Index = 2, LogTerm = 1, Data = new byte[] { 9 }, Done = true });

        var ready = b.TakeReady()!;
        Assert.That(ready.Snapshot, Is.Null, "b holds entry 2 of term 1: it keeps its log");
        var acknowledgement = ready.Messages.Single(m => m.Type == MessageType.AppendResponse);
        Assert.That((acknowledgement.Reject, acknowledgement.Index), Is.EqualTo((false, 2L)), "b's entry 3 was never checked against the leader's");
    }

    [Test]
    public void CompactionRefusesWhatIsNotAppliedOrDoesNotMatch()
    {
        var net = ClusterWithLeaderA(chunkBytes: 1 << 20);
        var a = net.Nodes["a"];
        a.Propose([new byte[] { 1 }]);
        Assert.Throws<ArgumentException>(() => a.CompactTo(new RaftSnapshot(a.LastIndex, a.Term, Array.Empty<byte>())), "not applied yet");
        net.Stabilize();
        Assert.Throws<ArgumentException>(() => a.CompactTo(new RaftSnapshot(a.AppliedIndex, a.Term + 5, Array.Empty<byte>())), "wrong term");
    }
}
