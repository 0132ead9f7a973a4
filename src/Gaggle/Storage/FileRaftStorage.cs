using Gaggle.Raft;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gaggle.Storage;

/// <summary>
/// Keeps a node's hard state, log and snapshots in a directory, durably: an append-only write-ahead
/// log in segment files, snapshots in their own files, and an identity file naming the owning node.
/// </summary>
/// <remarks>
/// <para>
/// Each <see cref="SaveAsync"/> is one write of one or more checksummed records followed, with
/// <see cref="FlushPolicy.EveryBatch"/>, by one fsync (group commit: the runtime hands over a whole
/// Ready batch at once). A batch is atomic: after a crash it is found whole or not at all. On open,
/// an interrupted write at the end of the last segment is cut off (no call acknowledged it); damage
/// anywhere else throws <see cref="RaftStorageCorruptException"/> rather than silently losing
/// acknowledged data.
/// </para>
/// <para>
/// <see cref="SaveSnapshotAsync"/> writes the snapshot file atomically, records it in the log, then
/// compacts: a new segment starts with the snapshot's position, the hard state and the entries the
/// snapshot does not cover, and the older segments and snapshot files are deleted. The storage keeps
/// in memory only the term and file position of each stored entry.
/// </para>
/// <para>
/// Open it with <see cref="OpenAsync"/>, or construct it and let the node's first
/// <see cref="LoadAsync"/> open it. Calls must not overlap (the node's loop never overlaps them);
/// misuse is serialized rather than corrupting the files. A directory belongs to one node
/// (<see cref="FileRaftStorageOptions.NodeId"/>) and to one open storage at a time (a lock file
/// enforces it across processes). After a save fails, the storage refuses further calls: its files
/// are consistent, but what reached the disk is unknown until the directory is opened again.
/// </para>
/// </remarks>
public sealed partial class FileRaftStorage : IRaftStorage, IDisposable
{
    private readonly string _nodeId;
    private readonly bool _flush;
    private readonly long _segmentBytes;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly WalBatchWriter _writer = new();
    private readonly List<int> _entryOffsets = [];
    private readonly List<long> _chain = [];      // the live segments' sequence numbers, from the newest base segment on
    private WalIndex? _index;                     // null until opened
    private WalSegment? _active;                  // the segment appended to (the last of the chain)
    private FileStream? _lock;                    // held open while the storage is: keeps other opens out
    private PersistedState? _opened;              // what OpenAsync read, handed to the first LoadAsync unless a save came first
    private Exception? _failure;                  // the failed save after which calls are refused
    private bool? _isNew;
    private bool _disposed;

    /// <summary>Creates a storage over <see cref="FileRaftStorageOptions.Directory"/>; the directory is opened by the first <see cref="LoadAsync"/>.</summary>
    /// <param name="options">The settings; validated here.</param>
    /// <param name="logger">Where recovery (a cut-off interrupted write, removed leftovers) is reported; none when null.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">A setting is invalid.</exception>
    public FileRaftStorage(FileRaftStorageOptions options, ILogger? logger = null)
    {
        FileRaftStorageOptionsValidator.ThrowIfInvalid(options);
        Directory = Path.GetFullPath(options.Directory);
        _nodeId = options.NodeId;
        _flush = options.FlushPolicy == FlushPolicy.EveryBatch;
        _segmentBytes = options.SegmentBytes;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The full path of the storage directory.</summary>
    public string Directory { get; }

    /// <summary>
    /// Whether opening the directory created its state (there was no identity file): a node that has
    /// run before but finds <see langword="true"/> here has lost its storage and must not rejoin its
    /// cluster as if it remembered its votes and log.
    /// </summary>
    /// <exception cref="InvalidOperationException">The storage is not open yet.</exception>
    public bool IsNew => _isNew ?? throw new InvalidOperationException("IsNew is known once the storage is open: call LoadAsync or use OpenAsync first.");

    /// <summary>Opens (creating when needed) the directory and reads its state; the next <see cref="LoadAsync"/> returns that state without reading again.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="logger">Where recovery is reported; none when null.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    /// <exception cref="RaftStorageCorruptException">Acknowledged data is damaged.</exception>
    /// <exception cref="InvalidOperationException">The directory belongs to another node or is in use.</exception>
    public static async ValueTask<FileRaftStorage> OpenAsync(FileRaftStorageOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        var storage = new FileRaftStorage(options, logger);
        try
        {
            storage._opened = await storage.LoadAsync(cancellationToken).ConfigureAwait(false);
            return storage;
        }
        catch
        {
            storage.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>The first call opens the directory: it checks its identity, replays the log and cuts off an interrupted last write.</remarks>
    /// <exception cref="RaftStorageCorruptException">Acknowledged data is damaged.</exception>
    /// <exception cref="InvalidOperationException">The directory belongs to another node or is in use.</exception>
    public async ValueTask<PersistedState> LoadAsync(CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_index is null)
            {
                return await OpenCoreAsync(cancellationToken).ConfigureAwait(false);
            }

            if (_opened is { } opened)
            {
                _opened = null;
                return opened;
            }

            return await ReadStateAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The entries do not start within or right after the stored log, are not contiguous, or are invalid.</exception>
    public async ValueTask SaveAsync(HardState? hardState, IReadOnlyList<LogEntry> entries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entries);
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var index = RequireOpen();
            _opened = null;
            CheckEntries(index, entries);
            if (hardState is null && entries.Count == 0)
            {
                return;
            }

            cancellationToken.ThrowIfCancellationRequested();
            ulong write = index.LastWrite + 1;
            _writer.Begin(write);
            _entryOffsets.Clear();
            for (int i = 0; i < entries.Count; i++)
            {
                _entryOffsets.Add(_writer.AddEntry(entries[i]));
            }

            if (hardState is { } state)
            {
                _writer.AddHardState(state);
            }

            // From here on a failure leaves the file's end unknown; no call is accepted until the directory is reopened.
            long at;
            try
            {
                if (_active!.Length >= _segmentBytes)
                {
                    await RollOverAsync().ConfigureAwait(false);
                }

                at = _active.Length;
                await _active.AppendAsync(_writer.Finish(), _flush).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _failure = e;
                throw;
            }

            if (entries.Count > 0)
            {
                index.TruncateFrom(entries[0].Index);
                for (int i = 0; i < entries.Count; i++)
                {
                    var location = new EntryLocation(entries[i].Term, _active.Sequence, at + _entryOffsets[i], WalRecord.EntryHeaderSize + entries[i].Data.Length);
                    index.Add(location, default);
                }
            }

            if (hardState is { } saved)
            {
                index.HardState = saved;
            }

            index.LastWrite = write;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Closes the files and releases the directory. Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _gate.Wait();
        try
        {
            _disposed = true;
            CloseFiles();
        }
        finally
        {
            _gate.Release();
        }
    }

    private static void CheckEntries(WalIndex index, IReadOnlyList<LogEntry> entries)
    {
        if (entries.Count == 0)
        {
            return;
        }

        long first = entries[0].Index;
        if (index.CheckAppend(first) is { } problem)
        {
            throw new ArgumentException(problem, nameof(entries));
        }

        for (int i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (entry.Index != first + i)
            {
                throw new ArgumentException($"The entries must be contiguous: entry {i} has index {entry.Index} where {first + i} was expected.", nameof(entries));
            }

            if (!Enum.IsDefined(entry.Kind))
            {
                throw new ArgumentException($"Entry {entry.Index} has the unknown kind {(byte)entry.Kind}.", nameof(entries));
            }

            if (entry.Data.Length > WalBatchWriter.MaxEntryDataBytes)
            {
                throw new ArgumentException($"Entry {entry.Index} holds {entry.Data.Length} bytes; an entry can hold at most {WalBatchWriter.MaxEntryDataBytes}.", nameof(entries));
            }
        }
    }

    private async ValueTask EnterAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (_disposed || _failure is not null)
        {
            _gate.Release();
            ObjectDisposedException.ThrowIf(_disposed, this);
            throw new InvalidOperationException(
                $"The storage in '{Directory}' refuses further calls because a save failed ({_failure!.Message}); open the directory again to continue from what reached the disk.",
                _failure);
        }
    }

    private WalIndex RequireOpen()
        => _index ?? throw new InvalidOperationException("The storage is not open: call LoadAsync (the node does so when it starts) or use OpenAsync before saving.");

    private async ValueTask RollOverAsync()
    {
        var next = await WalSegment.StartAsync(Directory, _active!.Sequence + 1, isBase: false).ConfigureAwait(false);
        try
        {
            next.Publish(_flush);
        }
        catch
        {
            next.Dispose();
            throw;
        }

        _active.Dispose();
        _active = next;
        _chain.Add(next.Sequence);
    }

    private void CloseFiles()
    {
        _active?.Dispose();
        _active = null;
        _lock?.Dispose();
        _lock = null;
        _index = null;
        _opened = null;
        _chain.Clear();
    }
}
