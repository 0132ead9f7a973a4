using Gaggle.Locks;
using Microsoft.Extensions.Hosting;

namespace Gaggle.Hosting;

/// <summary>
/// Starts the node with the host and makes it leave the cluster when the host stops. While it runs,
/// the node holds its presence lock (<c>gaggle:presence:{id}</c>), which tells singleton-job runners
/// on other instances that it is alive.
/// </summary>
internal sealed class GaggleHostedService(GaggleNode node) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _presence = Task.CompletedTask;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await node.StartAsync(cancellationToken).ConfigureAwait(false);
        _presence = Task.Run(HoldPresenceAsync, CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _presence.ConfigureAwait(false);
        await node.DisposeAsync().ConfigureAwait(false);
    }

    private async Task HoldPresenceAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            GaggleLockHandle? handle = null;
            try
            {
                handle = await node.Locks.AcquireAsync(SingletonJobRegistry.PresenceName(node.Id), TimeSpan.FromMinutes(1), _stopping.Token).ConfigureAwait(false);
                using var lost = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, handle.HandleLostToken);
                await Task.Delay(Timeout.Infinite, lost.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or InvalidOperationException)
            {
                // Stopping, no leader yet, or the hold was lost: try again unless stopping.
            }
            finally
            {
                if (handle is not null)
                {
                    await handle.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }
}
