using Gaggle.Raft;
using Gaggle.Storage;

namespace Gaggle.Tests.Storage;

/// <summary>A directory under the system's temp directory, removed with everything in it on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "gaggle-storage-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string[] FileNames(string pattern = "*")
        => [.. Directory.GetFiles(Path, pattern).Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal).Cast<string>()];

    /// <summary>Copies the directory's files into a new temp directory (to replay one crash scenario per copy).</summary>
    public TempDirectory Copy()
    {
        var copy = new TempDirectory();
        foreach (string file in Directory.GetFiles(Path))
        {
            System.IO.File.Copy(file, copy.File(System.IO.Path.GetFileName(file)));
        }

        return copy;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Already gone.
        }
    }
}

internal static class StorageTestSupport
{
    public static FileRaftStorageOptions Options(string directory, string nodeId = "a", FlushPolicy flush = FlushPolicy.EveryBatch, long segmentBytes = 64 * 1024 * 1024)
        => new() { Directory = directory, NodeId = nodeId, FlushPolicy = flush, SegmentBytes = segmentBytes };

    public static ValueTask<FileRaftStorage> Open(string directory, string nodeId = "a", FlushPolicy flush = FlushPolicy.EveryBatch, long segmentBytes = 64 * 1024 * 1024)
        => FileRaftStorage.OpenAsync(Options(directory, nodeId, flush, segmentBytes));

    public static LogEntry Entry(long index, long term, string data = "")
        => new(index, term, data.Length == 0 && index % 7 == 0 ? EntryKind.NoOp : EntryKind.Normal, System.Text.Encoding.UTF8.GetBytes(data));

    public static LogEntry[] Entries(long first, long term, int count, string prefix = "e")
        => [.. Enumerable.Range(0, count).Select(i => Entry(first + i, term, $"{prefix}{first + i}"))];

    /// <summary>The single segment file's path (most tests never roll over).</summary>
    public static string OnlySegment(TempDirectory directory)
        => directory.File(directory.FileNames("wal-*.log").Single());

    /// <summary>A readable, comparable form of a persisted state (entry data as text).</summary>
    public static string Describe(PersistedState state)
    {
        var lines = new List<string>
        {
            $"hard state: term {state.HardState.Term}, vote {state.HardState.VotedFor ?? "-"}, commit {state.HardState.Commit}",
            state.Snapshot is { } s ? $"snapshot: {s.Index}/{s.Term} [{Convert.ToHexString(s.Data.Span)}]" : "snapshot: none",
        };
        lines.AddRange(state.Entries.Select(e => $"{e.Index}/{e.Term} {e.Kind} [{Convert.ToHexString(e.Data.Span)}]"));
        return string.Join("\n", lines);
    }
}
