using System.Collections.Concurrent;

namespace Gaggle.Runtime;

/// <summary>
/// The node loop's inputs and its scheduling. Any thread adds inputs in order; one run of passes at a
/// time takes them, on the thread pool, or on the writer's own thread when it asks for that and no run
/// is on (an application's append to an idle node: the thread that would wait for a pool thread to
/// wake does the pass itself, and saves that hand-off). A run repeats the pass while inputs are
/// waiting, then lets go and looks again (an input added as it let go is taken by it or by the writer
/// that saw it let go: never left behind). A run on a writer's thread makes one pass at most: what
/// came meanwhile goes on on the thread pool, so that under load callers only queue and passes batch.
/// Held until <see cref="Start"/>; <see cref="Complete"/> refuses later inputs and ends the loop once
/// what came before was taken (<see cref="Ended"/>). A pass that throws ends the loop at once: the
/// failure is reported first, then later inputs are refused, and the input the pass was on and those
/// still waiting are abandoned (<see cref="ILoopInput.Abandon"/>) with the error the report returned,
/// so nobody waits for a pass that never comes, and a writer refused afterwards finds the failure
/// already recorded.
/// </summary>
internal sealed class LoopInbox(Func<ValueTask> pass, Func<Exception, Exception> failed)
{
    private readonly ConcurrentQueue<ILoopInput> _queue = new();
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _completed;
    private ExecutionContext? _context;

    /// <summary>
    /// The input the pass took last: the one being handled if the pass fails while on it (null once a
    /// read found the queue empty; after a full batch, an input already handled, whose abandon does nothing).
    /// </summary>
    private ILoopInput? _taken;

    /// <summary>1 while a run is scheduled or on (or before <see cref="Start"/>), else 0.</summary>
    private int _running = 1;

    /// <summary>Completes when the loop ended: completed and drained, or failed.</summary>
    public Task Ended => _ended.Task;

    /// <summary>Takes the next input, for the pass.</summary>
    public bool TryRead(out ILoopInput input)
    {
        bool read = _queue.TryDequeue(out input!);
        _taken = input;
        return read;
    }

    /// <summary>
    /// Adds <paramref name="input"/> and, if no run is on, starts one (<paramref name="wake"/> says
    /// where, or that none is needed now). False once completed.
    /// </summary>
    public bool TryWrite(ILoopInput input, LoopWake wake = LoopWake.ThreadPool)
    {
        lock (_gate)
        {
            if (_completed)
            {
                return false;
            }

            _queue.Enqueue(input);
        }

        if (wake != LoopWake.Later)
        {
            // Not inside a task of a scheduler of the writer's (an exclusive one, say): what the pass hands
            // off with a plain await or a yield would be queued to that scheduler, behind the writer. Nor
            // when the starter suppressed the flow of its context: the pass would run in the writer's.
            Schedule(wake == LoopWake.HereIfIdle && TaskScheduler.Current == TaskScheduler.Default && _context is not null);
        }

        return true;
    }

    /// <summary>
    /// Lets runs begin (inputs added before wait until now). Passes run in the execution context
    /// captured here (the starter's logging scopes and the like, but no trace: see
    /// <see cref="GaggleNode"/>'s loop), wherever they run, a writer's thread included.
    /// </summary>
    public void Start()
    {
        var activity = System.Diagnostics.Activity.Current;
        System.Diagnostics.Activity.Current = null;
        _context = ExecutionContext.Capture();
        System.Diagnostics.Activity.Current = activity;
        Interlocked.Exchange(ref _running, 0);
        Schedule(inline: false);
    }

    /// <summary>Refuses inputs from now on; the loop ends once it took those added before.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _completed = true;
        }

        Schedule(inline: false);
    }

    private void Schedule(bool inline)
    {
        if (_queue.IsEmpty && !Volatile.Read(ref _completed))
        {
            return;
        }

        if (Interlocked.CompareExchange(ref _running, 1, 0) != 0)
        {
            return;
        }

        if (inline)
        {
            Run(onWritersThread: true);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(static inbox => inbox.Run(onWritersThread: false), this, preferLocal: false);
        }
    }

    private static readonly ContextCallback RunOnWritersThread = static inbox => _ = ((LoopInbox)inbox!).RunAsync(onWritersThread: true);

    private static readonly ContextCallback RunOnThreadPool = static inbox => _ = ((LoopInbox)inbox!).RunAsync(onWritersThread: false);

    private void Run(bool onWritersThread)
    {
        var callback = onWritersThread ? RunOnWritersThread : RunOnThreadPool;

        // A writer's synchronization context (a UI thread's) is not the loop's: what the pass hands off
        // with a plain await or a yield (an RPC handler, the continuation of a storage or channel that
        // does not configure its awaits) goes to the thread pool, not behind a writer that may be
        // blocking on the result. Pool threads have none.
        var writersContext = SynchronizationContext.Current;
        if (writersContext is not null)
        {
            SynchronizationContext.SetSynchronizationContext(null);
        }

        try
        {
            if (_context is { } context)
            {
                ExecutionContext.Run(context, callback, this);
            }
            else
            {
                callback(this);
            }
        }
        finally
        {
            if (writersContext is not null)
            {
                SynchronizationContext.SetSynchronizationContext(writersContext);
            }
        }
    }

    /// <summary>One input's waiter learns of the failure; one that throws does not keep the others waiting.</summary>
    private static void Abandon(ILoopInput? input, Exception error)
    {
        try
        {
            input?.Abandon(error);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Abandon must not throw; if it does, the remaining inputs and the loop's end come first.
        }
    }

    /// <summary>Runs passes while inputs wait; on a writer's thread only one, the rest on the thread pool.</summary>
    private async Task RunAsync(bool onWritersThread)
    {
        try
        {
            while (true)
            {
                while (!_queue.IsEmpty)
                {
                    await pass().ConfigureAwait(false);
                    if (onWritersThread && !_queue.IsEmpty)
                    {
                        // Still on: the run goes on elsewhere, and the writer goes back to its work.
                        ThreadPool.UnsafeQueueUserWorkItem(static inbox => inbox.Run(onWritersThread: false), this, preferLocal: false);
                        return;
                    }
                }

                // Let go, then look again: a writer that added before this saw the run on and left its input to it.
                // Completion is read before the queue: every input accepted before Complete is in the queue by
                // then, so an empty queue means the loop really ended; a Complete this misses starts its own run.
                Interlocked.Exchange(ref _running, 0);
                bool completed = Volatile.Read(ref _completed);
                if (_queue.IsEmpty)
                {
                    if (completed)
                    {
                        _ended.TrySetResult();
                    }

                    return;
                }

                if (Interlocked.CompareExchange(ref _running, 1, 0) != 0)
                {
                    return;
                }

                if (onWritersThread)
                {
                    // Taken back for an input that came as it let go: that pass is the thread pool's.
                    ThreadPool.UnsafeQueueUserWorkItem(static inbox => inbox.Run(onWritersThread: false), this, preferLocal: false);
                    return;
                }
            }
        }
        catch (Exception e)
        {
            // The run stays on for good: no pass runs again.
            var error = e;
            try
            {
                error = failed(e);
            }
            finally
            {
                lock (_gate)
                {
                    _completed = true;
                }

                Abandon(_taken, error);
                while (_queue.TryDequeue(out var input))
                {
                    Abandon(input, error);
                }

                _ended.TrySetResult();
            }
        }
    }
}

/// <summary>How an input added to the <see cref="LoopInbox"/> gets a pass when no run is on.</summary>
internal enum LoopWake
{
    /// <summary>A run starts on the thread pool.</summary>
    ThreadPool,

    /// <summary>
    /// The writer's thread makes the pass (until the pass's first wait that does not complete at once),
    /// outside the writer's synchronization context; the thread pool does when the writer runs in a
    /// task of a scheduler of its own.
    /// </summary>
    HereIfIdle,

    /// <summary>No run starts for it: the next pass, for whatever reason (the node's tick makes one every tick interval), takes it.</summary>
    Later,
}
