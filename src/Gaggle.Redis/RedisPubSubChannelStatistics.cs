namespace Gaggle.Redis;

/// <summary>Counters of a <see cref="RedisPubSubChannel"/>; safe to read at any time.</summary>
public sealed class RedisPubSubChannelStatistics
{
    private readonly long[] _dropped = new long[Enum.GetValues<DropReason>().Length];
    private long _received;
    private long _published;
    private long _publishFailures;
    private long _publishesDropped;
    private long _connectionFailures;
    private long _connectionRestores;

    /// <summary>Envelopes accepted and handed to the node.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Envelopes published (acknowledged by Redis).</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>PUBLISH attempts that failed (each retry counts).</summary>
    public long PublishFailures => Interlocked.Read(ref _publishFailures);

    /// <summary>Messages given up on: retries exhausted, or too many publishes pending.</summary>
    public long PublishesDropped => Interlocked.Read(ref _publishesDropped);

    /// <summary>Connection failures reported by StackExchange.Redis.</summary>
    public long ConnectionFailures => Interlocked.Read(ref _connectionFailures);

    /// <summary>Connections restored after a failure.</summary>
    public long ConnectionRestores => Interlocked.Read(ref _connectionRestores);

    /// <summary>All inbound envelopes dropped, whatever the reason.</summary>
    public long Dropped => Enumerable.Range(0, _dropped.Length).Sum(i => Interlocked.Read(ref _dropped[i]));

    /// <summary>Inbound envelopes dropped for <paramref name="reason"/>.</summary>
    /// <param name="reason">The reason.</param>
    public long DroppedFor(DropReason reason) => Interlocked.Read(ref _dropped[(int)reason]);

    internal void CountDropped(DropReason reason) => Interlocked.Increment(ref _dropped[(int)reason]);

    internal void CountReceived() => Interlocked.Increment(ref _received);

    internal void CountPublished() => Interlocked.Increment(ref _published);

    internal void CountPublishFailure() => Interlocked.Increment(ref _publishFailures);

    internal void CountPublishDropped() => Interlocked.Increment(ref _publishesDropped);

    internal void CountConnectionFailure() => Interlocked.Increment(ref _connectionFailures);

    internal void CountConnectionRestore() => Interlocked.Increment(ref _connectionRestores);
}
