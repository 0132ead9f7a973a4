using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// The Raft core and the node driver stay synchronous and free of I/O, threads and clocks, so the seeded
/// simulation runs them as they ship: time and randomness come in as arguments.
/// </summary>
[TestFixture]
public sealed partial class DriverPurityTests
{
    private static readonly string[] DriverFiles =
    [
        "Runtime/NodeDriver.cs", "Runtime/NodeDriver.Forwarded.cs", "Runtime/ForwardedTraces.cs", "Runtime/NodeDriverSettings.cs", "Runtime/NodeOutput.cs", "Runtime/DriverAppend.cs", "Runtime/AppendPipeline.cs",
        "Runtime/DispatchRouter.cs", "Runtime/NodeStateMachines.cs", "Runtime/ApplicationStateMachines.cs", "Runtime/INodeStateMachine.cs",
        "Runtime/NodeSnapshot.cs", "Runtime/ProposalDeduplicator.cs", "Runtime/EntryEnvelope.cs", "Locks/LockStateMachine.cs", "Locks/LockTable.cs",
        "Locks/LeaseClock.cs", "Leadership/LeadershipLease.cs", "Runtime/MembershipChanges.cs", "Runtime/MembershipRequest.cs", "Runtime/Autopilot.cs",
    ];

    [Test]
    public void TheRaftCoreAndTheNodeDriverUseNoTasksThreadsClocksLocksOrUnseededRandomness()
    {
        string source = Path.Combine(RepositoryRoot(), "src", "Gaggle");
        var files = Directory.GetFiles(Path.Combine(source, "Raft"), "*.cs").Concat(DriverFiles.Select(f => Path.Combine(source, f))).ToArray();
        var offences = new List<string>();
        foreach (var file in files)
        {
            Assert.That(File.Exists(file), Is.True, file);
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                string code = lines[i].Split("//")[0];
                if (Forbidden().Match(code) is { Success: true } match)
                {
                    offences.Add($"{Path.GetRelativePath(source, file)}:{i + 1}: {match.Value}");
                }
            }
        }

        Assert.That(offences, Is.Empty);
    }

    [GeneratedRegex(@"\b(Task|ValueTask|Thread|ThreadPool|TimeProvider|DateTime|DateTimeOffset|Stopwatch|Timer|await|async|Monitor|Interlocked\.Exchange|Random\.Shared|Environment\.TickCount\w*)\b|\block\s*\(")]
    private static partial Regex Forbidden();

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Gaggle.Redis.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (Gaggle.Redis.sln) was not found above the test directory.");
    }
}
