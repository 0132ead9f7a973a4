using Microsoft.Extensions.Options;

namespace Gaggle.Samples.WebApp;

/// <summary>The sample's own settings (configuration section <c>WebApp</c>).</summary>
public sealed class WebAppOptions
{
    /// <summary>How often the singleton cleanup job runs.</summary>
    /// <value>The default is 30 s.</value>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a counter may stay unchanged before the cleanup job deletes it.</summary>
    /// <value>The default is 1 hour.</value>
    public TimeSpan CounterRetention { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long a request waits for a counter's lock.</summary>
    /// <value>The default is 5 s.</value>
    public TimeSpan CounterLockTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>Checks <see cref="WebAppOptions"/> at start; every failure names the setting, its value and the rule.</summary>
public sealed class WebAppOptionsValidator : IValidateOptions<WebAppOptions>
{
    /// <summary>The longest cleanup interval accepted.</summary>
    public static readonly TimeSpan LongestCleanupInterval = TimeSpan.FromDays(1);

    /// <summary>The longest wait for a counter's lock accepted (the same as for <c>POST /locks</c>).</summary>
    public static readonly TimeSpan LongestCounterLockTimeout = TimeSpan.FromMinutes(1);

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, WebAppOptions options)
    {
        var failures = new List<string>();
        if (options.CleanupInterval < TimeSpan.FromMilliseconds(1) || options.CleanupInterval > LongestCleanupInterval)
        {
            failures.Add($"WebApp:CleanupInterval is {options.CleanupInterval}; it must be at least 1 ms and at most {LongestCleanupInterval.TotalHours:0} hours.");
        }

        if (options.CounterRetention < TimeSpan.Zero)
        {
            failures.Add($"WebApp:CounterRetention is {options.CounterRetention}; it must not be negative.");
        }

        if (options.CounterLockTimeout < TimeSpan.Zero || options.CounterLockTimeout > LongestCounterLockTimeout)
        {
            failures.Add($"WebApp:CounterLockTimeout is {options.CounterLockTimeout}; it must be from zero (try once) to {LongestCounterLockTimeout.TotalSeconds:0} seconds.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
