namespace Gaggle.DistributedLock;

/// <summary>
/// Keeps a thread pool thread in reserve for each synchronous call that blocks a pool thread on Gaggle:
/// the thread pool's minimum of worker threads is raised by one while each such call waits, and set
/// back when the last one is done.
/// </summary>
/// <remarks>
/// A synchronous <c>Acquire</c> blocks its thread while the work it waits for (the node's loop, the
/// commit of its request, the continuations that hand it the hold) needs pool threads. When blocked
/// callers hold every pool thread, each step of that work waits for the pool to add a thread, which it
/// does a few times a second, so a handful of blocked callers can take seconds over what their async
/// twins do in milliseconds. Below its minimum the pool adds threads at once, so a reserved thread per
/// blocked call keeps the work flowing. A minimum raised by someone else meanwhile is left alone: it is
/// only set back while it is still the one set here.
/// </remarks>
internal static class ThreadPoolReserve
{
    private static readonly Lock Gate = new();
    private static int _blocked;

    /// <summary>The minimum before the first blocked call of a run of them.</summary>
    private static int _baseline;

    /// <summary>The minimum set here last; -1 when none is in force.</summary>
    private static int _set = -1;

    /// <summary>The number of synchronous calls blocking a pool thread now.</summary>
    internal static int Blocked
    {
        get
        {
            lock (Gate)
            {
                return _blocked;
            }
        }
    }

    /// <summary>A call is about to block: one more thread in reserve until <see cref="Leave"/>.</summary>
    internal static void Enter()
    {
        lock (Gate)
        {
            ThreadPool.GetMinThreads(out int workers, out int io);
            if (_blocked++ == 0 || workers != _set)
            {
                // The first blocked call, or the minimum was changed by someone else since: that is what to add to.
                _baseline = workers - (_blocked - 1);
            }

            Set(_baseline + _blocked, io);
        }
    }

    /// <summary>A blocked call is done: its reserved thread is given back.</summary>
    internal static void Leave()
    {
        lock (Gate)
        {
            _blocked--;
            ThreadPool.GetMinThreads(out int workers, out int io);
            if (workers == _set)
            {
                Set(_baseline + _blocked, io);
            }

            if (_blocked == 0)
            {
                _set = -1;
            }
        }
    }

    private static void Set(int workers, int io)
    {
        // Refused only above the pool's maximum: then the calls block as they would without a reserve.
        if (workers >= 1 && ThreadPool.SetMinThreads(workers, io))
        {
            _set = workers;
        }
    }
}
