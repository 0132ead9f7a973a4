using System.Collections.Concurrent;
using System.Diagnostics;

namespace Gaggle.Samples.Cluster;

/// <summary>
/// What the demo prints. On a terminal, events scroll by above a compact table of the nodes that is
/// redrawn in place ten times a second (leader in green, nodes without a leader in yellow, stopped
/// nodes in grey; <c>NO_COLOR</c> turns colours off). When the output is redirected, events are plain
/// lines and the table is printed only where the scenario asks for it.
/// </summary>
internal sealed class StatusTable : IAsyncDisposable
{
    private static readonly TimeSpan RefreshInterval = TimeSpan.FromMilliseconds(100);

    private readonly object _gate = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly IReadOnlyList<string> _ids;
    private readonly ConcurrentDictionary<string, GaggleNode> _running;
    private readonly bool _live;
    private readonly bool _colour;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _refresh;
    private int _footerLines;
    private readonly HashSet<string> _started = new(StringComparer.Ordinal);
    private bool _disposed;
    private string _phase = "starting";

    public StatusTable(IReadOnlyList<string> ids, ConcurrentDictionary<string, GaggleNode> running)
    {
        _ids = ids;
        _running = running;
        _live = !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not "dumb";
        _colour = _live && Environment.GetEnvironmentVariable("NO_COLOR") is null;
        _refresh = _live ? RefreshAsync(_stop.Token) : Task.CompletedTask;
    }

    /// <summary>Entries appended through each node by the demo.</summary>
    public ConcurrentDictionary<string, int> Appended { get; } = new(StringComparer.Ordinal);

    /// <summary>The fencing token of the demo lock each node holds now.</summary>
    public ConcurrentDictionary<string, long> Holding { get; } = new(StringComparer.Ordinal);

    /// <summary>Prints a timestamped event line (above the live table on a terminal).</summary>
    public void Say(string text)
    {
        lock (_gate)
        {
            EraseFooter();
            Console.WriteLine($"[{_clock.Elapsed.TotalMilliseconds,7:0} ms] {text}");
            DrawFooter();
        }
    }

    /// <summary>Names the scenario's current step; on a terminal it shows under the table.</summary>
    public void Phase(string phase)
    {
        lock (_gate)
        {
            _phase = phase;
        }
    }

    /// <summary>Prints the table now when the output is plain lines (on a terminal it is always visible).</summary>
    public void Snapshot()
    {
        if (_live)
        {
            return;
        }

        lock (_gate)
        {
            foreach (var line in Render())
            {
                Console.WriteLine(line);
            }
        }
    }

    /// <summary>Stops redrawing and leaves the last table on screen, so the summary follows it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _stop.CancelAsync();
        await _refresh;
        lock (_gate)
        {
            if (_live)
            {
                EraseFooter();
                foreach (var line in Render())
                {
                    Console.WriteLine(line);
                }
            }
        }

        _stop.Dispose();
    }

    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(RefreshInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                lock (_gate)
                {
                    EraseFooter();
                    DrawFooter();
                }
            }
        }
        catch (OperationCanceledException)
        {
            // stopped
        }
    }

    private void EraseFooter()
    {
        if (_live && _footerLines > 0)
        {
            Console.Write($"\u001b[{_footerLines}A\u001b[J");
            _footerLines = 0;
        }
    }

    private void DrawFooter()
    {
        if (!_live)
        {
            return;
        }

        var lines = Render();
        lines.Add(Paint($"    {_phase} ({_clock.Elapsed.TotalSeconds:0.0} s)", "36"));
        foreach (var line in lines)
        {
            Console.WriteLine(line);
        }

        _footerLines = lines.Count;
    }

    private List<string> Render()
    {
        var lines = new List<string> { Paint($"    {"node",-8} {"role",-10} {"term",5} {"commit",7} {"leader",-8} {"appended",8}  {"demo-lock",-14}".TrimEnd(), "1") };
        foreach (var id in _ids)
        {
            if (!_running.TryGetValue(id, out var node))
            {
                lines.Add(Paint($"    {id,-8} {(_started.Contains(id) ? "stopped" : "starting"),-10} {"",5} {"",7} {"",-8} {Appended.GetValueOrDefault(id),8}", "90"));
                continue;
            }

            _started.Add(id);
            string held = Holding.TryGetValue(id, out long token) ? $"token {token}" : "";
            string line = $"    {id,-8} {node.Role,-10} {node.Term,5} {node.CommitIndex,7} {node.LeaderId ?? "-",-8} {Appended.GetValueOrDefault(id),8}  {held,-14}";
            line = line.TrimEnd();
            lines.Add(node.IsLeader ? Paint(line, "32;1") : node.LeaderId is null ? Paint(line, "33") : line);
        }

        return lines;
    }

    private string Paint(string text, string code) => _colour ? $"\u001b[{code}m{text}\u001b[0m" : text;
}
