namespace Gaggle.Channels;

/// <summary>
/// How a node reaches the other members of its cluster: send to one node, broadcast to all, receive.
/// </summary>
/// <remarks>
/// <para>
/// A channel carries opaque payloads and is allowed to be as unreliable as Redis pub/sub: messages may
/// be lost, duplicated, delayed or reordered. The consensus layer above tolerates all of that; a
/// channel must never throw a delivery failure into the caller's loop (it drops and counts instead).
/// </para>
/// <para>
/// Contract: <see cref="ConnectAsync"/> registers the receiver that is called once per delivered
/// message, in the order the channel delivers them. The receiver must return quickly (it hands the
/// message to a queue); it is never called concurrently with itself for one channel. A broadcast is
/// not delivered back to its sender. After <see cref="DisconnectAsync"/> the receiver is not called
/// again and sends are silently dropped.
/// </para>
/// </remarks>
public interface IChannel : IAsyncDisposable
{
    /// <summary>The id of the node that owns this channel.</summary>
    string NodeId { get; }

    /// <summary>Starts receiving; <paramref name="receiver"/> is called for every inbound message.</summary>
    /// <param name="receiver">Called once per delivered message; must not block.</param>
    /// <param name="cancellationToken">Cancels the connection attempt.</param>
    ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default);

    /// <summary>Stops receiving and sending. Idempotent.</summary>
    /// <param name="cancellationToken">Cancels waiting for the disconnection to finish.</param>
    ValueTask DisconnectAsync(CancellationToken cancellationToken = default);

    /// <summary>Sends <paramref name="payload"/> to node <paramref name="to"/>. Best effort.</summary>
    /// <param name="to">The target node id.</param>
    /// <param name="payload">The bytes to deliver; the channel may keep a reference until delivered, so the caller must not reuse the buffer.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>Sends <paramref name="payload"/> to every other node of the cluster. Best effort.</summary>
    /// <param name="payload">The bytes to deliver; the caller must not reuse the buffer.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);
}

/// <summary>A message delivered by an <see cref="IChannel"/>.</summary>
/// <param name="From">The id of the sending node, as established by the channel.</param>
/// <param name="Payload">The bytes that the sender passed to send or broadcast.</param>
public readonly record struct InboundMessage(string From, ReadOnlyMemory<byte> Payload);
