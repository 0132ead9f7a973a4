using Gaggle.Channels;

namespace Gaggle.Benchmarks;

/// <summary>
/// A channel whose traffic can be cut in both directions at once, as a crashed process's would be:
/// the failover phase over Redis cuts the leader off before disposing it, so no hand-over reaches
/// anyone and the figure is a crash's (election timeout + election + first commit). The cluster
/// generation store (elastic mode) is passed through untouched: it is Redis itself, not the node's traffic.
/// </summary>
internal sealed class CuttableChannel(IChannel inner) : IChannel, IClusterGenerationStore
{
    private volatile bool _cut;

    public string NodeId => inner.NodeId;

    /// <summary>From now on nothing is sent or delivered.</summary>
    public void Cut() => _cut = true;

    public ValueTask ConnectAsync(Action<InboundMessage> receiver, CancellationToken cancellationToken = default)
        => inner.ConnectAsync(message =>
        {
            if (!_cut)
            {
                receiver(message);
            }
        }, cancellationToken);

    public ValueTask DisconnectAsync(CancellationToken cancellationToken = default) => inner.DisconnectAsync(cancellationToken);

    public ValueTask SendAsync(string to, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        => _cut ? ValueTask.CompletedTask : inner.SendAsync(to, payload, cancellationToken);

    public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        => _cut ? ValueTask.CompletedTask : inner.BroadcastAsync(payload, cancellationToken);

    public ValueTask<long> ReadGenerationAsync(CancellationToken cancellationToken = default)
        => Store.ReadGenerationAsync(cancellationToken);

    public ValueTask<bool> TryClaimGenerationAsync(long expected, long claimed, CancellationToken cancellationToken = default)
        => Store.TryClaimGenerationAsync(expected, claimed, cancellationToken);

    public ValueTask<bool> TryReleaseClaimAsync(long claimed, long expected, CancellationToken cancellationToken = default)
        => Store.TryReleaseClaimAsync(claimed, expected, cancellationToken);

    public ValueTask<GenerationConfirmation> ConfirmGenerationAsync(long generation, CancellationToken cancellationToken = default)
        => Store.ConfirmGenerationAsync(generation, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private IClusterGenerationStore Store => inner as IClusterGenerationStore
        ?? throw new NotSupportedException($"{inner.GetType().Name} does not record a cluster generation");
}
