using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>
/// One instance of samples/Gaggle.Samples.WebApp, run as its own process on a loopback port it picks
/// itself (port 0): a port picked here and handed over could be taken meanwhile by any outgoing
/// connection of the other test processes, as the ephemeral range is shared. The port is read from the
/// host's "Now listening on" line.
/// </summary>
internal sealed class WebAppProcess : IDisposable
{
    private static readonly TimeSpan ListeningDeadline = TimeSpan.FromSeconds(90);
    private static readonly Regex ListeningLine = new(@"Now listening on: (http://127\.0\.0\.1:\d+)", RegexOptions.Compiled);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly TaskCompletionSource<Uri> _address = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private HttpClient? _client;

    private WebAppProcess(string id, Process process)
    {
        Id = id;
        _process = process;
    }

    public string Id { get; }

    /// <summary>A client of this instance, once it listens (waits for that with a deadline; fails at once when the process exits first).</summary>
    public HttpClient Client
    {
        get
        {
            if (_client is null)
            {
                if (!_address.Task.Wait(ListeningDeadline))
                {
                    throw new TimeoutException($"{Id} did not listen within {ListeningDeadline}:\n{Output}");
                }

                _client ??= new HttpClient { BaseAddress = _address.Task.Result, Timeout = TimeSpan.FromSeconds(30) };
            }

            return _client;
        }
    }

    public bool HasExited => _process.HasExited;

    public string Output => string.Join("\n", _lines);

    /// <summary>An instance with a static member list: node <paramref name="id"/> of <paramref name="members"/>.</summary>
    public static WebAppProcess Start(string assembly, string redis, string cluster, string id, IReadOnlyList<string> members, params string[] extraArguments)
        => Launch(assembly, id, [$"--Gaggle:NodeId={id}", $"--Gaggle:Redis={redis}", $"--Gaggle:Cluster={cluster}", .. members.Select((member, i) => $"--Gaggle:Members:{i}={member}"), .. extraArguments]);

    /// <summary>An elastic instance: only the Redis and the cluster's name (its member id is its own; <paramref name="label"/> only names it in test output).</summary>
    public static WebAppProcess StartElastic(string assembly, string redis, string cluster, string label, params string[] extraArguments)
        => Launch(assembly, label, [$"--Gaggle:Redis={redis}", $"--Gaggle:Cluster={cluster}", .. extraArguments]);

    private static WebAppProcess Launch(string assembly, string id, IEnumerable<string> gaggleArguments)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(assembly)!,
        };
        // Lighter processes, as several share this machine with the other test assemblies: workstation
        // GC (server GC gives each process a heap and a GC thread per core), no profile-guided
        // instrumentation while the app warms up, and no log line per HTTP request (the tests poll
        // /status); Gaggle's own log lines stay. Together about a third less CPU for eight instances.
        info.Environment["DOTNET_gcServer"] = "0";
        info.Environment["DOTNET_TieredPGO"] = "0";
        info.Environment["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        List<string> arguments = [assembly, "--urls", "http://127.0.0.1:0", .. gaggleArguments];
        arguments.ForEach(info.ArgumentList.Add);

        var instance = new WebAppProcess(id, Process.Start(info)!);
        instance._process.OutputDataReceived += (_, e) => instance.OnLine(e.Data);
        instance._process.ErrorDataReceived += (_, e) => instance.OnLine(e.Data);
        instance._process.EnableRaisingEvents = true;
        instance._process.Exited += (_, _) => instance._address.TrySetException(new InvalidOperationException($"{id} exited before it listened:\n{instance.Output}"));
        instance._process.BeginOutputReadLine();
        instance._process.BeginErrorReadLine();
        return instance;
    }

    /// <summary>The built web app sample next to this test build.</summary>
    public static string Assembly() => BuiltSample.Path("Gaggle.Samples.WebApp");

    /// <summary>Waits for the process to exit by itself; its exit code, or null when it still runs after <paramref name="timeout"/>.</summary>
    public int? WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            return null;
        }

        _process.WaitForExit(); // flushes the redirected output
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, as a platform stops an instance: the host shuts down cleanly (the node leaves the cluster gracefully).</summary>
    public void Terminate() => Signal("TERM");

    /// <summary>SIGSTOP: the process freezes (as in a long GC pause or a frozen VM) until <see cref="Resume"/>; its sockets stay open.</summary>
    public void Pause() => Signal("STOP");

    /// <summary>SIGCONT: a paused process runs on, its clocks having jumped.</summary>
    public void Resume() => Signal("CONT");

    /// <summary>SIGKILL: no clean shutdown, the instance's locks end only when their leases expire.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    public void Dispose()
    {
        Kill();
        _client?.Dispose();
        _process.Dispose();
    }

    private void Signal(string signal)
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", $"-{signal} {_process.Id}") { UseShellExecute = false })!;
            kill.WaitForExit();
        }
    }

    private void OnLine(string? line)
    {
        if (line is not null)
        {
            if (!_address.Task.IsCompleted && ListeningLine.Match(line) is { Success: true } match)
            {
                _address.TrySetResult(new Uri(match.Groups[1].Value));
            }

            _lines.Enqueue(line);
            while (_lines.Count > 2000 && _lines.TryDequeue(out _))
            {
            }
        }
    }
}
