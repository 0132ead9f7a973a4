using Gaggle.Channels;
using Gaggle.Locks;
using Gaggle.Raft;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace Gaggle.Hosting.Tests;

/// <summary>
/// What singleton jobs cost the log while nothing happens, and that the cheap local look before a try
/// does not slow a job's move when its instance dies.
/// </summary>
[TestFixture]
public sealed class IdleJobTests
{
    /// <summary>The test hosts' <c>Gaggle:Jobs:PollInterval</c> (see <see cref="SingletonJobTests.StartHostsAsync"/>).</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>The test hosts' <c>Gaggle:LockLeaseDuration</c>.</summary>
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Three instances, every job running somewhere: the instances waiting for a job look at their own
    /// copy of the lock table every poll interval, which adds no entry. What the log still gets is the
    /// lease renewals (a presence lock per instance, a lock per job, each every lease / 3).
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public async Task WhileEveryJobRunsTheLogGetsLeaseRenewalsAndAlmostNothingElse(bool twoJobs)
    {
        var log = new RunLog();
        var network = new InMemoryNetwork(1);
        var hosts = await SingletonJobTests.StartHostsAsync(log, g => g.UseInMemory(network), twoJobs);
        try
        {
            int jobs = twoJobs ? 2 : 1;
            await SingletonJobTests.Deadline(() => log.RunningOn.Count == jobs, "every job to start");
            // Let the tries of the start settle (they are answered by now, but some may still be committing).
            await Task.Delay(PollInterval * 5);
            var node = hosts["a"].Services.GetRequiredService<GaggleNode>();
            long from = node.CommitIndex;
            var window = TimeSpan.FromSeconds(2);
            await Task.Delay(window);
            long to = node.CommitIndex;
            var entries = (await node.GetLogAsync()).Where(e => e.Index > from && e.Index <= to).ToList();
            var kinds = entries.Select(Describe).ToList();
            TestContext.Out.WriteLine($"{entries.Count} entries in {window.TotalSeconds} s: " + string.Join(", ", kinds.GroupBy(k => k).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} x{g.Count()}")));

            Assume.That(log.RunningOn, Has.Count.EqualTo(jobs), "no job moved during the window (an election would)");
            int polls = (int)(window / PollInterval);
            var notRenewals = kinds.Where(k => !k.StartsWith("Renew ", StringComparison.Ordinal)).ToList();
            // Before the local look, each waiting instance tried (a log entry) several times per poll interval.
            Assert.That(notRenewals, Has.Count.LessThan(polls / 2),
                $"over {polls} poll intervals of 3 instances, tries and reads while every job runs: {string.Join(", ", notRenewals)}");
        }
        finally
        {
            foreach (var host in hosts.Values)
            {
                await host.StopAsync();
                host.Dispose();
            }
        }
    }

    /// <summary>
    /// The instance running the job is cut off without releasing anything: its lease runs out in the
    /// table (a time entry from the leader ends it), the others see the lock free in their own copy and
    /// one of them takes the job at its next poll, about a lease and a poll interval later.
    /// </summary>
    [Test]
    public async Task AJobMovesWhenItsInstanceIsCutOffWithoutReleasing()
    {
        var log = new RunLog();
        var network = new InMemoryNetwork(1);
        var hosts = await SingletonJobTests.StartHostsAsync(log, g => g.UseInMemory(network), twoJobs: false);
        try
        {
            await SingletonJobTests.Deadline(() => log.RunningOn.ContainsKey("cleanup"), "the job to start somewhere");
            string first = log.RunningOn["cleanup"];
            var cutAt = log.Now;
            network.Isolate(first);
            await SingletonJobTests.Deadline(() => log.RunningOn.TryGetValue("cleanup", out var node) && node != first, "the job to move away from the cut-off instance");
            TestContext.Out.WriteLine($"moved from {first} to {log.RunningOn["cleanup"]} {log.Now - cutAt:0} ms after the cut");
            Assert.That(log.Now - cutAt, Is.LessThan((Lease + PollInterval).TotalMilliseconds + 5000), "moved within the lease and a poll interval (plus an election)");
            SingletonJobTests.AssertNoOverlap(log);
            network.Heal();
        }
        finally
        {
            foreach (var host in hosts.Values)
            {
                await host.StopAsync();
                host.Dispose();
            }
        }

        SingletonJobTests.AssertNoOverlap(log);
    }

    /// <summary>A committed entry as "Type lock-name" (lock commands), "user" or the entry's kind.</summary>
    private static string Describe(GaggleLogEntry entry)
        => entry.Kind != EntryKind.Normal ? entry.Kind.ToString()
            : LockCommand.TryDecode(entry.Data) is { } command ? $"{command.Type} {command.Name}" : "user";
}
