using Gaggle.Raft;

namespace Gaggle.Storage;

/// <summary>
/// Where a node keeps what Raft requires to survive a restart: its hard state (term, vote, commit)
/// and its log.
/// </summary>
/// <remarks>
/// The runtime calls <see cref="SaveAsync"/> and waits for it BEFORE it sends any message that
/// depends on the saved state, so an implementation must not report completion before the data is
/// as durable as it promises. Calls never overlap for one node.
/// </remarks>
public interface IRaftStorage
{
    /// <summary>Reads the state saved so far (empty for a new node).</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    ValueTask<PersistedState> LoadAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Saves a batch: the new hard state (when not null) and log entries. When the first entry's index
    /// is already stored, the stored log from that index on is discarded first (a conflicting suffix).
    /// </summary>
    /// <param name="hardState">The new hard state, or null when unchanged.</param>
    /// <param name="entries">Contiguous entries to store.</param>
    /// <param name="cancellationToken">Cancels the save.</param>
    ValueTask SaveAsync(HardState? hardState, IReadOnlyList<LogEntry> entries, CancellationToken cancellationToken = default);

    /// <summary>
    /// Saves a snapshot and discards the stored entries it covers (index &lt;= <see cref="RaftSnapshot.Index"/>).
    /// Stored entries after it are kept when the stored entry at the snapshot's index has the
    /// snapshot's term; otherwise the whole stored log is discarded (a snapshot from the leader
    /// replaced a log that diverged). A later <see cref="LoadAsync"/> returns this snapshot and the
    /// entries after it. The runtime calls this before <see cref="SaveAsync"/> of the same batch.
    /// </summary>
    /// <param name="snapshot">The snapshot; never older than one saved before.</param>
    /// <param name="cancellationToken">Cancels the save.</param>
    ValueTask SaveSnapshotAsync(RaftSnapshot snapshot, CancellationToken cancellationToken = default);
}

/// <summary>What <see cref="IRaftStorage.LoadAsync"/> returns.</summary>
/// <param name="HardState">The last saved hard state.</param>
/// <param name="Entries">The saved log, contiguous from the snapshot's index + 1 (from 1 without a snapshot).</param>
/// <param name="Snapshot">The last saved snapshot, or null.</param>
public sealed record PersistedState(HardState HardState, IReadOnlyList<LogEntry> Entries, RaftSnapshot? Snapshot = null);
