using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>
/// Durability across processes: three demo processes (one node each, over Redis, each with its own
/// data directory); one is killed with SIGKILL and restarted on its directory and catches up; then all
/// three are killed and restarted and every entry committed before is still there.
/// </summary>
[TestFixture]
[Category("Redis")]
[NonParallelizable]
public sealed partial class ProcessRestartTests
{
    private static readonly string[] Ids = ["node-a", "node-b", "node-c"];

    [Test]
    public async Task KilledNodesRestartFromTheirDataDirectoriesAndCommittedEntriesSurvive()
    {
        var redis = await RedisServer.RequireAsync();
        var demo = DemoAssembly();
        string cluster = "proc-" + Guid.NewGuid().ToString("N")[..8];
        string data = Path.Combine(Path.GetTempPath(), "gaggle-proc-" + Guid.NewGuid().ToString("N"));
        var processes = new Dictionary<string, DemoProcess>();
        try
        {
            foreach (var id in Ids)
            {
                processes[id] = DemoProcess.Start(demo, redis, cluster, id, data);
            }

            await Eventually.True(() => Ids.All(id => processes[id].Committed.Count >= 30), "30 commits seen by every process", TimeSpan.FromSeconds(60));

            // SIGKILL one node and restart it on the same directory: it catches up.
            var victim = processes["node-b"];
            victim.Kill();
            long seenBefore = processes["node-a"].HighestIndex;
            processes["node-b"] = DemoProcess.Start(demo, redis, cluster, "node-b", data);
            await Eventually.True(() => processes["node-b"].HighestIndex > seenBefore + 10, "the restarted node to apply entries committed after it came back", TimeSpan.FromSeconds(60));
            Assert.That(processes["node-b"].Output, Does.Not.Contain("lost"), "a node restarted on its own directory has not lost its storage");

            // Kill all three, remember what was committed, restart all: it is all still there.
            foreach (var process in processes.Values)
            {
                process.Kill();
            }

            var committed = Ids.Select(id => (IEnumerable<KeyValuePair<long, string>>)processes[id].Committed.ToArray())
                .Aggregate((a, b) => a.Intersect(b).ToArray())
                .ToDictionary();
            Assert.That(committed, Has.Count.GreaterThan(30));
            foreach (var id in Ids)
            {
                processes[id] = DemoProcess.Start(demo, redis, cluster, id, data);
            }

            await Eventually.True(
                () => Ids.All(id => committed.All(entry => processes[id].Committed.TryGetValue(entry.Key, out var text) && text == entry.Value)),
                "every entry committed before the restart of all three, at its index, on every node",
                TimeSpan.FromSeconds(60));
        }
        finally
        {
            foreach (var process in processes.Values)
            {
                process.Kill();
            }

            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }

    private static string DemoAssembly() => BuiltSample.Path("Gaggle.Samples.Cluster");

    private sealed partial class DemoProcess
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _lines = new();

        private DemoProcess(Process process)
        {
            _process = process;
        }

        public ConcurrentDictionary<long, string> Committed { get; } = new();

        public long HighestIndex => Committed.IsEmpty ? 0 : Committed.Keys.Max();

        public string Output => string.Join("\n", _lines);

        public static DemoProcess Start(string demo, string redis, string cluster, string id, string data)
        {
            var info = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var argument in new[] { demo, "--redis", redis, "--cluster", cluster, "--id", id, "--data", data, "--interval", "20" })
            {
                info.ArgumentList.Add(argument);
            }

            var process = new DemoProcess(Process.Start(info)!);
            process._process.OutputDataReceived += (_, e) => process.OnLine(e.Data);
            process._process.ErrorDataReceived += (_, e) => process.OnLine(e.Data);
            process._process.BeginOutputReadLine();
            process._process.BeginErrorReadLine();
            return process;
        }

        public void Kill()
        {
            if (!_process.HasExited)
            {
                _process.Kill(); // SIGKILL on Linux: no clean shutdown, no flush beyond what was fsynced
                _process.WaitForExit();
            }
        }

        private void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            _lines.Enqueue(line);
            var match = CommittedLine().Match(line);
            if (match.Success)
            {
                Committed[long.Parse(match.Groups[1].Value)] = match.Groups[2].Value;
            }
        }

        [GeneratedRegex(@"committed #(\d+): (.*)$")]
        private static partial Regex CommittedLine();
    }
}
