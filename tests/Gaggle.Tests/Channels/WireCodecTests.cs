using Gaggle.Channels;
using Gaggle.Raft;
using Gaggle.Runtime;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Channels;

[TestFixture]
public sealed class WireCodecTests
{
    [Test]
    public void RaftMessageRoundTrips()
    {
        var message = new RaftMessage
        {
            Type = MessageType.Append, From = "a", To = "b", Term = 7, LogTerm = 6, Index = 41, Commit = 40,
            Reject = true, Force = true, RejectHint = 12,
            Entries = [new LogEntry(42, 6, EntryKind.NoOp, ReadOnlyMemory<byte>.Empty), new LogEntry(43, 7, EntryKind.Normal, new byte[] { 1, 2, 3 })],
        };
        var decoded = ((RaftWireMessage)WireCodec.Decode(WireCodec.Encode(new RaftWireMessage(message)), "a", "b")).Message;
        Assert.That(decoded.ToString(), Is.EqualTo(message.ToString()));
        Assert.That(decoded.Entries.Select(e => (e.Index, e.Term, e.Kind, e.Data.ToArray())),
            Is.EqualTo(message.Entries.Select(e => (e.Index, e.Term, e.Kind, e.Data.ToArray()))));
    }

    [TestCase((byte)MessageType.AppendResponse)]
    [TestCase((byte)MessageType.Heartbeat)]
    [TestCase((byte)MessageType.HeartbeatResponse)]
    public void AcknowledgementsHeartbeatsAndTheirAnswersCarryTheRunTheyBelongTo(byte type)
    {
        var message = new RaftMessage { Type = (MessageType)type, From = "a", To = "b", Term = 7, Index = 41, Commit = 40, RejectHint = 3, Incarnation = ulong.MaxValue - 1 };
        var decoded = ((RaftWireMessage)WireCodec.Decode(WireCodec.Encode(new RaftWireMessage(message)), "a", "b")).Message;
        Assert.That(decoded.Incarnation, Is.EqualTo(ulong.MaxValue - 1));
        Assert.That(decoded.ToString(), Is.EqualTo(message.ToString()));
    }

    [Test]
    public void A_broadcast_raft_message_decodes_as_a_broadcast_and_a_direct_one_as_addressed_to_the_receiver()
    {
        var notice = new RaftMessage { Type = MessageType.CommitNotice, From = "a", To = null, Term = 3, Commit = 9 };
        Assert.That(((RaftWireMessage)WireCodec.Decode(WireCodec.Encode(new RaftWireMessage(notice)), "a", "b")).Message.To, Is.Null);
        var direct = new RaftMessage { Type = MessageType.CommitNotice, From = "a", To = "b", Term = 3, Commit = 9 };
        Assert.That(((RaftWireMessage)WireCodec.Decode(WireCodec.Encode(new RaftWireMessage(direct)), "a", "b")).Message.To, Is.EqualTo("b"));
    }

    [Test]
    public void RuntimeMessagesRoundTrip()
    {
        var request = new DispatchRequest(99, 5, "sum", new byte[] { 9 });
        var decodedRequest = (DispatchRequest)WireCodec.Decode(WireCodec.Encode(request), "a", "b");
        Assert.That((decodedRequest.Incarnation, decodedRequest.CallId, decodedRequest.Method, decodedRequest.Args.ToArray()), Is.EqualTo((99UL, 5L, "sum", new byte[] { 9 })));
        var reply = new DispatchReply(99, 5, DispatchStatus.HandlerFailed, ReadOnlyMemory<byte>.Empty, "boom é");
        var decodedReply = (DispatchReply)WireCodec.Decode(WireCodec.Encode(reply), "b", "a");
        Assert.That((decodedReply.Status, decodedReply.Error), Is.EqualTo((DispatchStatus.HandlerFailed, "boom é")));
        var forward = new ForwardAppend([new byte[] { 1 }, new byte[] { 2, 3 }], 4242);
        var decodedForward = (ForwardAppend)WireCodec.Decode(WireCodec.Encode(forward), "a", "b");
        Assert.That(decodedForward.Entries.Select(e => e.ToArray()), Is.EqualTo(new[] { new byte[] { 1 }, new byte[] { 2, 3 } }));
        Assert.That(decodedForward.Admission, Is.EqualTo(4242));
    }

    [Test]
    public void EntryEnvelopeRoundTrips()
    {
        var envelope = new EntryEnvelope(EntryPayloadKind.Lock, 77, "node-a", ulong.MaxValue, 12345, new byte[] { 7, 8 });
        Assert.That(EntryEnvelope.TryDecode(envelope.Encode(), out var decoded), Is.True);
        Assert.That((decoded.Kind, decoded.Stamp, decoded.Origin, decoded.Incarnation, decoded.Sequence, decoded.Payload.ToArray()), Is.EqualTo((EntryPayloadKind.Lock, 77L, "node-a", ulong.MaxValue, 12345L, new byte[] { 7, 8 })));
        Assert.That(EntryEnvelope.TryDecode(EntryEnvelope.WithStamp(envelope.Encode(), 99), out var stamped) && stamped.Stamp == 99 && stamped.Origin == "node-a", Is.True);
        Assert.That(EntryEnvelope.TryDecode(new byte[] { 9, 9 }, out _), Is.False);
    }

    [TestCase(new byte[0], "truncated")]
    [TestCase(new byte[] { 7, 0, 1 }, "Unsupported wire version 7")]
    [TestCase(new byte[] { 5, 0, 1 }, "Unsupported wire version 5")]
    [TestCase(new byte[] { 4, 0, 1 }, "Unsupported wire version 4")]
    [TestCase(new byte[] { 6, 0, 77 }, "Unknown message kind 77")]
    [TestCase(new byte[] { 6, 0, 1, 99 }, "Unknown Raft message type 99")]
    [TestCase(new byte[] { 6, 0, 1, 5, 1, 1, 1, 1, 0, 0, 200, 1 }, "Count 200 exceeds")]
    [TestCase(new byte[] { 6, 0, 1, 5, 1, 1, 1, 1, 0, 0, 0, 0 }, "trailing bytes")]
    [TestCase(new byte[] { 6, 0, 2, 0, 1, 50 }, "Length 50")]
    [TestCase(new byte[] { 6, 0, 1, 5, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1 }, "Varint longer than 10 bytes")]
    [TestCase(new byte[] { 6, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1, 8, 1 }, "out of range")]
    [TestCase(new byte[] { 6, 255, 255, 255, 255, 255, 255, 255, 16, 8, 1 }, "cluster generation id")]
    public void MalformedPayloadsAreFormatErrors(byte[] payload, string expected)
    {
        var error = Assert.Throws<FormatException>(() => WireCodec.Decode(payload, "x", "y"));
        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public void RandomGarbageNeverThrowsAnythingButFormatException()
    {
        var random = new Random(5);
        for (int i = 0; i < 20000; i++)
        {
            var payload = new byte[random.Next(0, 40)];
            random.NextBytes(payload);
            if (payload.Length > 0)
            {
                payload[0] = WireCodec.Version;
            }

            try
            {
                WireCodec.Decode(payload, "x", "y");
            }
            catch (FormatException)
            {
            }
        }

        Assert.Pass("20000 random payloads decoded or were refused with FormatException");
    }

    [Test]
    public async Task NodesSurviveGarbageFromMembersAndStrangers()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var stranger = cluster.Network.CreateChannel("mallory");
        await stranger.ConnectAsync(_ => { });
        var random = new Random(3);
        for (int i = 0; i < 2000; i++)
        {
            var payload = new byte[random.Next(1, 64)];
            random.NextBytes(payload);
            payload[0] = 1;
            await stranger.BroadcastAsync(payload);
        }

        var forgedVote = WireCodec.Encode(new RaftWireMessage(new RaftMessage { Type = MessageType.Vote, From = "mallory", Term = 1000, Index = 1000, LogTerm = 1000 }));
        await stranger.BroadcastAsync(forgedVote);
        await leader.AppendAsync("still-alive"u8.ToArray(), TimeSpan.FromSeconds(10));
        await cluster.WaitForCommittedEverywhereAsync("still-alive");
        Assert.That(cluster.Nodes.Values.Sum(n => n.DroppedMessages), Is.GreaterThan(0));
        Assert.That(leader.Term, Is.LessThan(1000), "a non-member cannot move the term");
    }
}
