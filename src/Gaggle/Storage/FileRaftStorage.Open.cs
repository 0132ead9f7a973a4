using Gaggle.Raft;

namespace Gaggle.Storage;

/// <summary>Opening a directory: identity, lock, cleanup of interrupted work, replay.</summary>
public sealed partial class FileRaftStorage
{
    private const string LockFileName = "lock";

    private async ValueTask<PersistedState> OpenCoreAsync(CancellationToken cancellationToken)
    {
        DirectorySync.Create(Directory, _flush);
        _lock = AcquireLock();
        try
        {
            RemoveTemporaryFiles();
            string? owner = await IdentityFile.ReadAsync(Directory, cancellationToken).ConfigureAwait(false);
            var segments = ListSegments();
            var state = owner is null
                ? await InitializeAsync(segments, cancellationToken).ConfigureAwait(false)
                : await RecoverAsync(owner, segments, cancellationToken).ConfigureAwait(false);
            StorageLog.Opened(_logger, Directory, _nodeId, IsNew, _index!.SnapshotIndex, state.Entries.Count, _chain.Count);
            return state;
        }
        catch
        {
            CloseFiles();
            _isNew = null;
            throw;
        }
    }

    private FileStream AcquireLock()
    {
        string path = Path.Combine(Directory, LockFileName);
        try
        {
            // FileShare.None takes an exclusive lock (flock on Unix) for as long as the storage is open.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new InvalidOperationException(
                $"The storage directory '{Directory}' is in use by another open FileRaftStorage (in this process or another); a directory belongs to one open storage at a time.",
                e);
        }
    }

    /// <summary>A directory without an identity file: new, or left by a first open that was interrupted.</summary>
    private async ValueTask<PersistedState> InitializeAsync(List<long> segments, CancellationToken cancellationToken)
    {
        var paths = segments.Select(SegmentPath).ToList();
        if (ListSnapshots().Count > 0 || paths.Any(p => new FileInfo(p).Length > WalSegment.HeaderSize))
        {
            throw new InvalidOperationException(
                $"The storage directory '{Directory}' holds a Raft log but no identity file ('{IdentityFile.FileName}'): it was not created by FileRaftStorage, or its identity file was removed. Restore that file, or give the node an empty directory.");
        }

        foreach (string path in paths)
        {
            Remove(path, "an empty segment left by an interrupted first open");
        }

        var segment = await WalSegment.StartAsync(Directory, 1, isBase: true).ConfigureAwait(false);
        try
        {
            segment.Publish(_flush);
        }
        catch
        {
            segment.Dispose();
            throw;
        }

        _active = segment;
        _chain.Add(segment.Sequence);

        // Written last: its presence means the directory was fully initialized.
        await IdentityFile.WriteAsync(Directory, _nodeId, _flush, cancellationToken).ConfigureAwait(false);
        _index = new WalIndex(collectEntries: false);
        _isNew = true;
        return new PersistedState(HardState.Empty, []);
    }

    private async ValueTask<PersistedState> RecoverAsync(string owner, List<long> segments, CancellationToken cancellationToken)
    {
        if (!string.Equals(owner, _nodeId, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"The storage directory '{Directory}' belongs to node '{owner}', not to node '{_nodeId}'; every node needs its own directory.");
        }

        if (segments.Count == 0)
        {
            throw new RaftStorageCorruptException(
                Directory,
                $"the identity file names node '{owner}' but no log segment (wal-*.log) is left, so the node's votes and log are lost. Replace the node (remove it from the cluster, then add it back with an empty directory) rather than let it rejoin.");
        }

        // Replay starts at the newest base segment; older ones were replaced by a compaction that stopped before deleting them.
        int start = segments.Count - 1;
        while (!ReadSegmentHeader(segments[start]))
        {
            if (--start < 0)
            {
                throw new RaftStorageCorruptException(SegmentPath(segments[0]), 0, "no segment is marked as a base segment, so the start of the log is missing.");
            }
        }

        for (int i = 0; i < start; i++)
        {
            Remove(SegmentPath(segments[i]), "replaced by a newer base segment");
        }

        var chain = segments.GetRange(start, segments.Count - start);
        for (int i = 1; i < chain.Count; i++)
        {
            if (chain[i] != chain[0] + i)
            {
                throw new RaftStorageCorruptException(SegmentPath(chain[0] + i), $"the log segment {WalSegment.FileName(chain[0] + i)} is missing between {WalSegment.FileName(chain[0])} and {WalSegment.FileName(chain[^1])}.");
            }

            _ = ReadSegmentHeader(chain[i]);
        }

        var index = new WalIndex(collectEntries: true);
        long validLength = 0;
        for (int i = 0; i < chain.Count; i++)
        {
            validLength = await WalReplay.ReplaySegmentAsync(Directory, chain[i], index, i == chain.Count - 1, _logger, cancellationToken).ConfigureAwait(false);
        }

        var snapshot = index.HasSnapshot
            ? await SnapshotFiles.ReadAsync(Directory, index.SnapshotIndex, index.SnapshotTerm, cancellationToken).ConfigureAwait(false)
            : null;
        RemoveOtherSnapshots(index);
        _active = WalSegment.OpenForAppend(Directory, chain[^1], validLength, _flush);
        _chain.AddRange(chain);
        var state = new PersistedState(index.HardState, [.. index.Entries], snapshot);
        index.StopCollecting();
        _index = index;
        _isNew = false;
        return state;
    }

    /// <summary>A later <see cref="LoadAsync"/>: the state is read from the files again (the storage does not keep the log).</summary>
    private async ValueTask<PersistedState> ReadStateAsync(CancellationToken cancellationToken)
    {
        var index = new WalIndex(collectEntries: true);
        for (int i = 0; i < _chain.Count; i++)
        {
            long intact = await WalReplay.ReplaySegmentAsync(Directory, _chain[i], index, i == _chain.Count - 1, _logger, cancellationToken).ConfigureAwait(false);
            if (i == _chain.Count - 1 && intact != _active!.Length)
            {
                throw new RaftStorageCorruptException(_active.Path, intact, $"the segment holds {_active.Length} bytes of acknowledged writes but only {intact} can be read back.");
            }
        }

        var snapshot = index.HasSnapshot
            ? await SnapshotFiles.ReadAsync(Directory, index.SnapshotIndex, index.SnapshotTerm, cancellationToken).ConfigureAwait(false)
            : null;
        return new PersistedState(index.HardState, [.. index.Entries], snapshot);
    }

    private bool ReadSegmentHeader(long sequence)
    {
        string path = SegmentPath(sequence);
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return WalSegment.ReadHeader(handle, path, sequence);
    }

    private void RemoveTemporaryFiles()
    {
        foreach (string path in System.IO.Directory.EnumerateFiles(Directory, "*.tmp"))
        {
            string name = Path.GetFileNameWithoutExtension(path);
            if (name == IdentityFile.FileName || WalSegment.TryParseFileName(name, out _) || SnapshotFiles.TryParseFileName(name, out _, out _))
            {
                Remove(path, "an unfinished temporary file");
            }
        }
    }

    private void RemoveOtherSnapshots(WalIndex index)
    {
        foreach (var (path, snapshotIndex, snapshotTerm) in ListSnapshots())
        {
            if (!index.HasSnapshot || snapshotIndex != index.SnapshotIndex || snapshotTerm != index.SnapshotTerm)
            {
                Remove(path, index.HasSnapshot && snapshotIndex < index.SnapshotIndex
                    ? "older than the log's snapshot"
                    : "a snapshot whose save did not complete (the log never recorded it)");
            }
        }
    }

    private List<long> ListSegments()
    {
        var sequences = new List<long>();
        foreach (string path in System.IO.Directory.EnumerateFiles(Directory, "wal-*.log"))
        {
            if (WalSegment.TryParseFileName(Path.GetFileName(path), out long sequence))
            {
                sequences.Add(sequence);
            }
        }

        sequences.Sort();
        return sequences;
    }

    private List<(string Path, long Index, long Term)> ListSnapshots()
    {
        var snapshots = new List<(string, long, long)>();
        foreach (string path in System.IO.Directory.EnumerateFiles(Directory, "snapshot-*.snap"))
        {
            if (SnapshotFiles.TryParseFileName(Path.GetFileName(path), out long index, out long term))
            {
                snapshots.Add((path, index, term));
            }
        }

        return snapshots;
    }

    private string SegmentPath(long sequence) => Path.Combine(Directory, WalSegment.FileName(sequence));

    private void Remove(string path, string reason)
    {
        try
        {
            File.Delete(path);
            StorageLog.RemovedLeftover(_logger, Directory, Path.GetFileName(path), reason);
        }
        catch (IOException)
        {
            // Left for the next open to retry; a leftover file is never read as part of the log.
        }
        catch (UnauthorizedAccessException)
        {
            // Same as above.
        }
    }
}
