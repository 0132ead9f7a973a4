using System.Collections.Concurrent;

namespace Gaggle.Channels;

/// <summary>
/// A node's <see cref="IChannel"/> on an <see cref="InMemoryNetwork"/>. Created by
/// <see cref="InMemoryNetwork.CreateChannel"/>.
/// </summary>
/// <remarks>
/// <para>
/// A channel is used once: it is reachable from <see cref="ConnectAsync"/> until
/// <see cref="DisconnectAsync"/> or <see cref="DisposeAsync"/>; a restarted node creates a new channel
/// with the same id.
/// </para>
/// <para>
/// Deliveries to one channel are serialized without a lock: a message is queued, and the first thread
/// that finds nobody delivering becomes the deliverer and invokes the receiver until the queue is
/// empty. With no delay that is usually the sender's own thread, before its send returns. The receiver
/// is therefore never called concurrently with itself, is never re-entered (a send from inside the
/// receiver is delivered after it returns), and two channels whose receivers send to each other cannot
/// deadlock.
/// </para>
/// </remarks>
public sealed class InMemoryChannel : IChannel, IClusterGenerationStore
{
    private const int Created = 0;
    private const int Connected = 1;
    private const int Closed = 2;

    private readonly InMemoryNetwork network;
    private readonly ConcurrentQueue<InboundMessage> inbox = new();
    private Action<InboundMessage>? receiver;
    private int state;
    private int delivering;
    private int deliveringThreadId;

    internal InMemoryChannel(InMemoryNetwork network, string nodeId)
    {
        this.network = network;
        NodeId = nodeId;
    }

    /// <inheritdoc/>
    public string NodeId { get; }

    /// <summary>Whether the channel is connected: reachable by others and able to send.</summary>
    public bool IsConnected => Volatile.Read(ref state) == Connected;

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">
    /// The channel was already connected or has been disconnected, or another channel with the same node id
    /// is connected to the network.
    /// </exception>
    public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        cancellationToken.ThrowIfCancellationRequested();
        network.Connect(this, receiver);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// When this returns, the receiver is not running on another thread and will not be called again;
    /// messages still queued or in flight for this channel are dropped and counted as such.
    /// </remarks>
    public ValueTask DisconnectAsync(CancellationToken cancellationToken = default)
    {
        if (network.Disconnect(this))
        {
            WaitForDeliveryOnOtherThread();
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(to);
        cancellationToken.ThrowIfCancellationRequested();
        network.Send(this, to, payload);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        network.Broadcast(this, payload);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(network.GenerationId);

    /// <inheritdoc/>
    public ValueTask<bool> TryClaimGenerationAsync(long expected, long claimed, CancellationToken cancellationToken = default) => ValueTask.FromResult(network.TryClaimGeneration(expected, claimed));

    /// <inheritdoc/>
    public ValueTask<bool> TryReleaseClaimAsync(long claimed, long expected, CancellationToken cancellationToken = default) => ValueTask.FromResult(network.TryReleaseClaim(claimed, expected));

    /// <inheritdoc/>
    public ValueTask<GenerationConfirmation> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default) => ValueTask.FromResult(network.ConfirmGeneration(generation));

    /// <summary>Disconnects the channel; see <see cref="DisconnectAsync"/>.</summary>
    public ValueTask DisposeAsync() => DisconnectAsync();

    /// <summary>Moves a new channel to connected. Called under the network's registration lock.</summary>
    internal void MarkConnected(Action<InboundMessage> connectedReceiver)
    {
        if (state != Created)
        {
            throw new InvalidOperationException(state == Connected
                ? $"The channel of node '{NodeId}' is already connected."
                : $"The channel of node '{NodeId}' has been disconnected and cannot connect again; create a new channel for the node.");
        }

        Volatile.Write(ref receiver, connectedReceiver);
        Volatile.Write(ref state, Connected);
    }

    /// <summary>
    /// Moves the channel to closed. Called under the network's registration lock.
    /// Returns whether it was connected.
    /// </summary>
    internal bool MarkClosed()
    {
        var wasConnected = state == Connected;
        Volatile.Write(ref state, Closed);

        // A full fence, paired with the one in DeliverQueued: either a deliverer sees no receiver, or
        // WaitForDeliveryOnOtherThread sees that deliverer running.
        Interlocked.Exchange(ref receiver, null);
        return wasConnected;
    }

    /// <summary>Hands a message to this channel's receiver, or drops it when the channel is not connected.</summary>
    internal void Deliver(InboundMessage message)
    {
        if (Volatile.Read(ref receiver) is null)
        {
            network.CountDropped();
            return;
        }

        inbox.Enqueue(message);
        DeliverQueued();
    }

    private void DeliverQueued()
    {
        // Re-checking after giving up the role closes the gap in which a message was queued by a thread
        // that saw this thread still delivering.
        while (!inbox.IsEmpty)
        {
            if (Interlocked.CompareExchange(ref delivering, 1, 0) != 0)
            {
                return;
            }

            Volatile.Write(ref deliveringThreadId, Environment.CurrentManagedThreadId);
            try
            {
                while (inbox.TryDequeue(out var message))
                {
                    Invoke(message);
                }
            }
            finally
            {
                Volatile.Write(ref deliveringThreadId, 0);
                Interlocked.Exchange(ref delivering, 0);
            }
        }
    }

    private void Invoke(InboundMessage message)
    {
        var current = Volatile.Read(ref receiver);
        if (current is null)
        {
            network.CountDropped();
            return;
        }

        try
        {
            current(message);
            network.CountDelivered();
        }
        catch (Exception)
        {
            // The receiver contract forbids throwing; a failure must not reach the sender's loop or a
            // timer thread, so the message counts as lost, as a real transport would lose it.
            network.CountDropped();
        }
    }

    private void WaitForDeliveryOnOtherThread()
    {
        var spinner = default(SpinWait);
        while (Volatile.Read(ref delivering) == 1
               && Volatile.Read(ref deliveringThreadId) != Environment.CurrentManagedThreadId)
        {
            spinner.SpinOnce();
        }
    }
}
