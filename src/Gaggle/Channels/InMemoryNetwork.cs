using System.Collections.Concurrent;
using System.Collections.Immutable;

namespace Gaggle.Channels;

/// <summary>
/// An in-process network of <see cref="InMemoryChannel"/>s with fault injection: loss, duplication,
/// delay, reordering, isolated nodes, cut links and partitions. For tests and simulations of a cluster.
/// </summary>
/// <remarks>
/// <para>
/// Every random decision comes from one <see cref="Random"/> seeded with <see cref="Seed"/>, so a failing
/// run can be replayed: with the same seed and the same sequence of sends (from one thread, or in the
/// same interleaving) the network drops, duplicates and delays the same messages. Broadcasts visit the
/// receivers in ordinal order of their node ids for the same reason.
/// </para>
/// <para>
/// All members are thread-safe, and faults and topology may change while messages flow. Reachability is
/// decided when a message is sent: a message already in flight when a link is cut still arrives, as it
/// would on a real network. A message in flight to a channel that disconnects meanwhile is dropped.
/// </para>
/// <para>
/// A message with no delay is delivered before the send returns, usually on the sender's thread; a
/// delayed one is delivered from a timer of the <see cref="TimeProvider"/>, so a fake time provider makes
/// delays deterministic. A receiver that throws loses that message, which is counted in
/// <see cref="Dropped"/>; the exception never reaches the sender.
/// </para>
/// </remarks>
public sealed class InMemoryNetwork
{
    private static readonly TimeSpan ReorderMargin = TimeSpan.FromMilliseconds(1);

    private readonly Random random;
    private readonly Lock randomLock = new();
    private readonly Lock registrationLock = new();
    private readonly Lock topologyLock = new();
    private readonly TimeProvider timeProvider;
    private readonly ConcurrentDictionary<(string From, string To), LinkFaults> linkFaults = new();
    private volatile ImmutableSortedDictionary<string, InMemoryChannel> connected =
        ImmutableSortedDictionary.Create<string, InMemoryChannel>(StringComparer.Ordinal);
    private volatile NetworkTopology topology = NetworkTopology.FullyConnected;
    private volatile LinkFaults defaultFaults = LinkFaults.None;
    private long delivered;
    private long dropped;

    private readonly Lock _generationLock = new();
    private readonly GenerationRegister _generation = new();

    /// <summary>Creates a network with perfect links and no partitions.</summary>
    /// <param name="seed">Seeds every random decision; when null a random seed is chosen and exposed as <see cref="Seed"/>.</param>
    /// <param name="timeProvider">Schedules delayed deliveries; the default is <see cref="TimeProvider.System"/>.</param>
    public InMemoryNetwork(int? seed = null, TimeProvider? timeProvider = null)
    {
        Seed = seed ?? Random.Shared.Next();
        random = new Random(Seed);
        this.timeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The seed of the random decisions; pass it to the constructor to replay a run.</summary>
    public int Seed { get; }

    /// <summary>How many messages were handed to a receiver (a duplicated message counts twice).</summary>
    public long Delivered => Interlocked.Read(ref delivered);

    /// <summary>
    /// How many messages were lost: by the drop rate, by a partition or cut, because the sender was not
    /// connected or the target not (or no longer) connected, or because the receiver threw.
    /// </summary>
    public long Dropped => Interlocked.Read(ref dropped);

    /// <summary>Creates the channel of node <paramref name="nodeId"/>; it becomes reachable when connected.</summary>
    /// <param name="nodeId">The node's id, unique among connected channels (compared ordinally).</param>
    /// <returns>A new, not yet connected channel.</returns>
    /// <exception cref="ArgumentException"><paramref name="nodeId"/> is empty or a channel with that id is connected.</exception>
    public InMemoryChannel CreateChannel(string nodeId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nodeId);
        if (connected.ContainsKey(nodeId))
        {
            throw new ArgumentException(DuplicateIdMessage(nodeId), nameof(nodeId));
        }

        return new InMemoryChannel(this, nodeId);
    }

    /// <summary>Sets the faults of the directed link from <paramref name="from"/> to <paramref name="to"/>, overriding the default.</summary>
    /// <param name="from">The sending node's id.</param>
    /// <param name="to">The receiving node's id.</param>
    /// <param name="faults">The faults; <see cref="LinkFaults.None"/> makes the link perfect whatever the default.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="faults"/> has a maximum delay below its minimum delay.</exception>
    public void SetLinkFaults(string from, string to, LinkFaults faults)
    {
        ArgumentException.ThrowIfNullOrEmpty(from);
        ArgumentException.ThrowIfNullOrEmpty(to);
        ArgumentNullException.ThrowIfNull(faults);
        faults.Validate();
        linkFaults[(from, to)] = faults;
    }

    /// <summary>Sets the faults of every link that has none of its own.</summary>
    /// <param name="faults">The faults.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="faults"/> has a maximum delay below its minimum delay.</exception>
    public void SetDefaultFaults(LinkFaults faults)
    {
        ArgumentNullException.ThrowIfNull(faults);
        faults.Validate();
        defaultFaults = faults;
    }

    /// <summary>Cuts every link to and from <paramref name="nodeId"/> until <see cref="Heal"/>, across restarts of the node.</summary>
    /// <param name="nodeId">The node to isolate; it need not be connected.</param>
    public void Isolate(string nodeId)
    {
        ArgumentException.ThrowIfNullOrEmpty(nodeId);
        lock (topologyLock)
        {
            topology = topology.WithIsolated(nodeId);
        }
    }

    /// <summary>
    /// Splits the network into <paramref name="groups"/>: two nodes can talk only if they are in the same
    /// group. A node named in no group (including one that joins later) can talk to no one. Replaces an
    /// earlier partition; isolated nodes and cut links stay as they are.
    /// </summary>
    /// <param name="groups">The groups of node ids; a node may appear in one group only.</param>
    /// <exception cref="ArgumentException">No group is given, or a node id is empty or appears in two groups.</exception>
    public void Partition(params IReadOnlyCollection<string>[] groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        if (groups.Length == 0)
        {
            throw new ArgumentException("A partition needs at least one group; use Heal to remove a partition.", nameof(groups));
        }

        lock (topologyLock)
        {
            topology = topology.WithPartition(groups);
        }
    }

    /// <summary>Cuts the link between <paramref name="a"/> and <paramref name="b"/> in both directions until <see cref="Heal"/>.</summary>
    /// <param name="a">One node's id.</param>
    /// <param name="b">The other node's id.</param>
    /// <exception cref="ArgumentException">An id is empty, or both ids are the same.</exception>
    public void Cut(string a, string b)
    {
        ArgumentException.ThrowIfNullOrEmpty(a);
        ArgumentException.ThrowIfNullOrEmpty(b);
        if (string.Equals(a, b, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Cannot cut node '{a}' from itself.", nameof(b));
        }

        lock (topologyLock)
        {
            topology = topology.WithCut(a, b);
        }
    }

    /// <summary>Removes every partition, isolation and cut; link faults stay as they are.</summary>
    public void Heal()
    {
        lock (topologyLock)
        {
            topology = NetworkTopology.FullyConnected;
        }
    }

    /// <summary>Makes the network perfect again: heals it and removes all link and default faults.</summary>
    public void ClearFaults()
    {
        Heal();
        defaultFaults = LinkFaults.None;
        linkFaults.Clear();
    }

    /// <summary>The number of the cluster generation recorded on this network (see <see cref="IClusterGenerationStore"/>); 0 when none.</summary>
    public long Generation => GenerationIds.NumberOf(GenerationId);

    /// <summary>The id of the cluster generation recorded on this network (number and founder's tag; see <see cref="IClusterGenerationStore"/>); 0 when none.</summary>
    internal long GenerationId
    {
        get
        {
            lock (_generationLock)
            {
                return _generation.Id;
            }
        }
    }

    /// <summary>Forgets the recorded generation, as a Redis that evicted, flushed or failed over would.</summary>
    public void LoseGeneration()
    {
        lock (_generationLock)
        {
            _generation.Lose();
        }
    }

    /// <summary>Records <paramref name="id"/> as a value written by hand would be (its change unknown): for tests.</summary>
    internal void WriteGenerationByHand(long id)
    {
        lock (_generationLock)
        {
            _generation.WriteByHand(id);
        }
    }

    internal bool TryClaimGeneration(long expected, long claimed)
    {
        lock (_generationLock)
        {
            return _generation.TryClaim(expected, claimed, GenerationClockUs);
        }
    }

    internal bool TryReleaseClaim(long claimed, long expected)
    {
        lock (_generationLock)
        {
            return _generation.TryRelease(claimed, expected, GenerationClockUs);
        }
    }

    internal GenerationConfirmation ConfirmGeneration(long generation)
    {
        lock (_generationLock)
        {
            return _generation.Confirm(generation, GenerationClockUs);
        }
    }

    /// <summary>The store's clock for the age of the last change: the time provider's (a fake one moves it in tests).</summary>
    private long GenerationClockUs => timeProvider.GetUtcNow().ToUnixTimeMilliseconds() * 1000;

    internal void CountDelivered() => Interlocked.Increment(ref delivered);

    internal void CountDropped() => Interlocked.Increment(ref dropped);

    internal void Connect(InMemoryChannel channel, Action<InboundMessage> receiver)
    {
        lock (registrationLock)
        {
            if (connected.TryGetValue(channel.NodeId, out var other) && !ReferenceEquals(other, channel))
            {
                throw new InvalidOperationException(DuplicateIdMessage(channel.NodeId));
            }

            channel.MarkConnected(receiver);
            connected = connected.Add(channel.NodeId, channel);
        }
    }

    /// <summary>Unregisters and closes <paramref name="channel"/>; returns whether it was connected.</summary>
    internal bool Disconnect(InMemoryChannel channel)
    {
        lock (registrationLock)
        {
            if (connected.TryGetValue(channel.NodeId, out var registered) && ReferenceEquals(registered, channel))
            {
                connected = connected.Remove(channel.NodeId);
            }

            return channel.MarkClosed();
        }
    }

    internal void Send(InMemoryChannel sender, string to, ReadOnlyMemory<byte> payload)
    {
        if (connected.TryGetValue(to, out var target))
        {
            Transmit(sender, target, payload);
        }
        else
        {
            CountDropped();
        }
    }

    internal void Broadcast(InMemoryChannel sender, ReadOnlyMemory<byte> payload)
    {
        foreach (var (nodeId, target) in connected)
        {
            if (!string.Equals(nodeId, sender.NodeId, StringComparison.Ordinal))
            {
                Transmit(sender, target, payload);
            }
        }
    }

    private static string DuplicateIdMessage(string nodeId) =>
        $"A channel for node '{nodeId}' is already connected to this network; disconnect it before creating another with the same id.";

    private void Transmit(InMemoryChannel sender, InMemoryChannel target, ReadOnlyMemory<byte> payload)
    {
        if (!sender.IsConnected || !topology.CanReach(sender.NodeId, target.NodeId))
        {
            CountDropped();
            return;
        }

        var message = new InboundMessage(sender.NodeId, payload);
        var faults = FaultsOf(sender.NodeId, target.NodeId);
        if (faults.IsNone)
        {
            target.Deliver(message);
            return;
        }

        TimeSpan firstDelay;
        TimeSpan? duplicateDelay = null;
        lock (randomLock)
        {
            if (faults.DropRate > 0 && random.NextDouble() < faults.DropRate)
            {
                CountDropped();
                return;
            }

            firstDelay = DrawDelay(faults);
            if (faults.DuplicateRate > 0 && random.NextDouble() < faults.DuplicateRate)
            {
                duplicateDelay = DrawDelay(faults);
            }
        }

        DeliverAfter(target, message, firstDelay);
        if (duplicateDelay is { } delay)
        {
            DeliverAfter(target, message, delay);
        }
    }

    private LinkFaults FaultsOf(string from, string to) =>
        !linkFaults.IsEmpty && linkFaults.TryGetValue((from, to), out var faults) ? faults : defaultFaults;

    /// <summary>Draws one copy's delay. Called under <see cref="randomLock"/>.</summary>
    private TimeSpan DrawDelay(LinkFaults faults)
    {
        var delay = faults.MinDelay;
        var spread = faults.MaxDelay.Ticks - faults.MinDelay.Ticks;
        if (spread > 0)
        {
            delay += TimeSpan.FromTicks(random.NextInt64(spread + 1));
        }

        if (faults.ReorderRate > 0 && random.NextDouble() < faults.ReorderRate)
        {
            delay += TimeSpan.FromTicks(1 + random.NextInt64((faults.MaxDelay + ReorderMargin).Ticks));
        }

        return delay;
    }

    private void DeliverAfter(InMemoryChannel target, InboundMessage message, TimeSpan delay)
    {
        if (delay == TimeSpan.Zero)
        {
            target.Deliver(message);
            return;
        }

        // A timer rather than Task.Delay, which rounds delays below a millisecond down to none. A one-shot
        // timer stays rooted while scheduled and is discarded by its provider once it fires, so nothing
        // needs to hold or dispose it.
        _ = timeProvider.CreateTimer(
            static state => ((PendingDelivery)state!).Complete(),
            new PendingDelivery(target, message),
            delay,
            Timeout.InfiniteTimeSpan);
    }

    private sealed class PendingDelivery(InMemoryChannel target, InboundMessage message)
    {
        public void Complete() => target.Deliver(message);
    }
}
