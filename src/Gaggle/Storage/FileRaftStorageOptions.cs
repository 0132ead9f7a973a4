using Microsoft.Extensions.Options;

namespace Gaggle.Storage;

/// <summary>How hard <see cref="FileRaftStorage"/> works to make a saved batch survive a failure.</summary>
public enum FlushPolicy
{
    /// <summary>
    /// Every <see cref="IRaftStorage.SaveAsync"/> and <see cref="IRaftStorage.SaveSnapshotAsync"/> forces
    /// its data to the disk (fsync) before it returns: one write and one fsync per batch (group
    /// commit). Nothing acknowledged is lost to a process crash, a kernel crash or a power failure,
    /// as long as the disk honours flushes. This is what Raft's safety argument assumes.
    /// </summary>
    EveryBatch = 0,

    /// <summary>
    /// Batches are handed to the operating system and never forced to the disk. A process crash
    /// loses nothing that a call acknowledged (the operating system still writes it out). A power
    /// failure or kernel crash can lose the last seconds of batches and, because the operating
    /// system may write pages in any order, can leave a directory that no longer opens
    /// (<see cref="RaftStorageCorruptException"/>). A node whose acknowledged votes or entries are
    /// lost can break Raft's guarantees if it rejoins its cluster, so use this for tests and
    /// benchmarks only.
    /// </summary>
    None = 1,
}

/// <summary>Settings of a <see cref="FileRaftStorage"/>.</summary>
public sealed class FileRaftStorageOptions
{
    /// <summary>The smallest allowed <see cref="SegmentBytes"/>: 64 KiB.</summary>
    public const long MinSegmentBytes = 64 * 1024;

    /// <summary>The largest allowed <see cref="SegmentBytes"/>: 1 GiB.</summary>
    public const long MaxSegmentBytes = 1024 * 1024 * 1024;

    /// <summary>
    /// The directory that holds this node's log segments, snapshots and identity file; created when
    /// missing. One directory belongs to exactly one node and one open storage at a time. Required.
    /// </summary>
    public string Directory { get; set; } = "";

    /// <summary>
    /// The id of the node that owns the directory; the first open records it and later opens refuse
    /// another id. Required; the same rules as <see cref="GaggleOptions.NodeId"/> apply.
    /// </summary>
    public string NodeId { get; set; } = "";

    /// <summary>When data is forced to the disk.</summary>
    /// <value>The default is <see cref="FlushPolicy.EveryBatch"/>.</value>
    public FlushPolicy FlushPolicy { get; set; } = FlushPolicy.EveryBatch;

    /// <summary>
    /// The size after which the log continues in a new segment file. A segment can exceed it by one
    /// batch. Snapshots remove whole segments, so smaller segments release disk space sooner.
    /// </summary>
    /// <value>The default is 64 MiB; it must be between 64 KiB and 1 GiB.</value>
    public long SegmentBytes { get; set; } = 64 * 1024 * 1024;
}

/// <summary>Checks <see cref="FileRaftStorageOptions"/>; every failure names the setting, its value and the rule.</summary>
public sealed class FileRaftStorageOptionsValidator : IValidateOptions<FileRaftStorageOptions>
{
    /// <summary>Validates <paramref name="options"/> and throws <see cref="OptionsValidationException"/> listing every problem.</summary>
    /// <param name="options">The options to check.</param>
    public static void ThrowIfInvalid(FileRaftStorageOptions options)
    {
        var result = new FileRaftStorageOptionsValidator().Validate(Options.DefaultName, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(FileRaftStorageOptions), result.Failures);
        }
    }

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, FileRaftStorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Directory))
        {
            failures.Add($"Directory is '{options.Directory}'; it must be the path of the directory that holds this node's log (it is created when missing).");
        }
        else if (options.Directory.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
        {
            failures.Add($"Directory is '{options.Directory}'; it must not contain characters that are invalid in a path.");
        }

        if (!GaggleOptionsValidator.IsValidId(options.NodeId))
        {
            failures.Add($"NodeId is '{options.NodeId}'; it must be 1 to 64 characters among letters, digits and . _ - : (the id of the node that owns the directory).");
        }

        if (!Enum.IsDefined(options.FlushPolicy))
        {
            failures.Add($"FlushPolicy is {(int)options.FlushPolicy}; it must be EveryBatch or None.");
        }

        if (options.SegmentBytes < FileRaftStorageOptions.MinSegmentBytes || options.SegmentBytes > FileRaftStorageOptions.MaxSegmentBytes)
        {
            failures.Add($"SegmentBytes is {options.SegmentBytes}; it must be between {FileRaftStorageOptions.MinSegmentBytes} (64 KiB) and {FileRaftStorageOptions.MaxSegmentBytes} (1 GiB).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
