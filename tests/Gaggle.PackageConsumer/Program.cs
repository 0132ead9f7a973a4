using Gaggle;
using Gaggle.Channels;
using Gaggle.DistributedLock;
using Gaggle.Hosting;
using Gaggle.Redis;
using Medallion.Threading;

// A consumer of the packed Gaggle packages: three nodes on the in-memory network elect a leader,
// commit an entry on every node and grant a lock, natively and through DistributedLock.Core's
// IDistributedLockProvider. Exits 0 only when all of that happened in time.
using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
var step = TimeSpan.FromSeconds(10);
string[] ids = ["a", "b", "c"];
var network = new InMemoryNetwork();
var nodes = ids.Select(id => new GaggleNodeBuilder(new GaggleOptions { NodeId = id, Members = ids })
    .UseInMemory(network)
    .Build()).ToList();

// Referenced only to check that the Redis and Hosting packages load alongside Gaggle.
Console.WriteLine($"packages: {typeof(GaggleNode).Assembly.GetName().Version}, " +
    $"{typeof(RedisPubSubChannel).Assembly.GetName().Name}, {typeof(GaggleHealthCheck).Assembly.GetName().Name}");

try
{
    var committed = nodes.ToDictionary(n => n.Id, _ => new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously));
    var payload = "hello from a package consumer"u8.ToArray();
    foreach (var node in nodes)
    {
        var mine = committed[node.Id];
        node.Committed += (_, entry) => { if (entry.Data.Span.SequenceEqual(payload)) mine.TrySetResult(entry.Index); };
    }
    await Task.WhenAll(nodes.Select(n => n.StartAsync(deadline.Token)));

    var leader = await nodes[0].WaitForLeaderAsync(step, deadline.Token);
    Console.WriteLine($"leader: {leader}");

    var follower = nodes.First(n => n.Id != leader);
    long index = await follower.AppendAsync(payload, step, deadline.Token);
    var indexes = await Task.WhenAll(committed.Values.Select(t => t.Task.WaitAsync(step, deadline.Token)));
    if (indexes.Any(i => i != index)) throw new InvalidOperationException($"entry committed at different indexes: {string.Join(", ", indexes)}");
    Console.WriteLine($"committed: index {index} on {indexes.Length} nodes");

    await using (var handle = await follower.Locks.AcquireAsync("package-consumer", step, deadline.Token))
    {
        Console.WriteLine($"lock: held by {follower.Id}, fencing token {handle.FencingToken}");
    }

    IDistributedLockProvider provider = new GaggleDistributedLockProvider(follower.Locks);
    await using (var handle = await provider.AcquireLockAsync("package-consumer", step, deadline.Token))
    {
        Console.WriteLine($"IDistributedLockProvider: held by {follower.Id}, fencing token {((GaggleDistributedLockHandle)handle).FencingToken}");
    }

    Console.WriteLine("package consumer: OK");
    return 0;
}
catch (Exception e)
{
    Console.Error.WriteLine($"package consumer: FAILED: {e}");
    return 1;
}
finally
{
    foreach (var node in nodes) await node.DisposeAsync();
}
