using System.Diagnostics;
using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>
/// A manual clock moves on only once the node's off-loop work is done (<see cref="GaggleNode.OffLoopWorkPending"/>):
/// a lock renewal that committed must have set its next timer by then, or the clock runs past the
/// renewal's due time while its thread waits for a CPU (here: a thread paused where the renewal sets its timer).
/// </summary>
[TestFixture]
public sealed class RenewalManualClockTests
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(4);

    [Test]
    public async Task ARenewedHoldSetsItsNextTimerBeforeTheManualClockMovesOn()
    {
        await using var cluster = new ManualTimeCluster(["a"], options => options.LockLeaseDuration = TimeSpan.FromSeconds(1));
        var clock = new PausingClock(cluster.Time);
        cluster.NodeClock = clock;
        var node = await cluster.StartAsync("a");
        await cluster.AdvanceUntilAsync(() => node.IsLeader, "a to lead");
        var acquiring = node.Locks.AcquireAsync("x", TimeSpan.FromSeconds(10));
        await cluster.AdvanceUntilAsync(() => acquiring.IsCompleted, "the grant");
        var hold = await acquiring;

        // The renewal after the next one to commit is set by a thread that is descheduled for a while.
        clock.PauseNextRenewalTimer(TimeSpan.FromSeconds(1));
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(2));
        await clock.PauseEnded.WaitAsync(TimeSpan.FromSeconds(30));
        await cluster.AdvanceAsync(TimeSpan.FromMilliseconds(100));

        Assert.Multiple(() =>
        {
            Assert.That(clock.MovedDuringPause, Is.EqualTo(TimeSpan.Zero), "the manual clock waited for the renewal to set its next timer");
            Assert.That(hold.HandleLostToken.IsCancellationRequested, Is.False, "the hold, renewed every third of its lease, was not lost");
        });

        var releasing = hold.DisposeAsync().AsTask();
        await cluster.AdvanceUntilAsync(() => releasing.IsCompleted, "the release");
        await releasing;
    }

    [Test]
    public async Task ANodeStoppingWhileAHandleIsMadeReleasesItsHolds()
    {
        await using var cluster = new ManualTimeCluster(["a"]);
        var clock = new PausingClock(cluster.Time);
        cluster.NodeClock = clock;
        var node = await cluster.StartAsync("a");
        await cluster.AdvanceUntilAsync(() => node.IsLeader, "a to lead");

        // The node begins to stop once the grant's handle is tracked, while the handle is still being made.
        Task? stopping = null;
        clock.WhileAHandleIsMade(() =>
        {
            stopping = node.DisposeAsync().AsTask();
            stopping.ContinueWith(_ => { }, TaskScheduler.Default).Wait(TimeSpan.FromSeconds(2));
        });
        var acquiring = node.Locks.AcquireAsync("x", TimeSpan.FromSeconds(10));

        // The node stops meanwhile, so the clock moves without waiting for its loop.
        var watch = Stopwatch.StartNew();
        while (!(acquiring.IsCompleted && stopping is { IsCompleted: true }) && watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            cluster.Time.Advance(Step);
            await Task.Delay(1);
        }

        Assert.That(acquiring.IsCompleted && stopping is { IsCompleted: true }, "the acquire and the stop ended");
        Assert.That(async () => await acquiring, Throws.TypeOf<ObjectDisposedException>(), "granted while the node stops: no handle");
        Assert.That(async () => await stopping!, Throws.Nothing, "the stop released the node's holds");
    }

    /// <summary>The manual clock, whose timer for a hold's renewal can be set by a paused thread (once, when armed).</summary>
    private sealed class PausingClock(ManualTimeProvider inner) : TimeProvider
    {
        private readonly TaskCompletionSource _pauseEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TimeSpan _pause;
        private int _armed;
        private Action? _whileAHandleIsMade;

        public Task PauseEnded => _pauseEnded.Task;

        public TimeSpan MovedDuringPause { get; private set; }

        public override long TimestampFrequency => inner.TimestampFrequency;

        public override long GetTimestamp() => inner.GetTimestamp();

        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow();

        public void PauseNextRenewalTimer(TimeSpan pause)
        {
            _pause = pause;
            Volatile.Write(ref _armed, 1);
        }

        public void WhileAHandleIsMade(Action action) => _whileAHandleIsMade = action;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            if (_whileAHandleIsMade is not null && SetAsAHandleIsMade() && Interlocked.Exchange(ref _whileAHandleIsMade, null) is { } action)
            {
                action();
            }

            if (Volatile.Read(ref _armed) == 1 && SetByRenewalAfterARenewal() && Interlocked.Exchange(ref _armed, 0) == 1)
            {
                var before = inner.GetUtcNow();
                Thread.Sleep(_pause);
                MovedDuringPause = inner.GetUtcNow() - before;
                var timer = inner.CreateTimer(callback, state, dueTime, period);
                _pauseEnded.TrySetResult();
                return timer;
            }

            return inner.CreateTimer(callback, state, dueTime, period);
        }

        private static bool SetAsAHandleIsMade()
            => new StackTrace().GetFrames().Any(f => f.GetMethod() is { IsConstructor: true } m && m.DeclaringType == typeof(GaggleLockHandle));

        /// <summary>Set by a handle's renewal loop, not as the handle is made (its first timer).</summary>
        private static bool SetByRenewalAfterARenewal()
        {
            var methods = new StackTrace().GetFrames().Select(f => f.GetMethod()).ToArray();
            return methods.Any(m => m?.DeclaringType?.FullName?.Contains("RenewLoopAsync", StringComparison.Ordinal) == true)
                && !methods.Any(m => m?.DeclaringType == typeof(GaggleLockHandle) && m.IsConstructor);
        }
    }
}
