using Gaggle.Hosting;
using Microsoft.Extensions.Options;

namespace Gaggle.Samples.WebApp;

/// <summary>
/// A periodic cleanup that must not run on several instances at once: a singleton job. It clears
/// counters nobody has incremented for <see cref="WebAppOptions.CounterRetention"/>, fencing its
/// writes with the job's token so that a run that lost the job cannot interfere with the next one.
/// </summary>
public sealed partial class CounterCleanupJob(
    FencedCounters counters, IOptions<WebAppOptions> options, ILogger<CounterCleanupJob> logger) : ISingletonJob
{
    /// <inheritdoc />
    public async Task RunAsync(SingletonJobContext context, CancellationToken cancellationToken)
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

    [LoggerMessage(1001, LogLevel.Information, "Counter cleanup on {NodeId} (fencing token {Token}): {Removed} idle counters cleared")]
    private static partial void LogCleaned(ILogger logger, long removed, string nodeId, long token);

    [LoggerMessage(1002, LogLevel.Warning, "Counter cleanup with fencing token {Token} was refused: a newer run has written")]
    private static partial void LogStale(ILogger logger, long token);
}
