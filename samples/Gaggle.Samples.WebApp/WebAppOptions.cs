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
