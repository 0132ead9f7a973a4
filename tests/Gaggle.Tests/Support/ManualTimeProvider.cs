namespace Gaggle.Tests.Support;

/// <summary>
/// A clock that moves only when a test calls <see cref="Advance"/>; due timers fire on the caller's
/// thread, earliest first, timers due at the same instant in the order they were scheduled.
/// </summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private readonly Lock gate = new();
    private readonly List<ManualTimer> scheduled = [];
    private DateTimeOffset now = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private long nextSequence;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override DateTimeOffset GetUtcNow()
    {
        lock (gate)
        {
            return now;
        }
    }

    public override long GetTimestamp() => GetUtcNow().UtcTicks;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Moves the clock forward by <paramref name="by"/>, firing every timer that falls due.</summary>
    public void Advance(TimeSpan by)
    {
        DateTimeOffset target;
        lock (gate)
        {
            target = now + by;
        }

        while (true)
        {
            ManualTimer? next;
            lock (gate)
            {
                next = scheduled
                    .Where(timer => timer.Due <= target)
                    .OrderBy(timer => timer.Due)
                    .ThenBy(timer => timer.Sequence)
                    .FirstOrDefault();
                if (next is null)
                {
                    now = target;
                    return;
                }

                now = next.Due;
                scheduled.Remove(next);
                if (next.Period > TimeSpan.Zero)
                {
                    Schedule(next, now + next.Period, next.Period);
                }
            }

            next.Fire();
        }
    }

    private void Schedule(ManualTimer timer, DateTimeOffset due, TimeSpan period)
    {
        timer.Due = due;
        timer.Period = period;
        timer.Sequence = nextSequence++;
        scheduled.Add(timer);
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        public DateTimeOffset Due { get; set; }

        public TimeSpan Period { get; set; }

        public long Sequence { get; set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner.gate)
            {
                owner.scheduled.Remove(this);
                if (dueTime != Timeout.InfiniteTimeSpan)
                {
                    owner.Schedule(this, owner.now + dueTime, period == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : period);
                }

                return true;
            }
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (owner.gate)
            {
                owner.scheduled.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
