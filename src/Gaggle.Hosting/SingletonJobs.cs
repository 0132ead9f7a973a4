using System.Collections.Concurrent;

namespace Gaggle.Hosting;

/// <summary>A job that must run on exactly one instance of the application at a time.</summary>
public interface ISingletonJob
{
    /// <summary>
    /// Runs the job until <paramref name="cancellationToken"/> is cancelled: the host stops, or this
    /// instance lost the job's lock (then another instance takes over; stop promptly). When it returns
    /// normally, the instance gives the job up and it is scheduled again (possibly elsewhere).
    /// </summary>
    /// <param name="context">The job's name and the fencing token of this run.</param>
    /// <param name="cancellationToken">Cancelled when this instance must stop running the job.</param>
    Task RunAsync(SingletonJobContext context, CancellationToken cancellationToken);
}

/// <summary>What a run of a singleton job knows about itself.</summary>
/// <param name="JobName">The job's cluster-wide name.</param>
/// <param name="NodeId">The node running it.</param>
/// <param name="FencingToken">Strictly increases with every run of this job anywhere: pass it to what the job writes.</param>
/// <param name="StartedAt">When this instance took the job's lock for this run (the host's <see cref="TimeProvider"/>).</param>
public sealed record SingletonJobContext(string JobName, string NodeId, long FencingToken, DateTimeOffset StartedAt);

/// <summary>How singleton jobs are scheduled (configuration section <c>Gaggle:Jobs</c>).</summary>
public sealed class SingletonJobOptions
{
    /// <summary>
    /// How often an instance looks for a job that runs nowhere it knows of: in its own copy of the
    /// lock table, at no cost to the log; it tries to take the job (a log entry) only when it looks
    /// free. An instance already running k jobs looks (1 + 2k) times less often.
    /// </summary>
    /// <value>The default is 1 s.</value>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a job that returned or failed waits before it is tried again.</summary>
    /// <value>The default is 5 s.</value>
    public TimeSpan RestartDelay { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>The singleton jobs this instance runs now.</summary>
public sealed class SingletonJobRegistry
{
    private readonly ConcurrentDictionary<string, SingletonJobContext> _running = new(StringComparer.Ordinal);

    internal SemaphoreSlim AcquireGate { get; } = new(1, 1);

    /// <summary>The names of every singleton job registered in this application (the same on every instance).</summary>
    internal ConcurrentDictionary<string, bool> JobNames { get; } = new(StringComparer.Ordinal);

    internal static string LockName(string job) => "gaggle:job:" + job;

    internal static string PresenceName(string nodeId) => "gaggle:presence:" + nodeId;

    /// <summary>The jobs running on this instance, by name.</summary>
    public IReadOnlyDictionary<string, SingletonJobContext> Running => _running;

    internal void Started(SingletonJobContext context) => _running[context.JobName] = context;

    internal void Stopped(string name) => _running.TryRemove(name, out _);
}
