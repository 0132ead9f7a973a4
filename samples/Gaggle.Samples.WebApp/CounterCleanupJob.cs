using System.Collections.Concurrent;
using Gaggle.Hosting;
using Microsoft.Extensions.Options;

namespace Gaggle.Samples.WebApp;

/// <summary>
/// A periodic cleanup that must not run on several instances at once: a singleton job. It clears
/// counters nobody has incremented for <see cref="WebAppOptions.CounterRetention"/>, fencing its
/// writes with the job's token so that a run that lost the job cannot interfere with the next one.
/// </summary>
public sealed partial class CounterCleanupJob(
    FencedCounters counters, JobStartTimes started, IOptions<WebAppOptions> options, ILogger<CounterCleanupJob> logger) : ISingletonJob
{
    /// <inheritdoc />
    public async Task RunAsync(SingletonJobContext context, CancellationToken cancellationToken)
    {
        started.Started(context);
        try
        {
            using var timer = new PeriodicTimer(options.Value.CleanupInterval);
            do
            {
                long? removed = await counters.CleanupAsync(context.FencingToken, options.Value.CounterRetention);
                if (removed is null)
                {
                    LogStale(logger, context.FencingToken);
                    return; // a newer run exists elsewhere: give the job up
                }

                LogCleaned(logger, removed.Value, context.NodeId, context.FencingToken);
            }
            while (await timer.WaitForNextTickAsync(cancellationToken));
        }
        finally
        {
            started.Stopped(context);
        }
    }

    [LoggerMessage(1001, LogLevel.Information, "Counter cleanup on {NodeId} (fencing token {Token}): {Removed} idle counters cleared")]
    private static partial void LogCleaned(ILogger logger, long removed, string nodeId, long token);

    [LoggerMessage(1002, LogLevel.Warning, "Counter cleanup with fencing token {Token} was refused: a newer run has written")]
    private static partial void LogStale(ILogger logger, long token);
}

/// <summary>When each singleton job run on this instance started (for <c>GET /jobs</c>).</summary>
public sealed class JobStartTimes(TimeProvider time)
{
    private readonly ConcurrentDictionary<(string Job, long Token), DateTimeOffset> _since = new();

    /// <summary>When the run started; the first time it is asked for when the job has not reported yet.</summary>
    public DateTimeOffset Since(SingletonJobContext run) => _since.GetOrAdd((run.JobName, run.FencingToken), _ => time.GetUtcNow());

    internal void Started(SingletonJobContext run) => _since.TryAdd((run.JobName, run.FencingToken), time.GetUtcNow());

    internal void Stopped(SingletonJobContext run) => _since.TryRemove((run.JobName, run.FencingToken), out _);
}
