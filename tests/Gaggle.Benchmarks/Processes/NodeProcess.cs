using System.Diagnostics;
using System.Text.Json;

namespace Gaggle.Benchmarks.Processes;

/// <summary>
/// The driver's handle on one node process: this program again, in <see cref="NodeHost"/> mode. Commands
/// go one at a time (a command waits for the previous reply); the process's stderr is copied to ours,
/// each line prefixed with the node's id.
/// </summary>
internal sealed class NodeProcess : IDisposable
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    private NodeProcess(string id, Process process)
    {
        Id = id;
        _process = process;
    }

    public string Id { get; }

    /// <summary>The last status this process replied with (null before the first).</summary>
    public NodeStatus? LastStatus { get; private set; }

    /// <summary>The largest peak RSS any status reported, in bytes (it outlives a killed process).</summary>
    public long PeakRssBytes { get; private set; }

    public bool HasExited => _process.HasExited;

    public static NodeProcess Start(string id, IEnumerable<string> hostArguments)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var (fileName, leadingArguments) = ThisProgram();
        start.FileName = fileName;
        foreach (var argument in leadingArguments.Concat(hostArguments))
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start the node process {id}");
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"[{id}] {e.Data}");
            }
        };
        process.BeginErrorReadLine();
        return new NodeProcess(id, process);
    }

    /// <summary>
    /// How to run this program again: its apphost directly, or, when it runs as <c>dotnet Gaggle.Benchmarks.dll</c>,
    /// the same <c>dotnet</c> with the same dll.
    /// </summary>
    private static (string FileName, string[] Arguments) ThisProgram()
    {
        string host = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown");
        bool viaDotnet = Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        return viaDotnet ? (host, [typeof(NodeProcess).Assembly.Location]) : (host, []);
    }

    public async Task<NodeStatus> StatusAsync()
    {
        var status = await SendAsync<NodeStatus>(new NodeCommand(NodeProtocol.Status)).ConfigureAwait(false);
        LastStatus = status;
        PeakRssBytes = Math.Max(PeakRssBytes, status.PeakRssBytes);
        return status;
    }

    /// <summary>Sends <paramref name="command"/> and reads its reply; an error reply, an exit or silence throws.</summary>
    public async Task<T> SendAsync<T>(NodeCommand command)
    {
        await _oneAtATime.WaitAsync().ConfigureAwait(false);
        try
        {
            await _process.StandardInput.WriteLineAsync(JsonSerializer.Serialize(command, NodeProtocol.Json)).ConfigureAwait(false);
            await _process.StandardInput.FlushAsync().ConfigureAwait(false);
            using var timeout = new CancellationTokenSource(ReplyTimeout + TimeSpan.FromSeconds(command.Seconds));
            string line = await _process.StandardOutput.ReadLineAsync(timeout.Token).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"node process {Id} exited (code {ExitCode()}) before replying to '{command.Op}'");
            using var reply = JsonDocument.Parse(line);
            if (reply.RootElement.TryGetProperty("error", out var error))
            {
                throw new InvalidOperationException($"node process {Id} failed '{command.Op}': {error.GetString()}");
            }

            return reply.RootElement.Deserialize<T>(NodeProtocol.Json)
                ?? throw new InvalidOperationException($"node process {Id} sent an empty reply to '{command.Op}'");
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>A crash: SIGKILL on Unix, so the node gets no chance to hand over or say goodbye.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already exited
        }
    }

    public Task WaitForExitAsync(CancellationToken cancellationToken) => _process.WaitForExitAsync(cancellationToken);

    private string ExitCode() => _process.WaitForExit(TimeSpan.FromSeconds(1)) ? _process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?";

    public void Dispose()
    {
        Kill();
        _process.Dispose();
        _oneAtATime.Dispose();
    }
}
