namespace Gaggle.Tests.Simulation;

/// <summary>A history of client operations that no order explains (see <see cref="ClientHistory"/>); the simulator reports it with the seed.</summary>
internal sealed class LinearizabilityViolation(string message) : Exception(message);

/// <summary>The end-of-run check that what the clients saw is linearizable.</summary>
internal sealed partial class Simulator
{
    private ClientHistory? _history;

    /// <summary>What the simulated clients called and were answered: appends, lock acquires and releases, lock reads.</summary>
    public ClientHistory History => _history ??= new ClientHistory(() => Step);

    private LinearizabilityStats Linearizability { get; } = new();

    /// <summary>
    /// Every object's history of client operations (the log's appends; each lock's acquires, releases
    /// and reads, per cluster) has an order that respects real time and its sequential model.
    /// </summary>
    private void CheckClientHistory()
    {
        if (History.Check(Linearizability) is { } failure)
        {
            throw new LinearizabilityViolation(failure);
        }
    }
}
