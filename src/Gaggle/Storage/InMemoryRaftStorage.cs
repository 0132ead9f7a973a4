using Gaggle.Raft;

namespace Gaggle.Storage;

/// <summary>
/// Keeps the hard state and log in process memory. Nothing survives the process; a node restarted
/// in the same process with the same instance resumes where it stopped (tests, demos).
/// </summary>
public sealed class InMemoryRaftStorage : IRaftStorage
{
    private readonly Lock _lock = new();
    private readonly List<LogEntry> _entries = [];
    private HardState _hardState = HardState.Empty;
    private RaftSnapshot? _snapshot;

    /// <summary>Set by tests that restart a node on the same instance, which then behaves as durable storage (membership changes allowed).</summary>
    internal bool SurvivesRestart { get; init; }

    /// <summary>The number of stored log entries.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<PersistedState> LoadAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return ValueTask.FromResult(new PersistedState(_hardState, _entries.ToArray(), _snapshot));
        }
    }

    /// <inheritdoc />
    public ValueTask SaveAsync(HardState? hardState, IReadOnlyList<LogEntry> entries, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (entries.Count > 0)
            {
                long first = entries[0].Index;
                long firstStored = FirstIndex;
                long next = firstStored + _entries.Count;
                if (first < firstStored || first > next)
                {
                    throw new ArgumentException(
                        $"The first entry's index is {first}; it must be between {firstStored} and {next} (one past the stored log).",
                        nameof(entries));
                }

                _entries.RemoveRange((int)(first - firstStored), (int)(next - first));
                _entries.AddRange(entries);
            }

            if (hardState is { } state)
            {
                _hardState = state;
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask SaveSnapshotAsync(RaftSnapshot snapshot, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        lock (_lock)
        {
            if (_snapshot is not null && snapshot.Index < _snapshot.Index)
            {
                throw new ArgumentException($"The snapshot's index {snapshot.Index} is older than the stored snapshot's {_snapshot.Index}.", nameof(snapshot));
            }

            long firstStored = FirstIndex;
            int covered = (int)Math.Clamp(snapshot.Index - firstStored + 1, 0, _entries.Count);
            bool keepsSuffix = covered > 0 && _entries[covered - 1].Index == snapshot.Index && _entries[covered - 1].Term == snapshot.Term;
            if (keepsSuffix)
            {
                _entries.RemoveRange(0, covered);
            }
            else
            {
                _entries.Clear();
            }

            _snapshot = snapshot;
        }

        return ValueTask.CompletedTask;
    }

    private long FirstIndex => (_snapshot?.Index ?? 0) + 1;
}
