using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace Gaggle;

/// <summary>Checks <see cref="GaggleOptions"/>; every failure names the setting, its value and the rule.</summary>
/// <remarks>
/// Options are validated once on the way to a running node: by the <see cref="GaggleNode"/>
/// constructor when the application constructs the node; by <see cref="GaggleNodeBuilder.Build"/>
/// (before the channel and storage factories see them) when a builder does, which then tells the
/// constructor not to validate again; under hosting by the options system
/// when <c>IOptions&lt;GaggleOptions&gt;</c> is first read, after which the builder skips its own check
/// (<see cref="GaggleNodeBuilder.BuildWithValidatedOptions"/>).
/// </remarks>
public sealed partial class GaggleOptionsValidator : IValidateOptions<GaggleOptions>
{
    /// <summary>
    /// While set (by a test), counts the validations made in its async flow: every call of
    /// <see cref="Validate"/>, whether through <see cref="ThrowIfInvalid"/> or the options system.
    /// </summary>
    internal static readonly AsyncLocal<StrongBox<int>?> CountedValidations = new();

    /// <summary>Validates <paramref name="options"/> and throws <see cref="OptionsValidationException"/> listing every problem.</summary>
    /// <param name="options">The options to check.</param>
    public static void ThrowIfInvalid(GaggleOptions options)
    {
        var result = new GaggleOptionsValidator().Validate(Options.DefaultName, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(GaggleOptions), result.Failures);
        }
    }

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, GaggleOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (CountedValidations.Value is { } counted)
        {
            Interlocked.Increment(ref counted.Value);
        }

        var failures = new List<string>();
        var members = options.Members ?? [];
        if (options.IsElastic)
        {
            if (options.NodeId.Length > 0 && (!IsValidId(options.NodeId) || options.NodeId.Length > GaggleIdentity.MaxDisplayNameLength))
            {
                failures.Add($"NodeId is '{options.NodeId}'; in elastic mode (no Members, no ClusterSize) it is a display name of at most {GaggleIdentity.MaxDisplayNameLength} characters among letters, digits and . _ - : (or empty for the machine's name).");
            }
        }
        else if (!IsValidId(options.NodeId))
        {
            failures.Add($"NodeId is '{options.NodeId}'; it must be 1 to 64 characters among letters, digits and . _ - :");
        }

        if (members.Count > 0 && options.ClusterSize is not null)
        {
            failures.Add($"Members ({members.Count} ids) and ClusterSize ({options.ClusterSize}) are both set; set exactly one of them.");
        }

        if (members.Count > 0)
        {
            foreach (var member in members)
            {
                if (!IsValidId(member))
                {
                    failures.Add($"Members contains '{member}'; every member id must be 1 to 64 characters among letters, digits and . _ - :");
                }
            }

            var duplicates = members.GroupBy(m => m, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            if (duplicates.Count > 0)
            {
                failures.Add($"Members lists '{string.Join("', '", duplicates)}' more than once; member ids must be unique.");
            }

            if (!options.Join && !members.Contains(options.NodeId, StringComparer.Ordinal))
            {
                failures.Add($"Members is [{string.Join(", ", members)}]; it must include this node's NodeId '{options.NodeId}' (or set Join to start as a newcomer the cluster adds later).");
            }
        }

        if (options.EffectiveVoters is { } voters)
        {
            if (voters is not (1 or 3 or 5 or 7))
            {
                failures.Add($"Voters is {voters}; it must be 1, 3, 5 or 7 (an odd number of voters; an even one tolerates no more failures than the odd one below it).");
            }

            if (options.ClusterSize is not null)
            {
                failures.Add($"Voters is {voters} but ClusterSize is set; ClusterSize mode has a fixed set of voters (use Members, or neither for elastic mode).");
            }

            if (options.MemberTimeout < 4 * options.ElectionTimeoutMax || options.MemberTimeout > TimeSpan.FromHours(1))
            {
                failures.Add($"MemberTimeout is {Ms(options.MemberTimeout)}; it must be between 4 x ElectionTimeoutMax ({Ms(4 * options.ElectionTimeoutMax)}) and 1 hour.");
            }
        }

        if (options.Join && options.ClusterSize is not null)
        {
            failures.Add("Join is set with ClusterSize; a joining node needs Members, the voters of the cluster it joins (in elastic mode every node joins by itself).");
        }

        if (options.ClusterSize is { } size && (size < 1 || size > 1000))
        {
            failures.Add($"ClusterSize is {size}; it must be between 1 and 1000.");
        }

        if (options.HeartbeatInterval < TimeSpan.FromMilliseconds(1))
        {
            failures.Add($"HeartbeatInterval is {Ms(options.HeartbeatInterval)}; it must be at least 1 ms.");
        }

        if (options.ElectionTimeoutMin <= options.HeartbeatInterval)
        {
            failures.Add($"ElectionTimeoutMin is {Ms(options.ElectionTimeoutMin)}; it must be greater than HeartbeatInterval ({Ms(options.HeartbeatInterval)}), ideally several times it.");
        }

        if (options.ElectionTimeoutMax < options.ElectionTimeoutMin)
        {
            failures.Add($"ElectionTimeoutMax is {Ms(options.ElectionTimeoutMax)}; it must be at least ElectionTimeoutMin ({Ms(options.ElectionTimeoutMin)}).");
        }

        if (options.ElectionTimeoutMax > TimeSpan.FromMinutes(10))
        {
            failures.Add($"ElectionTimeoutMax is {Ms(options.ElectionTimeoutMax)}; it must be at most 10 minutes.");
        }

        Range(failures, nameof(options.MaxInflightMessages), options.MaxInflightMessages, 1, 1024);
        Range(failures, nameof(options.MaxInflightBytes), options.MaxInflightBytes, 64 * 1024, 1024 * 1024 * 1024);
        Range(failures, nameof(options.MaxEntriesPerMessage), options.MaxEntriesPerMessage, 1, 65536);
        Range(failures, nameof(options.MaxMessageBytes), options.MaxMessageBytes, 1024, 64 * 1024 * 1024);
        if (options.LockLeaseDuration < TimeSpan.FromMilliseconds(100) || options.LockLeaseDuration > TimeSpan.FromHours(1))
        {
            failures.Add($"LockLeaseDuration is {Ms(options.LockLeaseDuration)}; it must be between 100 ms and 1 hour.");
        }

        Range(failures, nameof(options.SnapshotThresholdEntries), options.SnapshotThresholdEntries, 0, 100_000_000);
        Range(failures, nameof(options.SnapshotRetainEntries), options.SnapshotRetainEntries, 0, 100_000_000);
        foreach (var (machineName, machine) in options.StateMachines)
        {
            if (string.IsNullOrWhiteSpace(machineName) || machine is null)
            {
                failures.Add($"StateMachines has the name '{machineName}' with {(machine is null ? "no state machine" : "a state machine")}; names must be non-blank and state machines non-null.");
            }
        }

        foreach (var (method, handler) in options.RpcHandlers)
        {
            if (string.IsNullOrWhiteSpace(method) || handler is null)
            {
                failures.Add($"RpcHandlers has the method '{method}' with {(handler is null ? "no handler" : "a handler")}; method names must be non-blank and handlers non-null.");
            }
            else if (method.StartsWith(ReservedRpcPrefix, StringComparison.Ordinal))
            {
                failures.Add($"RpcHandlers has the method '{method}'; names starting with '{ReservedRpcPrefix}' are reserved for Gaggle's own calls.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>The prefix of Gaggle's own leader RPC methods (membership changes).</summary>
    internal const string ReservedRpcPrefix = "gaggle:";

    internal static bool IsValidId(string? id) => id is not null && IdPattern().IsMatch(id);

    private static void Range(List<string> failures, string name, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            failures.Add($"{name} is {value}; it must be between {min} and {max}.");
        }
    }

    private static string Ms(TimeSpan value) => $"{value.TotalMilliseconds:0.###} ms";

    [GeneratedRegex("^[A-Za-z0-9._:-]{1,64}$")]
    private static partial Regex IdPattern();
}
