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
            return ValueTask.FromResult(new PersistedState(_hardState, _entries.ToArray()));
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
                if (first < 1 || first > _entries.Count + 1)
                {
                    throw new ArgumentException(
                        $"The first entry's index is {first}; it must be between 1 and {_entries.Count + 1} (one past the stored log).",
                        nameof(entries));
                }

                _entries.RemoveRange((int)first - 1, _entries.Count - (int)first + 1);
                _entries.AddRange(entries);
            }

            if (hardState is { } state)
            {
                _hardState = state;
            }
        }

        return ValueTask.CompletedTask;
    }
}
