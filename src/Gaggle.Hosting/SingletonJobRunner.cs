using Gaggle.Locks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gaggle.Hosting;

/// <summary>
/// Runs one singleton job wherever it holds the job's lock (<c>gaggle:job:{name}</c>). Instances
/// already running jobs wait longer before trying, and one instance tries one job at a time, so
/// jobs spread over instances instead of piling onto the first one up.
/// </summary>
/// <remarks>
/// Every try is a log entry, so an instance first looks at its own copy of the lock table (no entry)
/// and tries only when the job looks free: while the job runs somewhere, waiting instances add
/// nothing to the log. A look may be stale, but the try decides; a holder that dies shows until its
/// lease ends in the table, as the try would have found anyway.
/// </remarks>
internal sealed partial class SingletonJobRunner<TJob>(
    string name,
    IServiceProvider services,
    GaggleNode node,
    SingletonJobRegistry registry,
    SingletonJobOptions options,
    TimeProvider time,
    ILogger<SingletonJobRunner<TJob>> logger) : BackgroundService
    where TJob : class, ISingletonJob
{
    private readonly string _lockName = SingletonJobRegistry.LockName(name);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        registry.JobNames[name] = true;
        bool first = true;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // The first look comes soon after start, later ones every poll interval (less often on an
                // instance already running jobs); the jitter keeps instances from looking in step.
                int running = registry.Running.Count;
                var wait = first
                    ? options.PollInterval * Random.Shared.NextDouble() * 0.25
                    : options.PollInterval * (1 + 2 * running) * (0.75 + Random.Shared.NextDouble() * 0.25);
                first = false;
                await Task.Delay(wait, time, stoppingToken).ConfigureAwait(false);
                var handle = await TryTakeAsync(running, stoppingToken).ConfigureAwait(false);
                if (handle is not null && await RunAsync(handle, stoppingToken).ConfigureAwait(false))
                {
                    await Task.Delay(options.RestartDelay, time, stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException or GaggleRpcException)
            {
                // No leader right now, or the node is stopping: try again later.
                LogTryFailed(logger, name, e.Message);
            }
        }
    }

    /// <param name="runningBefore">How many jobs this instance ran when the wait before this try began.</param>
    /// <param name="stoppingToken">Stops the try.</param>
    private async Task<GaggleLockHandle?> TryTakeAsync(int runningBefore, CancellationToken stoppingToken)
    {
        await registry.AcquireGate.WaitAsync(stoppingToken).ConfigureAwait(false);
        try
        {
            // This instance took another job while this runner waited: wait again, for longer, so the
            // other instances' presence (which this copy of the lock table may not show yet, right after
            // the cluster starts) can be seen before a second job piles onto this one.
            if (registry.Running.Count > runningBefore
                || !LooksFree(await node.Locks.PeekAsync(_lockName, stoppingToken).ConfigureAwait(false))
                || (registry.Running.Count > 0 && await SomeoneLessBusyIsAliveAsync(stoppingToken).ConfigureAwait(false)))
            {
                return null;
            }

            var handle = await node.Locks.TryAcquireAsync(_lockName, TimeSpan.Zero, stoppingToken).ConfigureAwait(false);
            if (handle is not null)
            {
                registry.Started(new SingletonJobContext(name, node.Id, handle.FencingToken, time.GetUtcNow()));
            }

            return handle;
        }
        finally
        {
            registry.AcquireGate.Release();
        }
    }

    /// <summary>Nobody holds or waits for the lock, as far as this node's copy of the table knows.</summary>
    private static bool LooksFree(LockInfo info) => info.Holders.Count == 0 && info.QueueLength == 0;

    /// <summary>
    /// Jobs spread: an instance already running k jobs leaves a job to any live member running fewer.
    /// Liveness is the member's presence lock; loads are the job locks' holders. Both are read from
    /// this node's copy of the lock table (no log entries): it is a heuristic, the try decides.
    /// </summary>
    private async Task<bool> SomeoneLessBusyIsAliveAsync(CancellationToken stoppingToken)
    {
        var loads = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var job in registry.JobNames.Keys)
        {
            foreach (var holder in (await node.Locks.PeekAsync(SingletonJobRegistry.LockName(job), stoppingToken).ConfigureAwait(false)).Holders)
            {
                loads[holder.NodeId] = loads.GetValueOrDefault(holder.NodeId) + 1;
            }
        }

        int mine = registry.Running.Count;
        foreach (var member in node.Members.Where(m => m != node.Id))
        {
            if (loads.GetValueOrDefault(member) < mine
                && (await node.Locks.PeekAsync(SingletonJobRegistry.PresenceName(member), stoppingToken).ConfigureAwait(false)).Holders.Count > 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Runs the job while the hold lasts; true when the job ended by itself (or failed), false when it was stopped.</summary>
    private async Task<bool> RunAsync(GaggleLockHandle handle, CancellationToken stoppingToken)
    {
        await using (handle.ConfigureAwait(false))
        {
            using var run = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, handle.HandleLostToken);
            var context = registry.Running.TryGetValue(name, out var started) && started.FencingToken == handle.FencingToken
                ? started
                : new SingletonJobContext(name, node.Id, handle.FencingToken, time.GetUtcNow());
            LogStarted(logger, name, node.Id, handle.FencingToken);
            try
            {
                await using var scope = services.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<TJob>().RunAsync(context, run.Token).ConfigureAwait(false);
                return true;
            }
            catch (OperationCanceledException) when (run.IsCancellationRequested)
            {
                return false;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogFailed(logger, e, name);
                return true;
            }
            finally
            {
                // The job has stopped before the hold is released: two runs never overlap.
                registry.Stopped(name);
                LogStopped(logger, name, node.Id, handle.HandleLostToken.IsCancellationRequested && !stoppingToken.IsCancellationRequested);
            }
        }
    }

    [LoggerMessage(201, LogLevel.Information, "Singleton job {Job} started on {NodeId} with fencing token {Token}")]
    private static partial void LogStarted(ILogger logger, string job, string nodeId, long token);

    [LoggerMessage(202, LogLevel.Information, "Singleton job {Job} stopped on {NodeId} (hold lost: {Lost})")]
    private static partial void LogStopped(ILogger logger, string job, string nodeId, bool lost);

    [LoggerMessage(203, LogLevel.Error, "Singleton job {Job} failed")]
    private static partial void LogFailed(ILogger logger, Exception exception, string job);

    [LoggerMessage(204, LogLevel.Debug, "Singleton job {Job}: could not try to take it now ({Reason})")]
    private static partial void LogTryFailed(ILogger logger, string job, string reason);
}
