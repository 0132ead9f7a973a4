namespace Gaggle.Raft;

/// <summary>
/// The bounded window of AppendEntries messages in flight to one follower: the last index of each
/// message, oldest first. When full, the leader stops sending until acknowledgements free slots.
/// </summary>
internal sealed class Inflights
{
    private readonly long[] _buffer;
    private int _start;

    public Inflights(int capacity)
    {
        _buffer = new long[capacity];
    }

    public int Count { get; private set; }

    public bool Full => Count == _buffer.Length;

    public void Add(long lastIndex)
    {
        if (Full)
        {
            throw new InvalidOperationException("Inflights window is full.");
        }

        _buffer[(_start + Count) % _buffer.Length] = lastIndex;
        Count++;
    }

    /// <summary>Frees every message whose last index is at or below <paramref name="index"/>.</summary>
    public void FreeUpTo(long index)
    {
        while (Count > 0 && _buffer[_start] <= index)
        {
            _start = (_start + 1) % _buffer.Length;
            Count--;
        }
    }

    public void Reset()
    {
        _start = 0;
        Count = 0;
    }
}
