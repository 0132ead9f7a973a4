using System.Collections.Concurrent;
using System.Diagnostics;
using Gaggle.Channels;
using Gaggle.Tests.Support;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>
/// Gaggle's spans (<see cref="GaggleDiagnostics.ActivitySourceName"/>), seen through an <see cref="ActivityListener"/>:
/// a follower's append, lock acquire and RPC call, and the leader's spans that join the caller's trace.
/// Each test looks only at the spans of its own caller's trace (the listener hears the whole process).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class TracingTests
{
    private static readonly ActivitySource Caller = new("Gaggle.Tests.Caller");

    private readonly ConcurrentQueue<Activity> _stopped = new();
    private ActivityListener? _listener;

    [SetUp]
    public void Listen()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is GaggleDiagnostics.ActivitySourceName or "Gaggle.Tests.Caller",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    [TearDown]
    public void StopListening() => _listener?.Dispose();

    [Test]
    public async Task AForwardedAppendHasASpanOnTheLeaderInTheCallersTrace()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        ActivityTraceId trace;
        long index;
        using (var request = Caller.StartActivity("handle request"))
        {
            trace = request!.TraceId;
            index = await follower.AppendAsync("traced"u8.ToArray(), TimeSpan.FromSeconds(10));
        }

        var append = await SpanAsync(trace, "gaggle.append");
        Assert.That(append.GetTagItem("gaggle.node"), Is.EqualTo(follower.Id));
        Assert.That(append.GetTagItem("gaggle.append.index"), Is.EqualTo(index));
        var onLeader = await SpanAsync(trace, "gaggle.append.leader");
        Assert.That(onLeader.ParentSpanId, Is.EqualTo(append.SpanId), "the leader's span is a child of the caller's append span");
        Assert.That(onLeader.GetTagItem("gaggle.node"), Is.EqualTo(leader.Id));
        Assert.That(onLeader.GetTagItem("gaggle.append.origin"), Is.EqualTo(follower.Id));
        Assert.That(onLeader.GetTagItem("gaggle.append.index"), Is.EqualTo(index));
        Assert.That(onLeader.GetTagItem("gaggle.append.outcome"), Is.EqualTo("committed"));
    }

    [Test]
    public async Task ALockAcquireOnAFollowerIsTracedUntilGrantedAndItsReleaseToo()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        ActivityTraceId trace;
        long token;
        using (var request = Caller.StartActivity("handle request"))
        {
            trace = request!.TraceId;
            await using var hold = await follower.Locks.AcquireAsync("traced-lock", TimeSpan.FromSeconds(10));
            token = hold.FencingToken;
        }

        var acquire = await SpanAsync(trace, "gaggle.lock.acquire");
        Assert.That(acquire.GetTagItem("gaggle.lock.name"), Is.EqualTo("traced-lock"));
        Assert.That(acquire.GetTagItem("gaggle.lock.kind"), Is.EqualTo("mutex"));
        Assert.That(acquire.GetTagItem("gaggle.lock.outcome"), Is.EqualTo("granted"));
        Assert.That(acquire.GetTagItem("gaggle.lock.fencing_token"), Is.EqualTo(token));
        Assert.That(acquire.GetTagItem("gaggle.lock.wait_ms"), Is.TypeOf<double>());
        var onLeader = await SpanAsync(trace, "gaggle.append.leader", s => s.ParentSpanId == acquire.SpanId);
        Assert.That(onLeader.GetTagItem("gaggle.node"), Is.EqualTo(leader.Id));
        var release = await SpanAsync(trace, "gaggle.lock.release");
        Assert.That(release.GetTagItem("gaggle.lock.fencing_token"), Is.EqualTo(token));
    }

    [Test]
    public async Task AnRpcFromAFollowerIsHandledInTheCallersTrace()
    {
        await using var cluster = new NodeCluster(3, options => options.RpcHandlers["echo"] = (args, _) => ValueTask.FromResult(args.ToArray()));
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var follower = cluster.AnyFollower(leader);
        ActivityTraceId trace;
        using (var request = Caller.StartActivity("handle request"))
        {
            trace = request!.TraceId;
            Assert.That(await follower.DispatchOnLeaderAsync("echo", "hi"u8.ToArray(), TimeSpan.FromSeconds(10)), Is.EqualTo("hi"u8.ToArray()));
        }

        var call = await SpanAsync(trace, "gaggle.rpc");
        Assert.That(call.Kind, Is.EqualTo(ActivityKind.Client));
        var handled = await SpanAsync(trace, "gaggle.rpc.handle");
        Assert.That(handled.ParentSpanId, Is.EqualTo(call.SpanId));
        Assert.That(handled.GetTagItem("gaggle.node"), Is.EqualTo(leader.Id));
        Assert.That(handled.GetTagItem("rpc.method"), Is.EqualTo("echo"));
    }

    [Test]
    public async Task ALeadershipChangeIsASpanWithAnEvent()
    {
        await using var cluster = new NodeCluster(3);
        await cluster.StartAllAsync();
        var leader = await cluster.WaitForLeaderAsync();
        var change = await SpanAsync(null, "gaggle.leadership", s => Equals(s.GetTagItem("gaggle.node"), leader.Id) && Equals(s.GetTagItem("gaggle.leader"), leader.Id));
        Assert.That(change.Events.Select(e => e.Name), Is.EqualTo(new[] { "leader.changed" }));
        Assert.That(change.GetTagItem("gaggle.role"), Is.EqualTo("Leader"));
    }

    [Test]
    public async Task ANodeStartedInsideAnActivityKeepsItsLoopOutOfThatTrace()
    {
        await using var cluster = new NodeCluster(3);
        ActivityTraceId startup;
        using (var starting = Caller.StartActivity("application start"))
        {
            startup = starting!.TraceId;
            await cluster.StartAllAsync();
        }

        var leader = await cluster.WaitForLeaderAsync();
        var change = await SpanAsync(null, "gaggle.leadership", s => Equals(s.GetTagItem("gaggle.node"), leader.Id) && Equals(s.GetTagItem("gaggle.leader"), leader.Id));
        Assert.That(change.TraceId, Is.Not.EqualTo(startup));
        Assert.That(change.ParentSpanId, Is.EqualTo(default(ActivitySpanId)));

        // The loop raises the node's events: their handlers run in no trace of the loop's.
        var seen = new TaskCompletionSource<Activity?>(TaskCreationOptions.RunContinuationsAsynchronously);
        leader.Committed += (_, _) => seen.TrySetResult(Activity.Current);
        Activity.Current = null;
        await leader.AppendAsync("after start"u8.ToArray(), TimeSpan.FromSeconds(10));
        var current = await seen.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(current?.TraceId, Is.Not.EqualTo(startup), "an event handler ran inside the application's start-up activity");
        Assert.That(_stopped.Where(s => s.TraceId == startup && s.Source.Name == GaggleDiagnostics.ActivitySourceName), Is.Empty);
    }

    [Test]
    public void TraceContextsRoundTripOnTheWireAndAnAllZeroIdIsRefused()
    {
        var context = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        var message = new TraceContexts([new TracedRequest(7, context)], [new TracedRequest(9, context)]);
        var decoded = (TraceContexts)WireCodec.Decode(WireCodec.Encode(message), "a", "b");
        Assert.That(decoded.Appends.Single().Id, Is.EqualTo(7));
        Assert.That(decoded.Calls.Single().Id, Is.EqualTo(9));
        Assert.That(decoded.Appends[0].Context.TraceId, Is.EqualTo(context.TraceId));
        Assert.That(decoded.Appends[0].Context.SpanId, Is.EqualTo(context.SpanId));
        Assert.That(decoded.Appends[0].Context.TraceFlags, Is.EqualTo(ActivityTraceFlags.Recorded));

        var zero = new ActivityContext(ActivityTraceId.CreateFromBytes(new byte[16]), ActivitySpanId.CreateRandom(), ActivityTraceFlags.None);
        var error = Assert.Throws<FormatException>(() => WireCodec.Decode(WireCodec.Encode(new TraceContexts([new TracedRequest(1, zero)], [])), "a", "b"));
        Assert.That(error!.Message, Does.Contain("all-zero trace id"));

        // A count the bytes cannot hold is refused before anything is allocated for it.
        byte[] encoded = WireCodec.Encode(new TraceContexts([new TracedRequest(1, context)], []));
        int countAt = Array.IndexOf(encoded, (byte)1, 3);
        encoded[countAt] = 100;
        var huge = Assert.Throws<FormatException>(() => WireCodec.Decode(encoded, "a", "b"));
        Assert.That(huge!.Message, Does.Contain("names 100 trace contexts"));
    }

    /// <summary>The first stopped span named <paramref name="name"/> of <paramref name="trace"/> (any trace when null) that matches, waited for with a deadline.</summary>
    private async Task<Activity> SpanAsync(ActivityTraceId? trace, string name, Func<Activity, bool>? match = null)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var found = _stopped.FirstOrDefault(s => s.OperationName == name && (trace is null || s.TraceId == trace) && (match?.Invoke(s) ?? true));
            if (found is not null)
            {
                return found;
            }

            if (deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                Assert.Fail($"no span '{name}' in trace {trace}; spans seen: {string.Join(", ", _stopped.Where(s => trace is null || s.TraceId == trace).Select(s => s.OperationName))}");
            }

            await Task.Delay(5);
        }
    }
}
