namespace Gaggle.Channels;

/// <summary>How the value of a generation store (see <see cref="IClusterGenerationStore"/>) last changed.</summary>
public enum GenerationChange
{
    /// <summary>Not recorded (a value written by hand or by an older release): taken as changed long ago.</summary>
    Unknown,

    /// <summary>A claim set it: a generation was founded, or forced by an operator, from the value before. (A claim given back puts back the value before it with its change.)</summary>
    Claimed,

    /// <summary>A leader's confirmation wrote its generation where none was recorded (the store had lost it).</summary>
    Restored,

    /// <summary>A leader's confirmation replaced a lower generation with its own.</summary>
    Replaced,
}

/// <summary>A generation store's answer to <see cref="IClusterGenerationStore.ConfirmGenerationAsync"/>.</summary>
/// <param name="Recorded">The generation id recorded before the call (0: none).</param>
/// <param name="Change">How the value recorded after the call got there: <see cref="GenerationChange.Restored"/> or <see cref="GenerationChange.Replaced"/> when this call wrote it.</param>
/// <param name="SinceChange">
/// How long before the call that change was made, by the store's clock: zero when this call made it, and
/// when the change is stamped ahead of the store's clock (never read that as long ago);
/// <see cref="TimeSpan.MaxValue"/> with <see cref="GenerationChange.Unknown"/> only.
/// </param>
public readonly record struct GenerationConfirmation(long Recorded, GenerationChange Change, TimeSpan SinceChange);

/// <summary>
/// Generation ids: the low 16 bits are the generation's number (1, 2, ...: the high bits of the
/// fencing tokens it grants, at most <see cref="MaxNumber"/>), the 36 bits above them a random tag its
/// founder drew. Numbers order generations; the tag tells apart two generations founded with one number
/// after the store lost its value while the first lived on unheard. Ids stay below 2^52, exact in a
/// Redis script's numbers.
/// </summary>
internal static class GenerationIds
{
    /// <summary>The bits of an id that hold its number.</summary>
    public const int NumberBits = 16;

    /// <summary>The bits of an id above its number: the founder's random tag.</summary>
    public const int TagBits = 36;

    /// <summary>The highest generation number: tokens carry it above 48 bits of a signed 64-bit value.</summary>
    public const long MaxNumber = (1L << 15) - 1;

    /// <summary>The number of generation id <paramref name="id"/>.</summary>
    public static long NumberOf(long id) => id & ((1L << NumberBits) - 1);

    /// <summary>The random tag of generation id <paramref name="id"/> (0 for an id written without one).</summary>
    public static long TagOf(long id) => id >> NumberBits;

    /// <summary>The id of a new generation after <paramref name="id"/>: the next number, with a tag drawn from <paramref name="random"/>.</summary>
    public static long Next(long id, Random random)
    {
        long number = NumberOf(id) + 1;
        if (number > MaxNumber)
        {
            throw new InvalidOperationException($"The cluster generation number would be {number}; it must be at most {MaxNumber} (the high bits of fencing tokens). Delete the generation key only if no node of this cluster runs.");
        }

        return (random.NextInt64(1, 1L << TagBits) << NumberBits) | number;
    }

    /// <summary>Whether generation <paramref name="id"/> is newer than <paramref name="than"/>: a higher number.</summary>
    public static bool IsNewer(long id, long than) => NumberOf(id) > NumberOf(than);

    /// <summary>Whether <paramref name="id"/> is a valid generation id (0: none).</summary>
    public static bool IsValid(long id) => id >= 0 && TagOf(id) < (1L << TagBits) && NumberOf(id) <= MaxNumber;

    /// <summary>The generation as logs show it: its number, and its tag in hex when it has one.</summary>
    public static string Describe(long id) => TagOf(id) == 0 ? NumberOf(id).ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{NumberOf(id)}.{TagOf(id):x9}";
}
