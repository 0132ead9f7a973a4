using System.Collections.Concurrent;
using Gaggle.Locks;
using NUnit.Framework;
using StackExchange.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>Locks and a semaphore over Redis: many clients, a leader's connections killed mid-run, a holder's node gone.</summary>
[TestFixture]
[Category("Redis")]
[Parallelizable(ParallelScope.All)]
public sealed class LockTests
{
    private static readonly (string Name, int MaxCount)[] Resources = [("alpha", 1), ("beta", 1), ("gamma", 1), ("pool", 3)];

    [Test]
    public async Task TwentyClientsKeepMutualExclusionAndFencingThroughALeadersConnectionsBeingKilled()
    {
        var configuration = await RedisServer.RequireAsync();
        await using var cluster = new RedisCluster(configuration, 3, configureNode: options => options.LockLeaseDuration = TimeSpan.FromSeconds(3));
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var sections = new CriticalSections();
        using var stop = new CancellationTokenSource();
        var nodes = cluster.Ids.Select(id => cluster.Nodes[id]).ToArray();
        var clients = Enumerable.Range(0, 20).Select(i => Task.Run(() => ClientAsync($"client{i}", nodes[i % nodes.Length], new Random(i), sections, stop.Token))).ToList();

        await Eventually.True(() => sections.Completed >= 150, "150 critical sections before the kill", TimeSpan.FromSeconds(60));
        await using (var admin = await ConnectionMultiplexer.ConnectAsync(configuration + ",allowAdmin=true"))
        {
            var server = admin.GetServer(admin.GetEndPoints()[0]);
            var victims = (await server.ClientListAsync()).Where(c => c.Name == $"gaggle-{cluster.Name}-{leader.Id}").ToList();
            Assert.That(victims, Is.Not.Empty, "the leader's connections are named after the cluster and node");
            foreach (var victim in victims)
            {
                await server.ClientKillAsync(victim.Id);
            }
        }

        long termAtKill = leader.Term;
        var channel = cluster.Channels[leader.Id];
        await Eventually.True(() => channel.Statistics.ConnectionRestores > 0, "the killed connections to be restored", TimeSpan.FromSeconds(60));
        int atRestore = sections.Completed;
        await Eventually.True(() => sections.Completed >= atRestore + 150, "150 more critical sections after the restore", TimeSpan.FromSeconds(60));
        await stop.CancelAsync();
        await Task.WhenAll(clients);

        Assert.That(sections.Violations, Is.Empty, "critical sections guarded by HandleLostToken never overlapped beyond a lock's slots, and fencing tokens only went up");
        Assert.That(channel.Statistics.ConnectionFailures, Is.GreaterThan(0), "the kill was noticed");
        foreach (var (name, _) in Resources)
        {
            Assert.That(sections.Entries(name), Is.GreaterThan(0), $"'{name}' was used");
            await UntilAsync(async () => (await cluster.Nodes.Values.First().Locks.InspectAsync(name, TimeSpan.FromSeconds(5))).Holders.Count == 0, $"every hold of '{name}' released once the clients stopped");
        }

        var after = await cluster.WaitForLeaderAsync();
        TestContext.Out.WriteLine($"{sections.Completed} critical sections, {sections.LostInside} cut short by a lost hold, {sections.TimedOut} acquires timed out; "
            + $"leader {leader.Id} in term {termAtKill} at the kill, {after.Id} in term {after.Term} at the end");
    }

    [Test]
    public async Task AHolderWhoseNodeIsCutOffAndDisposedIsReplacedOnceItsLeaseRunsOut([Values] bool holderLeads)
    {
        var configuration = await RedisServer.RequireAsync();
        var lease = TimeSpan.FromMilliseconds(800);
        await using var cluster = new RedisCluster(configuration, 3, configureNode: options => options.LockLeaseDuration = lease);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var holderNode = holderLeads ? leader : cluster.Nodes.Values.First(n => n != leader);
        var waiterNode = cluster.Nodes.Values.First(n => n != leader && n != holderNode);

        var holder = await holderNode.Locks.AcquireAsync("singleton", TimeSpan.FromSeconds(10));
        var waiting = waiterNode.Locks.AcquireAsync("singleton", TimeSpan.FromSeconds(30));
        await UntilAsync(async () => (await waiterNode.Locks.InspectAsync("singleton", TimeSpan.FromSeconds(5))).QueueLength == 1, "the second request to queue");
        var before = await waiterNode.Locks.InspectAsync("singleton");

        // The holder's process is cut off, then goes away: its release reaches nobody, so only the
        // lease's end can free the lock. (Stopped while connected, it would release it at once.)
        await cluster.Channels[holderNode.Id].DisconnectAsync();
        await cluster.StopAsync(holderNode.Id);
        await Eventually.True(() => holder.HandleLostToken.IsCancellationRequested, "the stopped node's hold to be no longer trusted");
        await using var next = await waiting;
        Assert.That(next.FencingToken, Is.GreaterThan(holder.FencingToken));
        var after = await waiterNode.Locks.InspectAsync("singleton");
        Assert.That(after.Holders.Select(h => (h.NodeId, h.FencingToken)), Is.EqualTo(new[] { (waiterNode.Id, next.FencingToken) }));
        Assert.That(after.Holders[0].Since, Is.GreaterThanOrEqualTo(before.Holders[0].LeaseExpiry), "granted only once the old lease, as last seen, ran out on the lease clock");
        Assert.That(next.HandleLostToken.IsCancellationRequested, Is.False);
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Gave up after 30 s waiting for {what}.");
            }

            await Task.Delay(5);
        }
    }

    /// <summary>One application thread: acquire one of the resources, work inside while the hold is trusted, release; until stopped.</summary>
    private static async Task ClientAsync(string client, GaggleNode node, Random random, CriticalSections sections, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var (name, maxCount) = Resources[random.Next(Resources.Length)];
            GaggleLockHandle? handle;
            try
            {
                var timeout = TimeSpan.FromMilliseconds(random.Next(200, 2000));
                handle = maxCount == 1
                    ? await node.Locks.TryAcquireAsync(name, timeout, stop)
                    : await node.Locks.TryAcquireSemaphoreAsync(name, maxCount, timeout, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }

            if (handle is null)
            {
                sections.AcquireTimedOut();
                continue;
            }

            await using (handle)
            {
                await sections.RunAsync(client, name, maxCount, handle, random.Next(1, 6));
            }
        }
    }

    /// <summary>
    /// Critical sections guarded by HandleLostToken, as an application writes them: enter only while
    /// the hold is trusted, leave as soon as it is not. Records when more than a lock's slots are
    /// inside at once, and plays a fenced resource per mutex that refuses a token not above the last
    /// one it accepted.
    /// </summary>
    private sealed class CriticalSections
    {
        private readonly ConcurrentDictionary<string, int> _inside = new();
        private readonly ConcurrentDictionary<string, int> _entries = new();
        private readonly ConcurrentDictionary<string, long> _highestToken = new();
        private readonly ConcurrentDictionary<(string, long), string> _tokens = new();
        private int _completed;
        private int _lostInside;
        private int _timedOut;

        public ConcurrentQueue<string> Violations { get; } = new();

        public int Completed => Volatile.Read(ref _completed);

        public int LostInside => Volatile.Read(ref _lostInside);

        public int TimedOut => Volatile.Read(ref _timedOut);

        public int Entries(string name) => _entries.GetValueOrDefault(name);

        public void AcquireTimedOut() => Interlocked.Increment(ref _timedOut);

        public async Task RunAsync(string client, string name, int maxCount, GaggleLockHandle handle, int steps)
        {
            if (handle.HandleLostToken.IsCancellationRequested)
            {
                return;
            }

            int inside = _inside.AddOrUpdate(name, 1, (_, n) => n + 1);
            try
            {
                _entries.AddOrUpdate(name, 1, (_, n) => n + 1);
                if (inside > maxCount)
                {
                    Violations.Enqueue($"{client} entered '{name}' (token {handle.FencingToken}) while {inside - 1} were inside (max {maxCount})");
                }

                if (!_tokens.TryAdd((name, handle.FencingToken), client))
                {
                    Violations.Enqueue($"{client} got token {handle.FencingToken} of '{name}', already given to {_tokens[(name, handle.FencingToken)]}");
                }

                if (maxCount == 1)
                {
                    long previous = _highestToken.GetValueOrDefault(name);
                    if (handle.FencingToken <= previous)
                    {
                        Violations.Enqueue($"{client} wrote to '{name}' with token {handle.FencingToken}, not above {previous} (fencing)");
                    }

                    _highestToken[name] = Math.Max(previous, handle.FencingToken);
                }

                for (int i = 0; i < steps; i++)
                {
                    await Task.Delay(1, handle.HandleLostToken);
                }
            }
            catch (OperationCanceledException) when (handle.HandleLostToken.IsCancellationRequested)
            {
                Interlocked.Increment(ref _lostInside);
            }
            finally
            {
                _inside.AddOrUpdate(name, 0, (_, n) => n - 1);
                Interlocked.Increment(ref _completed);
            }
        }
    }
}
