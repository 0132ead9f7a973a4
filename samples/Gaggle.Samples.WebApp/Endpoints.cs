using System.Text.Json;
using Gaggle.Hosting;
using Microsoft.Extensions.Options;

namespace Gaggle.Samples.WebApp;

/// <summary>The HTTP API (see README.md).</summary>
public static class Endpoints
{
    /// <summary>How long a lock request may wait at most.</summary>
    private static readonly TimeSpan LongestLockWait = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan InspectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long an append may wait for its commit before the request gives up (503).</summary>
    private static readonly TimeSpan AppendTimeout = TimeSpan.FromSeconds(10);

    /// <summary><c>GET /status</c> and <c>GET /jobs</c>: what this instance knows.</summary>
    public static void MapStatusEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/status", (GaggleNode node) =>
        {
            var membership = node.Membership;
            return Results.Ok(new
            {
                memberId = node.Id,
                isLeader = node.IsLeader,
                leaderId = node.LeaderId,
                term = node.Term,
                commitIndex = node.CommitIndex,
                generation = node.Generation,
                voters = membership.Voters,
                learners = membership.Learners,
            });
        });

        app.MapGet("/jobs", (SingletonJobRegistry jobs) => Results.Ok(
            jobs.Running.Values
                .OrderBy(run => run.JobName, StringComparer.Ordinal)
                .Select(run => new { name = run.JobName, fencingToken = run.FencingToken, since = run.StartedAt })));
    }

    /// <summary><c>POST /locks/{name}</c> and <c>DELETE /locks/{name}</c>: locks held by this instance for its clients.</summary>
    public static void MapLockEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/locks/{name}", async (string name, string? timeoutMs, HeldLocks held, GaggleNode node, CancellationToken cancellationToken) =>
        {
            if (Validation.LockName(name) is { } badName)
            {
                return badName;
            }

            if (!Validation.TryMilliseconds(timeoutMs, "timeoutMs", LongestLockWait, out var timeout, out var badTimeout))
            {
                return badTimeout;
            }

            try
            {
                var handle = await held.TryAcquireAsync(name, timeout, cancellationToken);
                if (handle is not null && cancellationToken.IsCancellationRequested)
                {
                    // Granted as the client went away: nobody would ever learn the token to release it.
                    await held.ReleaseAsync(name, handle.FencingToken);
                    cancellationToken.ThrowIfCancellationRequested();
                }

                return handle is null
                    ? NotAcquired(name, timeout, node)
                    : Results.Ok(new { name, fencingToken = handle.FencingToken });
            }
            catch (InvalidOperationException e)
            {
                return Results.Problem(e.Message, statusCode: StatusCodes.Status409Conflict, title: "Lock not acquired");
            }
        });

        app.MapGet("/locks/{name}", async (string name, HeldLocks held, GaggleNode node, CancellationToken cancellationToken) =>
        {
            if (Validation.LockName(name) is { } badName)
            {
                return badName;
            }

            // A linearizable read (a log entry): who holds the lock with which token, and how many wait.
            try
            {
                var info = await node.Locks.InspectAsync(name, InspectTimeout, cancellationToken);
                return Results.Ok(new
                {
                    name,
                    holders = info.Holders.Select(h => new { nodeId = h.NodeId, fencingToken = h.FencingToken }),
                    queueLength = info.QueueLength,
                    asOfIndex = info.AsOfIndex,
                    heldHere = held.TokenOf(name),
                });
            }
            catch (TimeoutException e)
            {
                return Results.Problem(e.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Lock not read");
            }
        });

        app.MapDelete("/locks/{name}", async (string name, string? token, HeldLocks held) =>
        {
            if (Validation.LockName(name) is { } badName)
            {
                return badName;
            }

            if (!long.TryParse(token, out long fencingToken) || fencingToken < 1)
            {
                return Validation.Problem("token", $"token must be the fencing token returned when the lock was acquired (a positive integer); got '{token}'.");
            }

            return await held.ReleaseAsync(name, fencingToken)
                ? Results.Ok(new { name, fencingToken, released = true })
                : Results.Problem($"This instance holds no lock '{name}' with fencing token {fencingToken}.", statusCode: StatusCodes.Status404NotFound, title: "No such hold");
        });
    }

    /// <summary>
    /// The 409 for a lock that was not granted. Without a leader even a single try waits (up to the
    /// lock lease) for an answer that cannot be committed, so the detail says why.
    /// </summary>
    private static IResult NotAcquired(string name, TimeSpan timeout, GaggleNode node)
    {
        string detail = timeout == TimeSpan.Zero
            ? $"The lock '{name}' was not granted on a single try."
            : $"The lock '{name}' was not acquired within {timeout.TotalMilliseconds:0} ms.";
        if (node.LeaderId is null)
        {
            detail += $" Node '{node.Id}' knows no leader: it is cut off from the majority, or an election is under way.";
        }

        return Results.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Lock not acquired");
    }

    /// <summary><c>POST /log</c> and <c>GET /log</c>: the replicated event log.</summary>
    public static void MapLogEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/log", async (HttpRequest request, GaggleNode node, IOptions<GaggleOptions> options, CancellationToken cancellationToken) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body, cancellationToken);
            var data = body.ToArray();
            if (data.Length > options.Value.MaxMessageBytes)
            {
                return Validation.Problem("body", $"The body has {data.Length} bytes; at most {options.Value.MaxMessageBytes} (Gaggle:MaxMessageBytes) fit in one entry.");
            }

            if (!Validation.IsJson(data, out string? error))
            {
                return Validation.Problem("body", $"The body must be one JSON value: {error}");
            }

            try
            {
                long index = await node.AppendAsync(data, AppendTimeout, cancellationToken);
                return Results.Ok(new { index });
            }
            catch (TimeoutException e)
            {
                return Results.Problem(e.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not committed in time");
            }
            catch (InvalidOperationException e)
            {
                // This instance was removed from the cluster while the entry waited (paused past the
                // member timeout) and joins again: the entry may or may not be in the log. Retry.
                return Results.Problem(e.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Outcome unknown; retry");
            }
        });

        app.MapGet("/log", (string? from, EventLog log) =>
        {
            long first = 1;
            if (from is not null && (!long.TryParse(from, out first) || first < 0))
            {
                return Validation.Problem("from", $"from must be a log index (a non-negative integer); got '{from}'.");
            }

            return Results.Ok(log.From(first).Select(e => new { index = e.Index, term = e.Term, data = e.Data }));
        });
    }

    /// <summary><c>POST /counters/{name}/increment</c>: a write guarded by a lock and its fencing token.</summary>
    public static void MapCounterEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/counters/{name}/increment", async (string name, GaggleNode node, Gaggle.Locks.GaggleLocks locks, FencedCounters counters, IOptions<WebAppOptions> options, CancellationToken cancellationToken) =>
        {
            if (Validation.LockName(name) is { } badName)
            {
                return badName;
            }

            var timeout = options.Value.CounterLockTimeout;
            Gaggle.Locks.GaggleLockHandle? acquired;
            try
            {
                acquired = await locks.TryAcquireAsync("counter:" + name, timeout, cancellationToken);
            }
            catch (InvalidOperationException e)
            {
                // This instance was removed from the cluster while the request waited, and joins again.
                return Results.Problem(e.Message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Lock outcome unknown; retry");
            }

            await using var hold = acquired;
            if (hold is null)
            {
                return NotAcquired("counter:" + name, timeout, node);
            }

            // Checking the hold first is not enough (it can be lost right after the check); the fence
            // is what makes the write safe. The check only spares a write that is known to be late.
            if (hold.HandleLostToken.IsCancellationRequested)
            {
                return Results.Problem($"The lock 'counter:{name}' was lost before the write.", statusCode: StatusCodes.Status409Conflict, title: "Lock lost");
            }

            var write = await counters.IncrementAsync(name, hold.FencingToken);
            return write.Accepted
                ? Results.Ok(new { name, value = write.Value, fencingToken = hold.FencingToken })
                : Results.Problem($"The counter refused fencing token {hold.FencingToken}: a newer holder wrote with token {write.Fence}.", statusCode: StatusCodes.Status409Conflict, title: "Stale fencing token");
        });
    }
}
