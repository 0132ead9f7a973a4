using System.Collections.Concurrent;
using System.Diagnostics;
using Gaggle.Runtime;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// The node loop's inbox and scheduling (LoopInbox): one pass at a time, wherever it runs; nothing left
/// behind; a pass on an idle inbox's writer's thread, one at most; a clean end.
/// </summary>
[TestFixture]
public sealed class LoopInboxTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [Test]
    public async Task Inputs_from_many_writers_with_every_wake_are_all_taken_in_each_writers_order_by_one_pass_at_a_time()
    {
        const int Writers = 9;
        const int PerWriter = 2000;
        var taken = new ConcurrentQueue<(int Writer, int Number)>();
        int inPass = 0;
        int overlaps = 0;
        LoopInbox? inbox = null;
        inbox = new LoopInbox(
            () =>
            {
                if (Interlocked.Increment(ref inPass) != 1)
                {
                    Interlocked.Increment(ref overlaps);
                }

                while (inbox!.TryRead(out var input))
                {
                    taken.Enqueue(((Numbered)input).Id);
                }

                Interlocked.Decrement(ref inPass);
                return ValueTask.CompletedTask;
            },
            NoFailure);
        inbox.Start();

        LoopWake[] wakes = [LoopWake.ThreadPool, LoopWake.HereIfIdle, LoopWake.Later];
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(writer => Task.Run(() =>
        {
            for (int i = 0; i < PerWriter; i++)
            {
                Assert.That(inbox.TryWrite(new Numbered(writer, i), wakes[writer % wakes.Length]), Is.True);
            }
        })));

        inbox.Complete();
        await inbox.Ended.WaitAsync(Deadline);
        Assert.That(overlaps, Is.Zero, "two passes ran at once");
        Assert.That(taken, Has.Count.EqualTo(Writers * PerWriter), "every input was taken (the later ones at the end at the latest)");
        foreach (var group in taken.GroupBy(t => t.Writer))
        {
            Assert.That(group.Select(t => t.Number), Is.Ordered, $"writer {group.Key}'s inputs in its order");
        }

        Assert.That(inbox.TryWrite(new Numbered(0, -1)), Is.False, "completed: refused");
    }

    [Test]
    public async Task A_write_to_an_idle_inbox_that_asks_for_it_makes_the_pass_on_the_writers_thread_in_the_loops_context()
    {
        using var listener = new ActivityListener { ShouldListenTo = s => s.Name == "Gaggle.Tests.LoopInbox", Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData };
        ActivitySource.AddActivityListener(listener);
        using var source = new ActivitySource("Gaggle.Tests.LoopInbox");
        var passThreads = new ConcurrentQueue<int>();
        var passActivities = new ConcurrentQueue<Activity?>();
        LoopInbox? inbox = null;
        inbox = new LoopInbox(
            () =>
            {
                passThreads.Enqueue(Environment.CurrentManagedThreadId);
                passActivities.Enqueue(Activity.Current);
                while (inbox!.TryRead(out _))
                {
                }

                return ValueTask.CompletedTask;
            },
            NoFailure);

        // Started inside a span: the loop's passes still belong to no trace.
        using (source.StartActivity("starter"))
        {
            inbox.Start();
        }

        using var caller = source.StartActivity("caller");
        Assert.That(caller, Is.Not.Null);
        Assert.That(inbox.TryWrite(new Numbered(0, 0), LoopWake.HereIfIdle), Is.True);
        Assert.That(passThreads, Is.EqualTo(new[] { Environment.CurrentManagedThreadId }), "the pass ran on this thread, before the write returned");
        Assert.That(passActivities.Single(), Is.Null, "the caller's span is not the loop's");
        Assert.That(Activity.Current, Is.SameAs(caller), "the caller's span is its own again");

        Assert.That(inbox.TryWrite(new Numbered(0, 1), LoopWake.Later), Is.True);
        Assert.That(passThreads, Has.Count.EqualTo(1), "a later input starts no pass");
        Assert.That(inbox.TryWrite(new Numbered(0, 2)), Is.True);
        await Eventually.True(() => passThreads.Count == 2, "the thread pool makes the next pass");
        inbox.Complete();
        await inbox.Ended.WaitAsync(Deadline);
    }

    [Test]
    public async Task A_pass_never_runs_in_the_writers_synchronization_context_or_task_scheduler()
    {
        var passes = new ConcurrentQueue<(int Thread, SynchronizationContext? Context, TaskScheduler Scheduler)>();
        LoopInbox? inbox = null;
        inbox = new LoopInbox(
            () =>
            {
                passes.Enqueue((Environment.CurrentManagedThreadId, SynchronizationContext.Current, TaskScheduler.Current));
                while (inbox!.TryRead(out _))
                {
                }

                return ValueTask.CompletedTask;
            },
            NoFailure);
        inbox.Start();

        var writersContext = new OwnSynchronizationContext();
        SynchronizationContext? contextAfter = null;
        var writer = new Thread(() =>
        {
            SynchronizationContext.SetSynchronizationContext(writersContext);
            inbox.TryWrite(new Numbered(0, 0), LoopWake.HereIfIdle);
            contextAfter = SynchronizationContext.Current;
        });
        writer.Start();
        writer.Join();
        await Eventually.True(() => passes.Count == 1, "the first input taken");
        Assert.That(passes.Single().Thread, Is.EqualTo(writer.ManagedThreadId), "an idle inbox's writer still makes the pass");
        Assert.That(passes.Single().Context, Is.Null, "outside the writer's synchronization context");
        Assert.That(contextAfter, Is.SameAs(writersContext), "which is the writer's again once the pass is done");

        var exclusive = new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler;
        await Task.Factory.StartNew(() => inbox.TryWrite(new Numbered(0, 1), LoopWake.HereIfIdle), CancellationToken.None, TaskCreationOptions.None, exclusive);
        await Eventually.True(() => passes.Count == 2, "the second input taken");
        Assert.That(passes.Last().Scheduler, Is.SameAs(TaskScheduler.Default), "not inside a task of the writer's scheduler");
        inbox.Complete();
        await inbox.Ended.WaitAsync(Deadline);
    }

    [Test]
    public async Task A_pass_on_a_writers_thread_leaves_what_came_meanwhile_to_the_thread_pool()
    {
        var passThreads = new ConcurrentQueue<int>();
        var taken = new ConcurrentQueue<int>();
        LoopInbox? inbox = null;
        inbox = new LoopInbox(
            () =>
            {
                passThreads.Enqueue(Environment.CurrentManagedThreadId);
                while (inbox!.TryRead(out var input))
                {
                    int number = ((Numbered)input).Id.Number;
                    taken.Enqueue(number);
                    if (number == 0)
                    {
                        // Another writer's input, while this pass runs: the run is on, so it only queues.
                        Assert.That(inbox.TryWrite(new Numbered(1, 1), LoopWake.HereIfIdle), Is.True);
                        break;
                    }
                }

                return ValueTask.CompletedTask;
            },
            NoFailure);
        inbox.Start();

        var writer = new Thread(() => inbox.TryWrite(new Numbered(0, 0), LoopWake.HereIfIdle));
        writer.Start();
        writer.Join();
        await Eventually.True(() => taken.Count == 2, "both inputs taken");
        Assert.That(passThreads, Has.Count.EqualTo(2));
        Assert.That(passThreads.First(), Is.EqualTo(writer.ManagedThreadId), "the first pass ran on the writer's thread");
        Assert.That(passThreads.Last(), Is.Not.EqualTo(writer.ManagedThreadId), "the writer made one pass; the thread pool made the next");
        inbox.Complete();
        await inbox.Ended.WaitAsync(Deadline);
    }

    [Test]
    public async Task Nothing_runs_before_start_and_complete_without_inputs_ends_the_loop()
    {
        int passes = 0;
        LoopInbox? inbox = null;
        inbox = new LoopInbox(
            () =>
            {
                Interlocked.Increment(ref passes);
                while (inbox!.TryRead(out _))
                {
                }

                return ValueTask.CompletedTask;
            },
            NoFailure);
        Assert.That(inbox.TryWrite(new Numbered(0, 0), LoopWake.HereIfIdle), Is.True);
        Assert.That(Volatile.Read(ref passes), Is.Zero, "held until Start");

        inbox.Start();
        await Eventually.True(() => Volatile.Read(ref passes) == 1, "the held input taken once started");
        Assert.That(inbox.Ended.IsCompleted, Is.False);
        inbox.Complete();
        await inbox.Ended.WaitAsync(Deadline);
    }

    [Test]
    public async Task A_pass_that_throws_ends_the_loop_even_when_reporting_the_failure_throws_too()
    {
        Exception? reported = null;
        var inbox = new LoopInbox(
            () => throw new InvalidOperationException("storage failed"),
            e =>
            {
                reported = e;
                throw new InvalidOperationException("the logger failed too");
            });
        inbox.Start();
        Assert.That(inbox.TryWrite(new Numbered(0, 0), LoopWake.HereIfIdle), Is.True, "the failure stays in the loop: the writer's call returns");
        await inbox.Ended.WaitAsync(Deadline);
        Assert.That(reported?.Message, Is.EqualTo("storage failed"));
        Assert.That(inbox.TryWrite(new Numbered(0, 1)), Is.False, "no input is accepted after the loop failed");
    }

    [Test]
    public async Task The_input_a_failing_pass_was_on_and_those_waiting_behind_it_are_abandoned_with_the_reported_error_after_the_report()
    {
        var inPass = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fail = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fatal = new InvalidOperationException("the node stopped");
        bool reportedBeforeAbandoning = false;
        var abandoned = new List<(int Number, Exception Error, bool AfterReport)>();
        LoopInbox? inbox = null;
        inbox = new LoopInbox(
            async () =>
            {
                inbox!.TryRead(out _);
                inPass.TrySetResult();
                await fail.Task;
                throw new IOException("disk on fire");
            },
            e =>
            {
                Assert.That(e.Message, Is.EqualTo("disk on fire"));
                reportedBeforeAbandoning = true;
                return fatal;
            });
        inbox.Start();
        Assert.That(inbox.TryWrite(new Abandonable(0, (n, e) => abandoned.Add((n, e, reportedBeforeAbandoning)))), Is.True);
        await inPass.Task.WaitAsync(Deadline);
        for (int i = 1; i <= 3; i++)
        {
            int number = i;
            Assert.That(inbox.TryWrite(new Abandonable(number, (n, e) =>
            {
                abandoned.Add((n, e, reportedBeforeAbandoning));
                if (n == 2)
                {
                    throw new InvalidOperationException("an abandon that throws keeps nobody else waiting");
                }
            })), Is.True);
        }

        fail.SetResult();
        await inbox.Ended.WaitAsync(Deadline);
        Assert.That(abandoned.Select(a => a.Number), Is.EqualTo(new[] { 0, 1, 2, 3 }), "the one the pass was on, then every waiting input, in order");
        Assert.That(abandoned.All(a => ReferenceEquals(a.Error, fatal) && a.AfterReport), Is.True, "with the reported error, once reported");
        Assert.That(inbox.TryWrite(new Numbered(0, 4)), Is.False);
    }

    private static Exception NoFailure(Exception e)
    {
        Assert.Fail(e.ToString());
        return e;
    }

    private sealed class Abandonable(int number, Action<int, Exception> abandoned) : ILoopInput
    {
        public void Abandon(Exception error) => abandoned(number, error);
    }

    private sealed class OwnSynchronizationContext : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state) => ThreadPool.QueueUserWorkItem(_ => d(state));
    }

    private sealed class Numbered(int writer, int number) : ILoopInput
    {
        public (int Writer, int Number) Id { get; } = (writer, number);
    }
}
