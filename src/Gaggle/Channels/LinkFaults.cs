using System.Globalization;

namespace Gaggle.Channels;

/// <summary>
/// The faults that an <see cref="InMemoryNetwork"/> injects on one directed link (or on every link, as
/// the default): loss, duplication, delay and reordering.
/// </summary>
/// <remarks>
/// <para>
/// Each rule is checked when a property is set; that <see cref="MaxDelay"/> is not less than
/// <see cref="MinDelay"/> is checked when the faults are handed to the network, because the two may be
/// set in either order.
/// </para>
/// <para>
/// Per message the network decides, in this order: whether to drop it (<see cref="DropRate"/>), whether
/// to deliver it twice (<see cref="DuplicateRate"/>), and for each copy a delay drawn uniformly from
/// [<see cref="MinDelay"/>, <see cref="MaxDelay"/>], plus, with probability <see cref="ReorderRate"/>,
/// an extra delay in (0, <see cref="MaxDelay"/> + 1 ms] that makes the copy fall behind messages sent
/// after it. Any spread between the delays reorders messages as well.
/// </para>
/// </remarks>
public sealed record LinkFaults
{
    private readonly double dropRate;
    private readonly double duplicateRate;
    private readonly double reorderRate;
    private readonly TimeSpan minDelay;
    private readonly TimeSpan maxDelay;

    /// <summary>A perfect link: nothing is lost, duplicated, delayed or reordered.</summary>
    public static LinkFaults None { get; } = new();

    /// <summary>The probability, from 0 to 1, that a message is lost.</summary>
    /// <value>The default is 0.</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is not between 0 and 1.</exception>
    public double DropRate
    {
        get => dropRate;
        init => dropRate = CheckRate(value, nameof(DropRate));
    }

    /// <summary>The probability, from 0 to 1, that a message that is not lost is delivered twice.</summary>
    /// <value>The default is 0.</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is not between 0 and 1.</exception>
    public double DuplicateRate
    {
        get => duplicateRate;
        init => duplicateRate = CheckRate(value, nameof(DuplicateRate));
    }

    /// <summary>The shortest delay before a message is delivered.</summary>
    /// <value>The default is zero: delivery happens on the sender's thread, before the send returns.</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public TimeSpan MinDelay
    {
        get => minDelay;
        init => minDelay = CheckDelay(value, nameof(MinDelay));
    }

    /// <summary>The longest delay before a message is delivered (not counting the reordering delay).</summary>
    /// <value>The default is zero. Must not be less than <see cref="MinDelay"/>.</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public TimeSpan MaxDelay
    {
        get => maxDelay;
        init => maxDelay = CheckDelay(value, nameof(MaxDelay));
    }

    /// <summary>
    /// The probability, from 0 to 1, that a message gets an extra random delay of up to
    /// <see cref="MaxDelay"/> + 1 ms, so that later messages overtake it.
    /// </summary>
    /// <value>The default is 0.</value>
    /// <exception cref="ArgumentOutOfRangeException">The value is not between 0 and 1.</exception>
    public double ReorderRate
    {
        get => reorderRate;
        init => reorderRate = CheckRate(value, nameof(ReorderRate));
    }

    /// <summary>Whether these faults leave the link perfect, so that no random decision is needed.</summary>
    internal bool IsNone =>
        dropRate == 0 && duplicateRate == 0 && reorderRate == 0 && maxDelay == TimeSpan.Zero;

    /// <summary>Checks the rules that span several properties.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="MaxDelay"/> is less than <see cref="MinDelay"/>.</exception>
    internal void Validate()
    {
        if (maxDelay < minDelay)
        {
            throw new ArgumentOutOfRangeException(
                nameof(MaxDelay),
                maxDelay,
                $"MaxDelay must not be less than MinDelay; MaxDelay was {Format(maxDelay)} and MinDelay {Format(minDelay)}.");
        }
    }

    private static double CheckRate(double value, string name)
    {
        if (!(value >= 0 && value <= 1))
        {
            throw new ArgumentOutOfRangeException(
                name,
                value,
                $"{name} must be between 0 and 1 (inclusive); it was {value.ToString(CultureInfo.InvariantCulture)}.");
        }

        return value;
    }

    private static TimeSpan CheckDelay(TimeSpan value, string name)
    {
        if (value < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(
                name,
                value,
                $"{name} must not be negative; it was {Format(value)}.");
        }

        return value;
    }

    private static string Format(TimeSpan value) => value.ToString("c", CultureInfo.InvariantCulture);
}
