namespace Gaggle.Redis;

/// <summary>
/// Per-sender replay protection: the sender's newest incarnation and which of its last
/// <see cref="Size"/> sequence numbers were seen. Older incarnations and repeats are refused;
/// sequences older than the window are refused too (they are at best very late).
/// </summary>
internal sealed class SenderWindow
{
    public const int Size = 4096;

    private readonly ulong[] _bits = new ulong[Size / 64];
    private ulong _incarnation;
    private ulong _highest;

    /// <summary>Null when the message is new (and records it), otherwise why it is refused.</summary>
    public DropReason? Accept(ulong incarnation, ulong sequence)
    {
        if (incarnation < _incarnation)
        {
            return DropReason.StaleIncarnation;
        }

        if (incarnation > _incarnation)
        {
            _incarnation = incarnation;
            _highest = 0;
            Array.Clear(_bits);
        }

        if (sequence > _highest)
        {
            ulong shift = sequence - _highest;
            if (shift >= Size)
            {
                Array.Clear(_bits);
            }
            else
            {
                for (ulong s = _highest + 1; s < sequence; s++)
                {
                    Clear(s);
                }
            }

            _highest = sequence;
            Set(sequence);
            return null;
        }

        if (_highest - sequence >= Size || IsSet(sequence))
        {
            return DropReason.Duplicate;
        }

        Set(sequence);
        return null;
    }

    private void Set(ulong sequence) => _bits[(sequence / 64) % (Size / 64)] |= 1UL << (int)(sequence % 64);

    private void Clear(ulong sequence) => _bits[(sequence / 64) % (Size / 64)] &= ~(1UL << (int)(sequence % 64));

    private bool IsSet(ulong sequence) => (_bits[(sequence / 64) % (Size / 64)] & (1UL << (int)(sequence % 64))) != 0;
}
