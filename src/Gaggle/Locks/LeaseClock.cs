namespace Gaggle.Locks;

/// <summary>
/// The lease clock (milliseconds) a leader stamps into entries: it starts, before the first stamp
/// of each term this node leads, from the table's time (the highest committed stamp it applied)
/// and advances with this node's monotonic clock, so a leader with a skewed wall clock can neither
/// expire leases early nor move time backwards. It never starts from what this node stamped in an
/// earlier term: those entries may never have committed, and the clock that stamped them ran on
/// while the leaders after it started from the table's time; resuming it would move time forward
/// past leases granted since. Time spent without a leader does not count, which only lengthens leases.
/// </summary>
internal sealed class LeaseClock
{
    private long _base;
    private long _startUs;
    private long _lastStamp;
    private long _term = -1;

    /// <summary>The stamp for an entry proposed now.</summary>
    /// <param name="term">The term this node leads.</param>
    /// <param name="tableNow">The lock table's time (the highest committed stamp applied here).</param>
    /// <param name="nowUs">This node's monotonic clock, in microseconds.</param>
    public long Now(long term, long tableNow, long nowUs)
    {
        if (term != _term)
        {
            _term = term;
            _base = tableNow;
            _lastStamp = tableNow;
            _startUs = nowUs;
        }

        long elapsed = (nowUs - _startUs) / 1000;
        _lastStamp = Math.Max(_lastStamp, Math.Max(tableNow, _base + elapsed));
        return _lastStamp;
    }

    /// <summary>What <see cref="Now"/> would stamp, without starting the clock: the table's time until the first stamp of <paramref name="term"/>.</summary>
    public long Peek(long term, long tableNow, long nowUs)
        => term != _term ? tableNow : Math.Max(_lastStamp, Math.Max(tableNow, _base + ((nowUs - _startUs) / 1000)));

    public override string ToString() => $"stamps from {_base} + since {_startUs} us, last {_lastStamp}, term {_term}";
}
