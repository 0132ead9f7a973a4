using Gaggle.Channels;

namespace Gaggle.Locks;

/// <summary>What a lock command asks of the lock table.</summary>
internal enum LockCommandType : byte
{
    /// <summary>Take one of the lock's MaxCount slots, or queue (FIFO) for WaitMs at most; WaitMs 0 means try once.</summary>
    Acquire = 1,

    /// <summary>Give back the hold with Token.</summary>
    Release = 2,

    /// <summary>Extend the hold with Token by LeaseMs from now.</summary>
    Renew = 3,

    /// <summary>Stop waiting: remove the queued request RequestSequence of the command's origin.</summary>
    CancelWait = 4,

    /// <summary>Nothing but the leader's timestamp: lets leases expire without client traffic.</summary>
    Time = 5,

    /// <summary>A linearizable read: the lock's state as of this entry's position in the log.</summary>
    Inspect = 6,

    /// <summary>
    /// An elastic cluster's generation begins at this entry (its founder logs it right after the
    /// founding configuration): Token is the generation, the high bits of every token granted after
    /// it; nothing is granted for LeaseMs from the entry's time (the hold-off). Never forwarded.
    /// </summary>
    Generation = 7,

    /// <summary>
    /// Take the reader-writer lock Name for reading, or queue (FIFO) for WaitMs at most; WaitMs 0 means
    /// try once. Readers share it; a reader is granted only while no writer holds it and nobody waits
    /// ahead of it (a waiting writer keeps later readers queued, so writers do not starve). MaxCount is unused.
    /// </summary>
    AcquireRead = 8,

    /// <summary>Take the reader-writer lock Name for writing (alone), or queue (FIFO) for WaitMs at most; MaxCount is unused.</summary>
    AcquireWrite = 9,

    /// <summary>
    /// Take every lock of Parts (each a mutex or semaphore slot, or a reader-writer lock for reading or
    /// writing) all at once, or queue (FIFO) in every one of their queues for WaitMs at most; WaitMs 0
    /// means try once. Name is the first part's name (for cancelling the wait); MaxCount is unused.
    /// </summary>
    AcquireAll = 10,

    /// <summary>
    /// The origin's incarnation Token ended: its process ended (a restart with a fixed member list), or
    /// the node started over, and one process runs a member id at a time, so the origin, another
    /// incarnation of the same id, is the live one. Every request of incarnation Token of the origin
    /// that still waits stops waiting (Rejected): nobody would take its grant, which would block the
    /// lock for a lease nobody renews. Its holds are kept until their leases end. The command names
    /// the incarnation, so one sent by a process that died itself, and committed late, never ends the
    /// waits of a process after it. A node appends it when its table shows such a wait
    /// (NodeDriver.MaybeEndWaitsOfEarlierIncarnations). Naming the origin's own incarnation does nothing.
    /// </summary>
    IncarnationEnded = 11,

    /// <summary>
    /// Elastic mode: the cluster's members changed (a configuration entry was applied). Never logged
    /// nor sent: every replica makes it from the configuration entry itself, so it applies at the same
    /// log position everywhere. Every request waiting for a node that is not one of Members stops
    /// waiting (Rejected): the node was removed (it left, or was not heard from for the member
    /// timeout) and would otherwise be granted the lock after the holders ahead of it, and keep it
    /// for a lease nobody renews. Holds are kept until they end as usual (their lease runs out).
    /// </summary>
    MembersChanged = 12,
}

/// <summary>Helpers over <see cref="LockCommandType"/>.</summary>
internal static class LockCommandTypes
{
    /// <summary>Whether <paramref name="type"/> asks for a hold (of a mutex or semaphore slot, or of a reader-writer lock).</summary>
    public static bool IsAcquire(this LockCommandType type) => type is LockCommandType.Acquire or LockCommandType.AcquireRead or LockCommandType.AcquireWrite or LockCommandType.AcquireAll;

    /// <summary>Whether <paramref name="type"/> may be a part of <see cref="LockCommandType.AcquireAll"/>: an acquire of one lock.</summary>
    public static bool IsSingleAcquire(this LockCommandType type) => type is LockCommandType.Acquire or LockCommandType.AcquireRead or LockCommandType.AcquireWrite;
}

/// <summary>One lock of an <see cref="LockCommandType.AcquireAll"/>: how (<see cref="LockCommandType.Acquire"/> with MaxCount, <see cref="LockCommandType.AcquireRead"/> or <see cref="LockCommandType.AcquireWrite"/>) and which.</summary>
internal readonly record struct LockPart(LockCommandType Type, string Name, int MaxCount = 1);

/// <summary>A lock table command, carried in a log entry whose envelope says who sent it and when the leader stamped it.</summary>
internal sealed record LockCommand(LockCommandType Type, string Name, int MaxCount = 1, long LeaseMs = 0, long WaitMs = 0, long Token = 0, long RequestSequence = 0)
{
    /// <summary>The most locks one <see cref="LockCommandType.AcquireAll"/> may take.</summary>
    public const int MaxParts = 64;

    private const byte FormatVersion = 1;

    /// <summary>The locks an <see cref="LockCommandType.AcquireAll"/> takes; empty for every other command.</summary>
    public IReadOnlyList<LockPart> Parts { get; init; } = [];

    /// <summary>The members of the configuration a <see cref="LockCommandType.MembersChanged"/> comes from; empty for every other command (never encoded).</summary>
    public IReadOnlySet<string> Members { get; init; } = EmptyMembers;

    /// <summary>
    /// <see cref="LockCommandType.MembersChanged"/> only: the configuration founds a cluster or forces a
    /// new generation, and the generation's start (its hold-off) is the next entry. Waits end, but
    /// nothing is granted at this entry: the queues are looked at again at the next, under the hold-off.
    /// </summary>
    public bool Founding { get; init; }

    private static readonly IReadOnlySet<string> EmptyMembers = new HashSet<string>();

    /// <summary>Equal when every field is, the parts compared one by one.</summary>
    public bool Equals(LockCommand? other)
        => other is not null && Type == other.Type && Name == other.Name && MaxCount == other.MaxCount && LeaseMs == other.LeaseMs && WaitMs == other.WaitMs
            && Token == other.Token && RequestSequence == other.RequestSequence && Parts.SequenceEqual(other.Parts) && Members.SetEquals(other.Members) && Founding == other.Founding;

    public override int GetHashCode() => HashCode.Combine(Type, Name, MaxCount, LeaseMs, WaitMs, Token, RequestSequence, Parts.Count);

    public byte[] Encode()
    {
        if (Type == LockCommandType.MembersChanged)
        {
            throw new InvalidOperationException("A MembersChanged lock command is made by each replica from a configuration entry; it is never logged or sent.");
        }

        var writer = new WireWriter(Name.Length + 32);
        writer.Byte(FormatVersion);
        writer.Byte((byte)Type);
        writer.String(Name);
        writer.VarLong(MaxCount);
        writer.VarLong(LeaseMs);
        writer.VarLong(WaitMs);
        writer.VarLong(Token);
        writer.VarLong(RequestSequence);
        if (Type == LockCommandType.AcquireAll)
        {
            writer.VarUInt((ulong)Parts.Count);
            foreach (var part in Parts)
            {
                writer.Byte((byte)part.Type);
                writer.String(part.Name);
                writer.VarLong(part.MaxCount);
            }
        }

        return writer.ToArray();
    }

    /// <summary>Whether the encoded command <paramref name="data"/> is a <see cref="LockCommandType.Generation"/> (checked without decoding it).</summary>
    public static bool IsGenerationCommand(ReadOnlySpan<byte> data) => data.Length > 1 && data[0] == FormatVersion && data[1] == (byte)LockCommandType.Generation;

    public static LockCommand? TryDecode(ReadOnlyMemory<byte> data)
    {
        try
        {
            var reader = new WireReader(data);
            if (reader.Byte() != FormatVersion)
            {
                return null;
            }

            byte type = reader.Byte();
            // MembersChanged is made by each replica from a configuration entry, never read from an entry or a message.
            if (type is < (byte)LockCommandType.Acquire or > (byte)LockCommandType.IncarnationEnded)
            {
                return null;
            }

            var command = new LockCommand((LockCommandType)type, reader.String(), (int)Math.Min(reader.VarLong(), int.MaxValue), reader.VarLong(), reader.VarLong(), reader.VarLong(), reader.VarLong());
            if (command.Type == LockCommandType.AcquireAll)
            {
                ulong count = reader.VarUInt();
                if (count > MaxParts)
                {
                    return null;
                }

                var parts = new LockPart[count];
                for (int i = 0; i < parts.Length; i++)
                {
                    var partType = (LockCommandType)reader.Byte();
                    parts[i] = new LockPart(partType, reader.String(), (int)Math.Min(reader.VarLong(), int.MaxValue));
                    if (!partType.IsSingleAcquire())
                    {
                        return null;
                    }
                }

                command = command with { Parts = parts };
            }

            reader.End();
            return command;
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
