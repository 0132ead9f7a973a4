using Gaggle.Locks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gaggle.Hosting;

/// <summary>
/// Starts the node with the host and makes it leave the cluster when the host stops: with voter
/// management (elastic mode, or Voters) it leaves gracefully (<see cref="GaggleNode.LeaveAsync"/>:
/// locks released, replaced, leadership handed over, removed) within the host's shutdown timeout,
/// then stops. While it runs, the node holds its presence lock (<c>gaggle:presence:{id}</c>), which
/// tells singleton-job runners on other instances that it is alive.
/// </summary>
internal sealed class GaggleHostedService(GaggleNode node, ILogger<GaggleHostedService>? logger = null) : IHostedService
{
    private readonly ILogger _logger = logger ?? NullLogger<GaggleHostedService>.Instance;

    /// <summary>The wait before another presence attempt after one failed at once (no leader yet, or the node started over).</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(100);

    private readonly CancellationTokenSource _stopping = new();
    private Task _presence = Task.CompletedTask;

    /// <summary>The loop holding the presence lock; it ends when the host stops or the node stopped for good.</summary>
    internal Task Presence => _presence;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await node.StartAsync(cancellationToken).ConfigureAwait(false);
        _presence = Task.Run(HoldPresenceAsync, CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _presence.ConfigureAwait(false);
        if (node.TargetVoters is not null)
        {
            try
            {
                // Within the host's shutdown timeout (the token), so a rolling deploy never keeps a gone voter.
                var membership = await node.LeaveAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                HostingLog.Left(_logger, node.Id, membership);
            }
            catch (Exception e) when (e is GaggleMembershipException or OperationCanceledException or TimeoutException or InvalidOperationException)
            {
                // The leader removes it after MemberTimeout instead.
                HostingLog.LeaveFailed(_logger, e, node.Id);
            }
        }

        await node.DisposeAsync().ConfigureAwait(false);
    }

    private async Task HoldPresenceAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            GaggleLockHandle? handle = null;
            bool failed = false;
            try
            {
                handle = await node.Locks.AcquireAsync(SingletonJobRegistry.PresenceName(node.Id), TimeSpan.FromMinutes(1), _stopping.Token).ConfigureAwait(false);
                using var lost = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, handle.HandleLostToken);
                await Task.Delay(Timeout.Infinite, lost.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or InvalidOperationException)
            {
                // Stopping, no leader yet, the node started over, or the hold was lost: try again unless
                // stopping, or unless the node stopped for good (a fatal error: every attempt would fail at once).
                failed = handle is null;
                if (e is ObjectDisposedException || node.FatalError is not null)
                {
                    return;
                }
            }
            finally
            {
                if (handle is not null)
                {
                    await handle.DisposeAsync().ConfigureAwait(false);
                }
            }

            if (failed && !_stopping.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(RetryDelay, node.TimeProvider, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}

/// <summary>The hosting's log messages.</summary>
internal static partial class HostingLog
{
    [LoggerMessage(101, LogLevel.Information, "Node {NodeId} left the cluster; now {Membership}")]
    public static partial void Left(ILogger logger, string nodeId, GaggleMembership membership);

    [LoggerMessage(102, LogLevel.Warning, "Node {NodeId} could not leave the cluster gracefully; the leader removes it after MemberTimeout")]
    public static partial void LeaveFailed(ILogger logger, Exception error, string nodeId);
}
