using System.Collections.Concurrent;
using Gaggle.Locks;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Locks;

/// <summary>Reader-writer locks through <see cref="GaggleLocks"/> on a three-node cluster (in-memory network).</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class ReaderWriterLockNodeTests
{
    private static NodeCluster Cluster() => new(3, options => options.LockLeaseDuration = TimeSpan.FromSeconds(10));

    [Test]
    public async Task ReadersOnEveryNodeShareTheLockAndAWriterGetsItAloneOnceTheyLetGo()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var readers = new List<GaggleLockHandle>();
        foreach (var node in cluster.Nodes.Values)
        {
            readers.Add(await node.Locks.AcquireReadAsync("catalog", TimeSpan.FromSeconds(10)));
        }

        Assert.That(readers.Select(r => r.Kind), Is.All.EqualTo(LockHoldKind.Read));
        Assert.That(readers.Select(r => r.MaxCount), Is.All.Zero);
        Assert.That(await leader.Locks.TryAcquireWriteAsync("catalog", TimeSpan.Zero), Is.Null, "a writer does not share it with readers");

        var writing = cluster.Nodes.Values.First(n => n != leader).Locks.AcquireWriteAsync("catalog", TimeSpan.FromSeconds(10));
        // The request is forwarded and committed before the leader's table shows it queued.
        await Contract.LockContractTests.UntilAsync(async () => (await leader.Locks.InspectAsync("catalog")).QueueLength > 0, "the writer's request to queue");
        var info = await leader.Locks.InspectAsync("catalog");
        Assert.That(info.Holders.Select(h => h.Kind), Is.All.EqualTo(LockHoldKind.Read));
        Assert.That(info.QueueLength, Is.EqualTo(1));
        Assert.That(await leader.Locks.TryAcquireReadAsync("catalog", TimeSpan.Zero), Is.Null, "a reader that comes while a writer waits queues behind it");

        foreach (var reader in readers)
        {
            await reader.DisposeAsync();
        }

        await using var writer = await writing;
        Assert.That(writer.Kind, Is.EqualTo(LockHoldKind.Write));
        Assert.That(writer.FencingToken, Is.GreaterThan(readers.Max(r => r.FencingToken)));
        Assert.That((await leader.Locks.InspectAsync("catalog")).Holders.Single().Kind, Is.EqualTo(LockHoldKind.Write));
    }

    [Test]
    public async Task WritersExcludeEveryoneUnderContention()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        await cluster.WaitForLeaderAsync();
        int readersInside = 0;
        int writersInside = 0;
        var violations = new ConcurrentQueue<string>();
        var writerTokens = new ConcurrentQueue<long>();
        var workers = cluster.Nodes.Values.SelectMany(node => Enumerable.Range(0, 4).Select(async worker =>
        {
            for (int i = 0; i < 8; i++)
            {
                bool write = (worker + i) % 4 == 0;
                await using var hold = write
                    ? await node.Locks.AcquireWriteAsync("shared", TimeSpan.FromSeconds(30))
                    : await node.Locks.AcquireReadAsync("shared", TimeSpan.FromSeconds(30));
                if (write)
                {
                    writerTokens.Enqueue(hold.FencingToken);
                    if (Interlocked.Increment(ref writersInside) != 1 || Volatile.Read(ref readersInside) != 0)
                    {
                        violations.Enqueue($"writer {hold.FencingToken} not alone");
                    }

                    await Task.Yield();
                    Interlocked.Decrement(ref writersInside);
                }
                else
                {
                    Interlocked.Increment(ref readersInside);
                    if (Volatile.Read(ref writersInside) != 0)
                    {
                        violations.Enqueue($"reader {hold.FencingToken} beside a writer");
                    }

                    await Task.Yield();
                    Interlocked.Decrement(ref readersInside);
                }
            }
        })).ToList();
        await Task.WhenAll(workers);
        Assert.That(violations, Is.Empty);
        Assert.That(writerTokens, Has.Count.EqualTo(24));
    }

    [Test]
    public async Task ANameUsedAsOneKindRefusesTheOther()
    {
        await using var cluster = Cluster();
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        await using var mutex = await leader.Locks.AcquireAsync("jobs", TimeSpan.FromSeconds(10));
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => leader.Locks.TryAcquireReadAsync("jobs", TimeSpan.FromSeconds(1)));
        Assert.That(refused!.Message, Is.EqualTo("'jobs' is in use as a mutex; this request asked for a reader-writer lock."));

        await using var reader = await leader.Locks.AcquireReadAsync("reports", TimeSpan.FromSeconds(10));
        var other = await Assert.ThrowsAsync<InvalidOperationException>(() => leader.Locks.TryAcquireAsync("reports", TimeSpan.FromSeconds(1)));
        Assert.That(other!.Message, Is.EqualTo("'reports' is in use as a reader-writer lock; this request asked for a mutex."));
    }
}
