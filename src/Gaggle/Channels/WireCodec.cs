using System.Diagnostics;
using Gaggle.Raft;

namespace Gaggle.Channels;

/// <summary>
/// The compact, versioned binary format of <see cref="WireMessage"/>s: a version byte, the sender's
/// cluster generation id (a varint, number and founder's tag: see <see cref="GenerationIds"/>; 0
/// outside elastic mode or before it belongs to a cluster), a kind
/// byte, then the kind's fields as varints and length-prefixed bytes. Log entries inside an AppendEntries
/// carry no index (it follows from prevLogIndex), so a message cannot describe a log with gaps.
/// </summary>
internal static class WireCodec
{
    /// <summary>
    /// 3: forwarded appends carry the sender's admission. 4: the generation is an id (number and
    /// founder's tag). 5: the lock table ends the waits of removed members and of a restarted node's
    /// earlier process (a replica of version 4 would apply the same log differently). 6: acknowledgements,
    /// heartbeats and their answers name a run of the node (<see cref="RaftMessage.Incarnation"/>).
    /// </summary>
    public const byte Version = 6;

    private const byte KindRaft = 1;
    private const byte KindForwardAppend = 2;
    private const byte KindDispatchRequest = 3;
    private const byte KindDispatchReply = 4;
    private const byte KindJoinAnnounce = 5;
    private const byte KindJoinRefused = 6;
    private const byte KindNotAMember = 7;
    private const byte KindVoterAnnounce = 8;
    private const byte KindTraceContexts = 9;
    private const byte FlagReject = 1;
    private const byte FlagForce = 2;
    private const byte FlagDone = 4;

    /// <summary>The Raft message went to every node (To = null): a receiver must know it was not meant for it alone.</summary>
    private const byte FlagBroadcast = 8;

    public static byte[] Encode(WireMessage message) => Encode(message, 0);

    /// <summary>Encodes <paramref name="message"/> sent by a node of cluster generation <paramref name="generation"/>.</summary>
    public static byte[] Encode(WireMessage message, long generation)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        var writer = new WireWriter(EstimateSize(message));
        writer.Byte(Version);
        writer.VarLong(generation);
        switch (message)
        {
            case RaftWireMessage raft:
                writer.Byte(KindRaft);
                EncodeRaft(writer, raft.Message);
                break;
            case ForwardAppend forward:
                writer.Byte(KindForwardAppend);
                writer.VarLong(forward.Admission);
                writer.VarUInt((ulong)forward.Entries.Count);
                foreach (var entry in forward.Entries)
                {
                    writer.Bytes(entry.Span);
                }

                break;
            case TraceContexts traces:
                writer.Byte(KindTraceContexts);
                EncodeTraces(writer, traces.Appends);
                EncodeTraces(writer, traces.Calls);
                break;
            case DispatchRequest request:
                writer.Byte(KindDispatchRequest);
                writer.VarUInt(request.Incarnation);
                writer.VarLong(request.CallId);
                writer.String(request.Method);
                writer.Bytes(request.Args.Span);
                break;
            case DispatchReply reply:
                writer.Byte(KindDispatchReply);
                writer.VarUInt(reply.Incarnation);
                writer.VarLong(reply.CallId);
                writer.Byte((byte)reply.Status);
                writer.Bytes(reply.Result.Span);
                writer.String(reply.Error);
                break;
            case JoinAnnounce join:
                writer.Byte(KindJoinAnnounce);
                writer.VarUInt(join.Fingerprint);
                break;
            case JoinRefused refused:
                writer.Byte(KindJoinRefused);
                writer.VarUInt(refused.Fingerprint);
                break;
            case NotAMember notAMember:
                writer.Byte(KindNotAMember);
                writer.VarLong(notAMember.ConfigurationIndex);
                break;
            case VoterAnnounce announce:
                writer.Byte(KindVoterAnnounce);
                writer.VarLong(announce.Term);
                writer.Byte(announce.Leads ? (byte)1 : (byte)0);
                break;
            default:
                throw new ArgumentException($"Unknown wire message type {message.GetType().Name}.", nameof(message));
        }

        return writer.ToArray();
    }

    /// <summary>The bytes an entry of <paramref name="length"/> bytes takes inside a <see cref="ForwardAppend"/>: its length prefix and itself.</summary>
    public static int ForwardedEntrySize(int length) => VarInt.Size((ulong)length) + length;

    /// <summary>Decodes a payload sent by <paramref name="from"/> to <paramref name="to"/>; throws <see cref="FormatException"/> when malformed.</summary>
    public static WireMessage Decode(ReadOnlyMemory<byte> payload, string from, string to) => Decode(payload, from, to, out _);

    /// <summary>Decodes a payload and the sender's cluster generation; throws <see cref="FormatException"/> when malformed.</summary>
    public static WireMessage Decode(ReadOnlyMemory<byte> payload, string from, string to, out long generation)
    {
        var reader = new WireReader(payload);
        byte version = reader.Byte();
        if (version != Version)
        {
            throw new FormatException($"Unsupported wire version {version}; this node speaks version {Version}.");
        }

        generation = reader.VarLong();
        if (!GenerationIds.IsValid(generation))
        {
            throw new FormatException($"The sender's cluster generation id is {generation}; it must be 0 or an id below 2^52 whose number is at most {GenerationIds.MaxNumber}.");
        }

        byte kind = reader.Byte();
        WireMessage message;
        switch (kind)
        {
            case KindRaft:
                message = new RaftWireMessage(DecodeRaft(ref reader, from, to));
                break;
            case KindForwardAppend:
                long admission = reader.VarLong();
                if (admission < 0)
                {
                    throw new FormatException($"A forward's admission is {admission}; it must be a configuration index (0 or more).");
                }

                int count = CheckedCount(reader.VarUInt(), ref reader);
                var entries = new ReadOnlyMemory<byte>[count];
                for (int i = 0; i < count; i++)
                {
                    entries[i] = reader.Bytes();
                }

                message = new ForwardAppend(entries, admission);
                break;
            case KindTraceContexts:
                message = new TraceContexts(DecodeTraces(ref reader), DecodeTraces(ref reader));
                break;
            case KindDispatchRequest:
                message = new DispatchRequest(reader.VarUInt(), reader.VarLong(), reader.String(), reader.Bytes());
                break;
            case KindDispatchReply:
                ulong incarnation = reader.VarUInt();
                long callId = reader.VarLong();
                byte status = reader.Byte();
                if (status > (byte)DispatchStatus.NotLeader)
                {
                    throw new FormatException($"Unknown dispatch status {status}.");
                }

                message = new DispatchReply(incarnation, callId, (DispatchStatus)status, reader.Bytes(), reader.String());
                break;
            case KindJoinAnnounce:
                message = new JoinAnnounce(reader.VarUInt());
                break;
            case KindJoinRefused:
                message = new JoinRefused(reader.VarUInt());
                break;
            case KindNotAMember:
                message = new NotAMember(reader.VarLong());
                break;
            case KindVoterAnnounce:
                message = new VoterAnnounce(reader.VarLong(), reader.Byte() != 0);
                break;
            default:
                throw new FormatException($"Unknown message kind {kind}.");
        }

        reader.End();
        return message;
    }

    /// <summary>An upper estimate of the encoded size, so the buffer is allocated once (no doubling, no copies).</summary>
    private static int EstimateSize(WireMessage message)
    {
        long size = 64;
        switch (message)
        {
            case RaftWireMessage raft:
                size += raft.Message.Data.Length;
                foreach (var entry in raft.Message.Entries)
                {
                    size += entry.Data.Length + 16;
                }

                break;
            case ForwardAppend forward:
                foreach (var entry in forward.Entries)
                {
                    size += entry.Length + 5;
                }

                break;
            case DispatchRequest request:
                size += request.Args.Length + (request.Method.Length * 3);
                break;
            case TraceContexts traces:
                size += (traces.Appends.Count + traces.Calls.Count) * 40;
                break;
            case DispatchReply reply:
                size += reply.Result.Length + (reply.Error.Length * 3);
                break;
        }

        return (int)Math.Min(size, int.MaxValue);
    }

    private static void EncodeTraces(WireWriter writer, IReadOnlyList<TracedRequest> traces)
    {
        writer.VarUInt((ulong)traces.Count);
        Span<byte> id = stackalloc byte[16];
        foreach (var trace in traces)
        {
            writer.VarLong(trace.Id);
            trace.Context.TraceId.CopyTo(id);
            writer.Bytes(id);
            trace.Context.SpanId.CopyTo(id[..8]);
            writer.Bytes(id[..8]);
            writer.Byte((byte)trace.Context.TraceFlags);
        }
    }

    private static TracedRequest[] DecodeTraces(ref WireReader reader)
    {
        ulong announced = reader.VarUInt();
        if (announced > (ulong)reader.Remaining / 28)
        {
            throw new FormatException($"A message names {announced} trace contexts in {reader.Remaining} bytes; each takes at least 28.");
        }

        var traces = new TracedRequest[(int)announced];
        int count = traces.Length;
        for (int i = 0; i < count; i++)
        {
            long id = reader.VarLong();
            var traceId = reader.Bytes();
            var spanId = reader.Bytes();
            if (traceId.Length != 16 || spanId.Length != 8)
            {
                throw new FormatException($"A trace context has a trace id of {traceId.Length} bytes and a span id of {spanId.Length}; they must be 16 and 8 bytes.");
            }

            if (!traceId.Span.ContainsAnyExcept((byte)0) || !spanId.Span.ContainsAnyExcept((byte)0))
            {
                throw new FormatException("A trace context has an all-zero trace id or span id (W3C trace context forbids both).");
            }

            var context = new ActivityContext(ActivityTraceId.CreateFromBytes(traceId.Span), ActivitySpanId.CreateFromBytes(spanId.Span), (ActivityTraceFlags)(reader.Byte() & 1), isRemote: true);
            traces[i] = new TracedRequest(id, context);
        }

        return traces;
    }

    private static void EncodeRaft(WireWriter writer, RaftMessage message)
    {
        writer.Byte((byte)message.Type);
        writer.VarLong(message.Term);
        writer.VarLong(message.LogTerm);
        writer.VarLong(message.Index);
        writer.VarLong(message.Commit);
        writer.Byte((byte)((message.Reject ? FlagReject : 0) | (message.Force ? FlagForce : 0) | (message.Done ? FlagDone : 0) | (message.To is null ? FlagBroadcast : 0)));
        writer.VarLong(message.RejectHint);
        if (message.Type is MessageType.Snapshot or MessageType.SnapshotResponse)
        {
            writer.VarLong(message.Offset);
            writer.Bytes(message.Data.Span);
        }

        if (CarriesIncarnation(message.Type))
        {
            writer.VarUInt(message.Incarnation);
        }

        writer.VarUInt((ulong)message.Entries.Count);
        foreach (var entry in message.Entries)
        {
            writer.VarLong(entry.Term);
            writer.Byte((byte)entry.Kind);
            writer.Bytes(entry.Data.Span);
        }
    }

    private static RaftMessage DecodeRaft(ref WireReader reader, string from, string to)
    {
        byte type = reader.Byte();
        if (type < (byte)MessageType.PreVote || type > (byte)MessageType.TermReport)
        {
            throw new FormatException($"Unknown Raft message type {type}.");
        }

        long term = reader.VarLong();
        long logTerm = reader.VarLong();
        long index = reader.VarLong();
        long commit = reader.VarLong();
        byte flags = reader.Byte();
        long rejectHint = reader.VarLong();
        long offset = 0;
        var data = ReadOnlyMemory<byte>.Empty;
        if (type is (byte)MessageType.Snapshot or (byte)MessageType.SnapshotResponse)
        {
            offset = reader.VarLong();
            data = reader.Bytes();
        }

        ulong incarnation = CarriesIncarnation((MessageType)type) ? reader.VarUInt() : 0;

        int count = CheckedCount(reader.VarUInt(), ref reader);
        if (count > 0 && index > long.MaxValue - count)
        {
            throw new FormatException($"Entry indexes overflow after prevLogIndex {index}.");
        }

        var entries = count == 0 ? [] : new LogEntry[count];
        for (int i = 0; i < count; i++)
        {
            long entryTerm = reader.VarLong();
            byte entryKind = reader.Byte();
            if (entryKind > (byte)EntryKind.Configuration)
            {
                throw new FormatException($"Unknown entry kind {entryKind}.");
            }

            entries[i] = new LogEntry(index + 1 + i, entryTerm, (EntryKind)entryKind, reader.Bytes());
        }

        return new RaftMessage
        {
            Type = (MessageType)type, From = from, To = (flags & FlagBroadcast) != 0 ? null : to, Term = term, LogTerm = logTerm, Index = index,
            Commit = commit, Reject = (flags & FlagReject) != 0, Force = (flags & FlagForce) != 0,
            RejectHint = rejectHint, Entries = entries, Offset = offset, Data = data, Done = (flags & FlagDone) != 0, Incarnation = incarnation,
        };
    }

    /// <summary>The Raft messages that name a run of a node (<see cref="RaftMessage.Incarnation"/>).</summary>
    private static bool CarriesIncarnation(MessageType type) => type is MessageType.AppendResponse or MessageType.Heartbeat or MessageType.HeartbeatResponse;

    /// <summary>A count cannot exceed the bytes left (every item takes at least one byte).</summary>
    private static int CheckedCount(ulong count, ref WireReader reader)
    {
        if (count > (ulong)reader.Remaining)
        {
            throw new FormatException($"Count {count} exceeds the {reader.Remaining} bytes left.");
        }

        return (int)count;
    }
}
