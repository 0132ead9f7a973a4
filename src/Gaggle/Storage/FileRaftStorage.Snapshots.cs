using Gaggle.Raft;
using Microsoft.Win32.SafeHandles;

namespace Gaggle.Storage;

/// <summary>Saving a snapshot and compacting the log behind it.</summary>
public sealed partial class FileRaftStorage
{
    /// <summary>Compaction copies retained entries in reads of about this size.</summary>
    private const int CopyChunkBytes = 1024 * 1024;

    /// <summary>Compaction writes the new segment in parts of about this size.</summary>
    private const int CompactionPartBytes = 4 * 1024 * 1024;

    /// <inheritdoc />
    /// <remarks>
    /// The snapshot goes to its own file (temporary name, flush, rename, directory flush); then a
    /// snapshot marker is appended to the log and flushed, which is the moment the snapshot counts as
    /// saved. Compaction follows: a new base segment receives the snapshot marker, the hard state and
    /// the retained entries, and the older segments and snapshot files are deleted.
    /// </remarks>
    /// <exception cref="ArgumentException">The snapshot is older than the stored one, or its index is below 1.</exception>
    public async ValueTask SaveSnapshotAsync(RaftSnapshot snapshot, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var index = RequireOpen();
            _opened = null;
            if (snapshot.Index < 1)
            {
                throw new ArgumentException($"The snapshot's index is {snapshot.Index}; it must be at least 1.", nameof(snapshot));
            }

            if (index.HasSnapshot && snapshot.Index < index.SnapshotIndex)
            {
                throw new ArgumentException($"The snapshot's index {snapshot.Index} is older than the stored snapshot's {index.SnapshotIndex}.", nameof(snapshot));
            }

            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                await SnapshotFiles.WriteAsync(Directory, snapshot, _flush, CancellationToken.None).ConfigureAwait(false);
                ulong write = index.LastWrite + 1;
                _writer.Begin(write);
                _writer.AddSnapshotMarker(snapshot.Index, snapshot.Term);
                await _active!.AppendAsync(_writer.Finish(), _flush).ConfigureAwait(false);
                index.ApplySnapshot(snapshot.Index, snapshot.Term);
                index.LastWrite = write;
                await CompactAsync(index).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _failure = e;
                throw;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Starts a base segment holding everything the log still needs (snapshot marker, hard state,
    /// retained entries, as one write), then deletes what it replaces. A crash before the new segment
    /// is renamed into place leaves the old segments in charge; a crash after it leaves obsolete files
    /// that the next open removes.
    /// </summary>
    private async ValueTask CompactAsync(WalIndex index)
    {
        long sequence = _active!.Sequence + 1;
        ulong write = index.LastWrite + 1;
        var segment = await WalSegment.StartAsync(Directory, sequence, isBase: true).ConfigureAwait(false);
        var moved = new List<EntryLocation>(index.Locations.Count);
        try
        {
            _writer.Begin(write);
            _writer.AddSnapshotMarker(index.SnapshotIndex, index.SnapshotTerm);
            _writer.AddHardState(index.HardState);
            await CopyRetainedEntriesAsync(index, segment, moved).ConfigureAwait(false);
            await segment.AppendAsync(_writer.Finish(), flush: false).ConfigureAwait(false);
            segment.Publish(_flush);
        }
        catch
        {
            segment.Dispose();
            throw;
        }

        index.Relocate(moved);
        index.LastWrite = write;
        _active.Dispose();
        _active = segment;
        var obsolete = _chain.ToList();
        _chain.Clear();
        _chain.Add(sequence);

        // Deleting needs no flush: a segment older than the newest base, or a snapshot other than the
        // log's, is ignored and removed by the next open if it reappears after a crash.
        foreach (long old in obsolete)
        {
            Remove(SegmentPath(old), "compacted into a newer base segment");
        }

        RemoveOtherSnapshots(index);
    }

    private async ValueTask CopyRetainedEntriesAsync(WalIndex index, WalSegment target, List<EntryLocation> moved)
    {
        var locations = index.Locations;
        var handles = new Dictionary<long, SafeFileHandle>();
        var buffer = Array.Empty<byte>();
        try
        {
            int i = 0;
            while (i < locations.Count)
            {
                // Only while entries remain, so the last part (which ends the write) is never empty.
                if (_writer.Length >= CompactionPartBytes)
                {
                    await target.AppendAsync(_writer.Finish(endsWrite: false), flush: false).ConfigureAwait(false);
                    _writer.Restart();
                }

                // A run: entries stored back to back in one segment, read with one call.
                var first = locations[i];
                int end = i + 1;
                long runBytes = first.Length;
                while (end < locations.Count
                    && locations[end].Segment == first.Segment
                    && locations[end].Offset == first.Offset + runBytes
                    && runBytes + locations[end].Length <= CopyChunkBytes)
                {
                    runBytes += locations[end].Length;
                    end++;
                }

                if (buffer.Length < runBytes)
                {
                    buffer = new byte[Math.Max(runBytes, CopyChunkBytes)];
                }

                if (!handles.TryGetValue(first.Segment, out var handle))
                {
                    handle = File.OpenHandle(SegmentPath(first.Segment), FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.Asynchronous);
                    handles.Add(first.Segment, handle);
                }

                await WalReplay.ReadExactlyAsync(handle, buffer.AsMemory(0, (int)runBytes), first.Offset, CancellationToken.None).ConfigureAwait(false);
                int at = 0;
                for (int k = i; k < end; k++)
                {
                    var location = locations[k];
                    int offset = _writer.AddEncodedEntry(index.FirstIndex + k, buffer.AsSpan(at, location.Length));
                    moved.Add(location with { Segment = target.Sequence, Offset = target.Length + offset });
                    at += location.Length;
                }

                i = end;
            }
        }
        finally
        {
            foreach (var handle in handles.Values)
            {
                handle.Dispose();
            }
        }
    }
}
