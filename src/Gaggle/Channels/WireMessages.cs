using System.Diagnostics;
using Gaggle.Raft;

namespace Gaggle.Channels;

/// <summary>Everything nodes say to each other. Raft's own traffic plus the runtime's requests.</summary>
internal abstract record WireMessage;

/// <summary>A Raft message; its sender is the channel's sender.</summary>
internal sealed record RaftWireMessage(RaftMessage Message) : WireMessage;

/// <summary>
/// Entries (already wrapped in their entry envelopes) forwarded to the leader for proposing, under the
/// sender's <paramref name="Admission"/>: the index of the configuration entry that (by the sender's
/// log) made it the member it is now. A leader proposes them only while its own configuration lists
/// the sender under that same admission, so no entry sent before a member's removal can land after it.
/// </summary>
internal sealed record ForwardAppend(IReadOnlyList<ReadOnlyMemory<byte>> Entries, long Admission) : WireMessage;

/// <summary>
/// The trace contexts (W3C: trace id, span id, flags) of callers whose appends or leader RPC calls the
/// sender sends the leader next, so the leader's spans join the callers' traces. Sent just before the
/// <see cref="ForwardAppend"/> or <see cref="DispatchRequest"/> it describes, and only for callers that
/// are traced; a node that does not know this kind drops it, and the forward itself is unchanged.
/// </summary>
/// <param name="Appends">The sender's append sequences, each with its caller's trace context.</param>
/// <param name="Calls">The sender's RPC call ids, each with its caller's trace context.</param>
internal sealed record TraceContexts(IReadOnlyList<TracedRequest> Appends, IReadOnlyList<TracedRequest> Calls) : WireMessage;

/// <summary>A request of the sender (an append sequence or an RPC call id) and the trace context it was made in.</summary>
internal readonly record struct TracedRequest(long Id, ActivityContext Context);

/// <summary>A call of a leader RPC handler.</summary>
internal sealed record DispatchRequest(ulong Incarnation, long CallId, string Method, ReadOnlyMemory<byte> Args) : WireMessage;

/// <summary>How a leader RPC call ended.</summary>
internal enum DispatchStatus : byte
{
    Ok = 0,
    HandlerFailed = 1,
    UnknownMethod = 2,
    NotLeader = 3,
}

/// <summary>The answer to a <see cref="DispatchRequest"/>, sent to the caller only.</summary>
internal sealed record DispatchReply(ulong Incarnation, long CallId, DispatchStatus Status, ReadOnlyMemory<byte> Result, string Error) : WireMessage;

/// <summary>
/// A node started to join a running cluster asks its leader to add it as a learner (broadcast until it
/// is a member). <paramref name="Fingerprint"/> covers what must match for it to take part: the
/// protocol, timing options, state machine and RPC method names.
/// </summary>
internal sealed record JoinAnnounce(ulong Fingerprint) : WireMessage;

/// <summary>The leader's answer to a <see cref="JoinAnnounce"/> whose fingerprint differs from its own (<paramref name="Fingerprint"/>).</summary>
internal sealed record JoinRefused(ulong Fingerprint) : WireMessage;

/// <summary>The leader tells a node that talks to it that the configuration does not include it (it was removed): it asks to join again.</summary>
internal sealed record NotAMember(long ConfigurationIndex) : WireMessage;

/// <summary>
/// A voter of an elastic cluster that leads, or knows no leader, tells every node on the channel, idle
/// or not, at least once per election timeout, that its generation lives (the generation travels in
/// every message's header): nodes waiting to join hear that a cluster exists and must not form a new
/// one, and learners that a voter is alive. <paramref name="Leads"/> when the sender is the leader.
/// </summary>
internal sealed record VoterAnnounce(long Term, bool Leads) : WireMessage;
