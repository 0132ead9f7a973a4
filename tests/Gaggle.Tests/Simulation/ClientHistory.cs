namespace Gaggle.Tests.Simulation;

/// <summary>
/// What the simulated clients called and were answered, in the order it happened (see
/// <see cref="ClientOperation"/>), kept for the linearizability check at the end of a run: split into
/// one history per object and cluster (the log, each lock) and each checked on its own against its
/// sequential model (<see cref="AppendLogModel"/>, <see cref="LockModel"/>).
/// </summary>
internal sealed class ClientHistory(Func<long> step)
{
    private readonly List<ClientOperation> _operations = [];
    private readonly Dictionary<long, int> _foundings = [];
    private long _time;

    public IReadOnlyList<ClientOperation> Operations => _operations;

    /// <summary>Records the call of <paramref name="operation"/>.</summary>
    public T Invoke<T>(T operation)
        where T : ClientOperation
    {
        operation.InvokedAt = ++_time;
        operation.InvokedStep = step();
        _operations.Add(operation);
        return operation;
    }

    /// <summary>Records the answer of <paramref name="operation"/> (its result set by the caller), given by a node of <paramref name="generation"/>.</summary>
    public void Respond(ClientOperation operation, long generation)
    {
        operation.RespondedAt = ++_time;
        operation.RespondedStep = step();
        operation.Cluster = new ClusterKey(generation, _foundings.GetValueOrDefault(generation));
    }

    /// <summary>The cluster of <paramref name="generation"/> ended and its number was founded again: later answers of that number belong to another history.</summary>
    public void Close(long generation) => _foundings[generation] = _foundings.GetValueOrDefault(generation) + 1;

    /// <summary>
    /// Checks each object's history; returns the first that cannot be linearized (null when all can)
    /// and adds what was checked to <paramref name="stats"/>. GAGGLE_SIM_HISTORY=file writes every
    /// operation of a history that fails to that file.
    /// </summary>
    public string? Check(LinearizabilityStats stats)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        string? failure = null;
        foreach (var (title, count, check) in Partitions())
        {
            stats.Partitions++;
            stats.Operations += count;
            stats.Largest = Math.Max(stats.Largest, count);
            var result = check();
            stats.SearchSteps += result.Steps;
            if (result.Explanation is { } explanation)
            {
                // A search that ran out of budget fails too: the seed replays it, and the check must not pass unchecked histories.
                stats.Inconclusive += result.Inconclusive ? 1 : 0;
                failure = $"linearizability: {title}: {(result.Inconclusive ? $"the search gave up after {result.Steps} model steps; it got this far: " : "")}{explanation}";
                if (Environment.GetEnvironmentVariable("GAGGLE_SIM_HISTORY") is { Length: > 0 } path)
                {
                    File.WriteAllLines(path, _operations.Select(o => $"{o.InvokedAt,7} {(o.Answered ? o.RespondedAt.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-"),7}{o.Cluster} {o}"));
                }

                break;
            }
        }

        stats.Elapsed += System.Diagnostics.Stopwatch.GetElapsedTime(started);
        return failure;
    }

    /// <summary>
    /// The histories to check. Answered operations go to the history of the cluster that answered.
    /// Every other acquire and release of a lock (unanswered; an acquire answered with no grant, which
    /// may hide one that ended unseen; answered by another cluster, as an elastic node's pending request
    /// is proposed again in the generation it founds) may have taken effect unseen in each history of
    /// the lock: it goes to those where it can matter (see <see cref="LockModel.For"/>). Unanswered
    /// appends and reads change nothing a client can see and are left out.
    /// </summary>
    private IEnumerable<(string Title, int Count, Func<LinearizabilityResult> Check)> Partitions()
    {
        foreach (var group in _operations.OfType<AppendOperation>().Where(o => o.Answered).GroupBy(o => o.Cluster).OrderBy(g => g.Key.Generation).ThenBy(g => g.Key.Founding))
        {
            var operations = group.ToList<ClientOperation>();
            yield return ($"{AppendOperation.LogObject}{group.Key}", operations.Count, () => LinearizabilityChecker.Check(new AppendLogModel(), operations));
        }

        var lockOperations = _operations.Where(o => o is not AppendOperation).ToList();
        var answered = lockOperations.Where(o => o.Answered && o is not AcquireOperation { Granted: false }).ToList();
        foreach (var group in answered.GroupBy(o => (o.Object, o.Cluster)).OrderBy(g => g.Key.Object, StringComparer.Ordinal).ThenBy(g => g.Key.Cluster.Generation).ThenBy(g => g.Key.Cluster.Founding))
        {
            var here = group.ToHashSet();
            var floating = lockOperations.Where(o => o.Object == group.Key.Object && o is not ReadOperation && !here.Contains(o)).ToList();
            var model = LockModel.For(group.ToList(), floating);
            yield return ($"lock '{group.Key.Object}'{group.Key.Cluster}", model.Operations.Count, () => LinearizabilityChecker.Check(model, model.Operations));
        }
    }
}

/// <summary>What the linearizability checks of a run (or many) covered.</summary>
internal sealed class LinearizabilityStats
{
    public int Partitions { get; set; }

    public long Operations { get; set; }

    /// <summary>Operations in the largest history checked.</summary>
    public int Largest { get; set; }

    /// <summary>Histories the search gave up on (its step budget ran out); the run fails.</summary>
    public int Inconclusive { get; set; }

    public long SearchSteps { get; set; }

    public TimeSpan Elapsed { get; set; }

    public void Add(LinearizabilityStats other)
    {
        Partitions += other.Partitions;
        Operations += other.Operations;
        Largest = Math.Max(Largest, other.Largest);
        Inconclusive += other.Inconclusive;
        SearchSteps += other.SearchSteps;
        Elapsed += other.Elapsed;
    }

    public override string ToString()
        => $"linearizability: {Operations} client operations in {Partitions} histories (largest {Largest}) checked in {Elapsed.TotalSeconds:F2} s of search, "
            + $"{SearchSteps} model steps, {Inconclusive} inconclusive";
}
