using System.Collections.Concurrent;
using Gaggle.Locks;

namespace Gaggle.Samples.WebApp;

/// <summary>
/// The locks this instance holds on behalf of HTTP clients (<c>POST /locks/{name}</c>), by name. A
/// hold stays until a client releases it or its lease is lost (then it is forgotten), and every hold
/// is released when the app stops, before the node leaves the cluster.
/// </summary>
public sealed class HeldLocks(GaggleLocks locks, ILogger<HeldLocks> logger) : IHostedService
{
    private readonly ConcurrentDictionary<string, GaggleLockHandle> _held = new(StringComparer.Ordinal);

    /// <summary>Waits up to <paramref name="timeout"/> for the lock; null when it was not granted in time (or was lost at once).</summary>
    public async Task<GaggleLockHandle?> TryAcquireAsync(string name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var handle = await locks.TryAcquireAsync(name, timeout, cancellationToken);
        if (handle is null)
        {
            return null;
        }

        if (!_held.TryAdd(name, handle))
        {
            // Only possible if this instance was granted the same mutex twice, which the lock table forbids.
            await handle.DisposeAsync();
            throw new InvalidOperationException($"This instance already holds the lock '{name}'.");
        }

        // A lost lease ends the hold: forget it, so a later DELETE answers 404 instead of pretending.
        handle.HandleLostToken.Register(() => _ = ForgetLostAsync(name, handle));
        return handle.HandleLostToken.IsCancellationRequested ? null : handle; // granted, but already untrustworthy
    }

    /// <summary>The fencing token of this instance's hold of <paramref name="name"/>, or null when it holds none for a client.</summary>
    public long? TokenOf(string name) => _held.TryGetValue(name, out var handle) ? handle.FencingToken : null;

    /// <summary>Releases the hold of <paramref name="name"/> with <paramref name="fencingToken"/>; false when this instance holds no such lock.</summary>
    public async Task<bool> ReleaseAsync(string name, long fencingToken)
    {
        if (!_held.TryGetValue(name, out var handle) || handle.FencingToken != fencingToken
            || !_held.TryRemove(new KeyValuePair<string, GaggleLockHandle>(name, handle)))
        {
            return false;
        }

        // A hold this instance has lost (its lease ran out while it was paused, or it was removed from
        // the cluster) is no longer its to release: say so, as for a token it never held.
        bool stillHeld = !handle.HandleLostToken.IsCancellationRequested;
        await handle.DisposeAsync();
        return stillHeld;
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var name in _held.Keys)
        {
            if (_held.TryRemove(name, out var handle))
            {
                await handle.DisposeAsync();
            }
        }
    }

    private async Task ForgetLostAsync(string name, GaggleLockHandle handle)
    {
        if (_held.TryRemove(new KeyValuePair<string, GaggleLockHandle>(name, handle)))
        {
            logger.LogWarning("The hold of lock {Lock} (fencing token {Token}) was lost", name, handle.FencingToken);
            await handle.DisposeAsync();
        }
    }
}
