namespace Gaggle.Tests.Simulation;

/// <summary>The outcome of one seeded run.</summary>
internal sealed record SimulationResult(SimulationFailure? Failure, SimulationStats Stats)
{
    /// <summary>What the lock clients and tables did.</summary>
    public LockSimStats Locks { get; init; } = new();

    /// <summary>What the membership changes did (membership runs only).</summary>
    public MembershipSimStats Membership { get; init; } = new();

    /// <summary>What the generations did (elastic runs only).</summary>
    public ElasticSimStats? Elastic { get; init; }

    /// <summary>What the end-of-run linearizability check covered.</summary>
    public LinearizabilityStats Linearizability { get; init; } = new();
}

/// <summary>What a run did, to show the simulation is not vacuous (and to fingerprint a run).</summary>
/// <param name="Steps">Steps taken, chaos and stabilization.</param>
/// <param name="Committed">Highest index committed anywhere.</param>
/// <param name="Applied">Highest index applied anywhere.</param>
/// <param name="Leaders">Terms that had a leader.</param>
/// <param name="Restarts">Crash restarts.</param>
/// <param name="Delivered">Messages delivered.</param>
/// <param name="Storage">Snapshots and lost storage.</param>
/// <param name="Acknowledged">Appends acknowledged to their callers.</param>
/// <param name="SimulatedUs">Simulated real time.</param>
internal readonly record struct SimulationStats(
    long Steps, int Committed, int Applied, int Leaders, int Restarts, long Delivered, StorageStats Storage, int Acknowledged, long SimulatedUs);

/// <summary>What happened to the nodes' storage in a run.</summary>
/// <param name="Snapshots">Snapshots taken (and logs compacted) locally.</param>
/// <param name="Installs">Snapshots installed from a leader.</param>
/// <param name="LostTails">Crashes that lost unflushed batches (FlushPolicy.None).</param>
/// <param name="LostStorage">Nodes whose storage was wiped.</param>
/// <param name="Rejoined">Nodes that left rejoin mode (proved they may vote again).</param>
internal readonly record struct StorageStats(int Snapshots, int Installs, int LostTails, int LostStorage, int Rejoined)
{
    public static StorageStats operator +(StorageStats a, StorageStats b) => new(
        a.Snapshots + b.Snapshots, a.Installs + b.Installs, a.LostTails + b.LostTails, a.LostStorage + b.LostStorage, a.Rejoined + b.Rejoined);

    public override string ToString()
        => $"{Snapshots} snapshots taken, {Installs} installed, {LostTails} crashes lost unflushed writes, {LostStorage} storages lost, {Rejoined} rejoins completed";
}

/// <summary>Why a seeded run failed, with enough context to replay and debug it.</summary>
internal sealed record SimulationFailure(int Seed, ClusterShape Shape, long Step, string What)
{
    public string Settings { get; init; } = "";

    /// <summary>How lost storage was handled.</summary>
    public LossModel Loss { get; init; } = LossModel.Default;

    public string Nodes { get; init; } = "";

    /// <summary>The last steps before the failure (only when the run was traced).</summary>
    public IReadOnlyList<string> Trace { get; init; } = [];

    public override string ToString() => $"seed {Seed} ({Shape}{(Loss == LossModel.Default ? "" : $", {Loss}")}) step {Step}: {What}";

    public string Report()
    {
        var lines = new List<string> { ToString(), $"settings: {Settings}", $"nodes: {Nodes}" };
        if (Trace.Count > 0)
        {
            lines.Add($"last {Trace.Count} steps:");
            lines.AddRange(Trace);
        }

        string variant = (Loss.Restart == LostStorageRestart.AutomaticDetection ? "GAGGLE_SIM_AMNESIA=1 " : "");
        lines.Add($"replay: {variant}GAGGLE_SIM_SEED={Seed} dotnet test tests/Gaggle.Tests --filter Category=Simulation");
        return string.Join(Environment.NewLine, lines);
    }
}
