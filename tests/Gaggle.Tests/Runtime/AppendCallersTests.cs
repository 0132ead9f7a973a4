using Gaggle.Runtime;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>The callers waiting for their appends: how many wait, and whether several waited at once lately.</summary>
[TestFixture]
public sealed class AppendCallersTests
{
    [Test]
    public void TwoAppendsWaitingAtOnceMakeTheCallersConcurrentForTheMemoryThenNoLonger()
    {
        var time = new ManualTimeProvider();
        var callers = new AppendCallers(time, default, append => new TimeoutException());
        callers.Add(new PendingAppend(1, [1]));
        Assert.That((callers.Count, callers.RecentlyConcurrent), Is.EqualTo((1, false)), "one at a time is not concurrent");
        Assert.That(callers.Remove(1), Is.True);
        callers.Add(new PendingAppend(2, [1]));
        Assert.That((callers.Count, callers.RecentlyConcurrent), Is.EqualTo((1, false)), "one after the other neither");

        callers.Add(new PendingAppend(3, [1]));
        Assert.That((callers.Count, callers.RecentlyConcurrent), Is.EqualTo((2, true)));
        Assert.That(callers.Remove(2) && callers.Remove(3), Is.True);
        Assert.That(callers.Remove(3), Is.False, "taken once");
        time.Advance(AppendCallers.ConcurrencyMemory - TimeSpan.FromMilliseconds(1));
        Assert.That((callers.Count, callers.RecentlyConcurrent), Is.EqualTo((0, true)), "still within the memory");
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(callers.RecentlyConcurrent, Is.False, "the memory ran out");

        callers.Add(new PendingAppend(4, [1]));
        callers.Add(new PendingAppend(4, [2]));
        Assert.That((callers.Count, callers.RecentlyConcurrent), Is.EqualTo((1, false)), "the same append registered again counts once");
        callers.FailAll(new InvalidOperationException("stopped"));
        Assert.That(callers.Count, Is.Zero);
    }

    [Test]
    public void AnAnsweredAppendCountsUntilItsCallerResumesAndOneWhoseCallerLeftFirstNever()
    {
        var callers = new AppendCallers(new ManualTimeProvider(), default, append => new TimeoutException());
        var (committed, timedOut, left) = (new PendingAppend(1, [1]), new PendingAppend(2, [1]), new PendingAppend(3, [1]));
        callers.Add(committed);
        callers.Add(timedOut);
        callers.Add(left);
        callers.Resumed(left);
        Assert.That(callers.Remove(3), Is.True, "its caller gave up waiting");

        var events = new NodeEvents();
        events.Committed.Add((committed, 7));
        events.Committed.Add((left, 8));
        events.TimedOut.Add(timedOut);
        callers.CarryOut(events);
        Assert.That(callers.AnsweredNotResumed, Is.EqualTo(2), "answered, their callers not resumed yet (a manual clock waits for them)");

        callers.Resumed(committed);
        callers.Resumed(committed);
        Assert.That(callers.AnsweredNotResumed, Is.EqualTo(1), "a caller resumes once");
        callers.Resumed(timedOut);
        Assert.That(callers.AnsweredNotResumed, Is.Zero);
    }
}
