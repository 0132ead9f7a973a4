namespace Gaggle.Raft;

/// <summary>
/// The bounded window of AppendEntries messages in flight to one follower: the last index and size
/// of each message, oldest first. It is full at its message capacity or once its bytes reach the byte
/// budget (one message is always allowed, however large). When full, the leader stops sending until
/// acknowledgements free room. The byte bound matters on pub/sub transports, where nothing else
/// pushes back: Redis disconnects a subscriber whose output buffer overflows.
/// </summary>
internal sealed class Inflights
{
    private readonly long[] _lastIndexes;
    private readonly long[] _sizes;
    private readonly long _maxBytes;
    private int _start;

    public Inflights(int capacity, long maxBytes = long.MaxValue)
    {
        _lastIndexes = new long[capacity];
        _sizes = new long[capacity];
        _maxBytes = maxBytes;
    }

    public int Count { get; private set; }

    public long Bytes { get; private set; }

    public bool Full => Count == _lastIndexes.Length || (Count > 0 && Bytes >= _maxBytes);

    public void Add(long lastIndex, long bytes = 0)
    {
        if (Count == _lastIndexes.Length)
        {
            throw new InvalidOperationException("Inflights window is full.");
        }

        int slot = (_start + Count) % _lastIndexes.Length;
        _lastIndexes[slot] = lastIndex;
        _sizes[slot] = bytes;
        Bytes += bytes;
        Count++;
    }

    /// <summary>Frees every message whose last index is at or below <paramref name="index"/>.</summary>
    public void FreeUpTo(long index)
    {
        while (Count > 0 && _lastIndexes[_start] <= index)
        {
            Bytes -= _sizes[_start];
            _start = (_start + 1) % _lastIndexes.Length;
            Count--;
        }
    }

    public void Reset()
    {
        _start = 0;
        Count = 0;
        Bytes = 0;
    }
}
