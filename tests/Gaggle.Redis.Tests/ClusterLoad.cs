using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>
/// Load on a web app cluster while its instances come and go (appends, lock holds, fenced counter
/// increments, and a watch on the singleton job), with what each instance answered and when, and the
/// checks of what no fault may cause: an acknowledged append missing, changed or applied twice; two
/// holders of a lock at once; a grant asked for after a release with a lower fencing token than the
/// released hold; a fenced write refused as stale; two runs of the singleton job at once; an error
/// logged by an instance.
/// </summary>
/// <remarks>
/// Times are the test's own monotonic clock. An answer reflects the instance's state at some moment
/// between the request being sent and the answer arriving, which is all the checks rely on.
/// </remarks>
internal sealed class ClusterLoad
{
    /// <summary>How often the cleanup job runs, for instances started with <see cref="Arguments"/>: often enough that two runs at once would write over each other.</summary>
    public static readonly string[] Arguments = ["--WebApp:CleanupInterval=00:00:00.200"];

    private const string LockName = "load-lock";
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(20);

    private readonly string _run = Guid.NewGuid().ToString("N")[..6];
    private readonly Lock _gate = new();
    private readonly List<WebAppProcess> _targets;
    private readonly Dictionary<WebAppProcess, long> _exemptBefore = [];
    private readonly ConcurrentDictionary<long, string> _acknowledged = new();
    private readonly ConcurrentQueue<string> _failures = new();
    private readonly ConcurrentQueue<Grant> _grants = new();
    private readonly ConcurrentQueue<(long Value, long Token, string App)> _writes = new();
    private readonly ConcurrentQueue<(WebAppProcess App, long SentAt, string Answer)> _staleWrites = new();
    private readonly ConcurrentQueue<(WebAppProcess App, long Token, long SentAt, long AnsweredAt)> _jobRuns = new();
    private readonly ConcurrentDictionary<string, int> _answers = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _workers = [];
    private long _appends;
    private long _picks;

    private ClusterLoad(IEnumerable<WebAppProcess> targets) => _targets = [.. targets];

    /// <summary>Starts two workers of each kind, spread over <paramref name="targets"/>.</summary>
    public static ClusterLoad Start(IEnumerable<WebAppProcess> targets)
    {
        var load = new ClusterLoad(targets);
        for (int i = 0; i < 2; i++)
        {
            load._workers.Add(Task.Run(() => load.LoopAsync(load.AppendAsync, TimeSpan.FromMilliseconds(20))));
            load._workers.Add(Task.Run(() => load.LoopAsync(load.LockCycleAsync, TimeSpan.FromMilliseconds(20))));
            load._workers.Add(Task.Run(() => load.LoopAsync(load.IncrementAsync, TimeSpan.FromMilliseconds(50))));
        }

        load._workers.Add(Task.Run(load.WatchJobAsync));
        return load;
    }

    /// <summary>How much of each kind of work succeeded so far.</summary>
    public (int Appends, int Grants, int Writes) Done => (_acknowledged.Count, _grants.Count, _writes.Count);

    /// <summary>What the load did so far and every answer it got, by kind and status (for a failure's message).</summary>
    public string Summary => $"{_acknowledged.Count} appends acknowledged, {_grants.Count} lock grants, {_writes.Count} fenced writes, {_jobRuns.Select(r => r.Token).Distinct().Count()} job runs seen; "
        + $"answers (kind, status, count): {string.Join(", ", _answers.OrderBy(a => a.Key).Select(a => $"{a.Key} x{a.Value}"))}";

    /// <summary>Load goes to <paramref name="app"/> too from now on.</summary>
    public void Add(WebAppProcess app)
    {
        lock (_gate)
        {
            _targets.Add(app);
        }
    }

    /// <summary>No new load goes to <paramref name="app"/> (what it is still answering finishes or fails).</summary>
    public void Remove(WebAppProcess app)
    {
        lock (_gate)
        {
            _targets.Remove(app);
        }
    }

    /// <summary>
    /// What <paramref name="app"/> was asked before now is not checked for exclusion: it was frozen in
    /// its midst, and a frozen holder's lease rightly expires under it (the fence is what stops its late
    /// writes). What it is asked from now on is checked like the rest.
    /// </summary>
    public void ExemptUntilNow(WebAppProcess app)
    {
        lock (_gate)
        {
            _exemptBefore[app] = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>
    /// The load's lock as each target reads it through the log (holders, queue, the hold it keeps for
    /// a client), and the grants whose release was not answered 200: for a failure's message.
    /// </summary>
    public async Task<string> DescribeLockAsync()
    {
        List<WebAppProcess> targets;
        lock (_gate)
        {
            targets = [.. _targets];
        }

        var reads = await Task.WhenAll(targets.Select(async app =>
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                return $"{app.Id}: {await app.Client.GetStringAsync($"/locks/{LockName}", timeout.Token)}";
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
            {
                return $"{app.Id}: {e.GetType().Name}: {e.Message}";
            }
        }));
        var unreleased = _grants.Where(g => !g.Released).Select(g => $"{g.App.Id} token {g.Token} (release {(g.ReleaseSentAt == long.MaxValue ? "not sent" : "sent, " + (g.ReleasedAt == long.MaxValue ? "unanswered" : "refused"))})");
        return $"'{LockName}' read by each instance: {string.Join("; ", reads)}. Grants not released: [{string.Join(", ", unreleased)}]";
    }

    /// <summary>The fencing tokens of the load's lock holders, read through the log by <paramref name="reader"/>.</summary>
    public static async Task<long[]> LockHoldersAsync(WebAppProcess reader)
    {
        var read = await reader.Client.GetFromJsonAsync<JsonElement>($"/locks/{LockName}");
        return [.. read.GetProperty("holders").EnumerateArray().Select(h => h.GetProperty("fencingToken").GetInt64())];
    }

    /// <summary>Grants the load got whose release was not answered 200.</summary>
    public int UnreleasedGrants => _grants.Count(g => !g.Released);

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
    }

    /// <summary>
    /// Checks everything recorded (call after <see cref="StopAsync"/>) against the event log of
    /// <paramref name="reader"/>, a member of the cluster, once it has applied every acknowledged index.
    /// </summary>
    public async Task VerifyAsync(WebAppProcess reader, IEnumerable<WebAppProcess> everyInstance, TimeSpan deadline)
    {
        TestContext.Out.WriteLine($"Load: {Summary}.");
        Assert.That(_acknowledged, Is.Not.Empty, "the load appended nothing");
        Assert.That(_grants, Is.Not.Empty, "the load took no lock");
        Assert.That(_writes, Is.Not.Empty, "the load incremented no counter");
        var log = await LogWithAsync(reader, _acknowledged.Keys.Max(), deadline);
        var failures = _failures.ToList();
        failures.AddRange(LostAppends(log));
        failures.AddRange(LockOverlaps());
        failures.AddRange(CounterDisorder());
        failures.AddRange(JobOverlaps(everyInstance));
        failures.AddRange(LoggedErrors(everyInstance));
        if (failures.Count > 0)
        {
            Assert.Fail($"The load saw what no fault may cause ({failures.Count} findings):\n  {string.Join("\n  ", failures.Take(40))}");
        }
    }

    private static long Now => Stopwatch.GetTimestamp();

    private static async Task<Dictionary<long, JsonElement>> LogWithAsync(WebAppProcess reader, long lastIndex, TimeSpan deadline)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var log = (await reader.Client.GetFromJsonAsync<JsonElement[]>("/log"))!.ToDictionary(e => e.GetProperty("index").GetInt64(), e => e.GetProperty("data"));
            if (log.Count > 0 && log.Keys.Max() >= lastIndex)
            {
                return log;
            }

            if (watch.Elapsed > deadline)
            {
                Assert.Fail($"{reader.Id} had not applied index {lastIndex} after {deadline.TotalSeconds:0} s (last applied: {(log.Count == 0 ? 0 : log.Keys.Max())})");
            }

            await Task.Delay(200);
        }
    }

    private IEnumerable<string> LostAppends(Dictionary<long, JsonElement> log)
    {
        foreach (var (index, body) in _acknowledged.OrderBy(a => a.Key))
        {
            if (!log.TryGetValue(index, out var data))
            {
                yield return $"the append acknowledged at index {index} ({body}) is not in the log";
            }
            else if (JsonSerializer.Serialize(data) != JsonSerializer.Serialize(JsonDocument.Parse(body).RootElement))
            {
                yield return $"the append acknowledged at index {index} was {body}; the log has {data.GetRawText()} there";
            }
        }

        foreach (var twice in log.Where(e => e.Value.ValueKind == JsonValueKind.Object && e.Value.TryGetProperty("run", out var run) && run.GetString() == _run)
            .GroupBy(e => e.Value.GetProperty("n").GetInt64()).Where(g => g.Count() > 1))
        {
            yield return $"append n={twice.Key} was applied {twice.Count()} times, at [{string.Join(", ", twice.Select(e => e.Key))}]";
        }
    }

    /// <summary>
    /// A hold whose release succeeded was held until its release was sent, so every grant with a higher
    /// token came after that; and a grant asked for after a release was answered has a higher token.
    /// </summary>
    private IEnumerable<string> LockOverlaps()
    {
        var grants = _grants.ToList();
        foreach (var twice in grants.GroupBy(g => g.Token).Where(g => g.Count() > 1))
        {
            yield return $"fencing token {twice.Key} of '{LockName}' was granted {twice.Count()} times";
        }

        foreach (var released in grants.Where(g => g.Released && !IsExempt(g.App, g.SentAt)))
        {
            foreach (var other in grants.Where(g => g != released))
            {
                if (other.Token > released.Token && other.GrantedAt < released.ReleaseSentAt)
                {
                    yield return $"'{LockName}' held at once: {other.App.Id} was granted token {other.Token} {Ms(other.GrantedAt, released.ReleaseSentAt)} ms before {released.App.Id} released token {released.Token}";
                }

                if (other.SentAt > released.ReleasedAt && other.Token <= released.Token)
                {
                    yield return $"fencing token went back: {other.App.Id} asked for '{LockName}' after token {released.Token} was released and got {other.Token}";
                }
            }
        }
    }

    /// <summary>Every accepted write is a hold of its own: a higher value comes with a higher token. No live holder's write is refused as stale.</summary>
    private IEnumerable<string> CounterDisorder()
    {
        var writes = _writes.OrderBy(w => w.Value).ToList();
        for (int i = 1; i < writes.Count; i++)
        {
            if (writes[i].Value == writes[i - 1].Value || writes[i].Token <= writes[i - 1].Token)
            {
                yield return $"fenced counter writes out of order: value {writes[i - 1].Value} with token {writes[i - 1].Token} ({writes[i - 1].App}), then value {writes[i].Value} with token {writes[i].Token} ({writes[i].App})";
            }
        }

        foreach (var (app, sentAt, answer) in _staleWrites.Where(w => !IsExempt(w.App, w.SentAt)))
        {
            yield return $"{app.Id} wrote to the counter under a lock a newer holder had written under already: {answer}";
        }
    }

    /// <summary>A job run seen after another instance was seen running a newer one had been running at once with it.</summary>
    private IEnumerable<string> JobOverlaps(IEnumerable<WebAppProcess> everyInstance)
    {
        var runs = _jobRuns.ToList();
        foreach (var run in runs.Where(r => !IsExempt(r.App, r.SentAt)))
        {
            if (runs.Where(r => r.AnsweredAt < run.SentAt && r.Token > run.Token).Select(r => (long?)r.Token).FirstOrDefault() is { } newer)
            {
                yield return $"{run.App.Id} still ran the job with token {run.Token} after a run with token {newer} was seen";
            }
        }

        foreach (var app in everyInstance.Where(a => !_exemptBefore.ContainsKey(a) && a.Output.Contains("a newer run has written", StringComparison.Ordinal)))
        {
            yield return $"{app.Id}'s cleanup job wrote after a newer run had (two runs at once)";
        }
    }

    /// <summary>Faults are expected; errors are not: no instance logs one (console lines "fail:" and "crit:", with the line after them).</summary>
    private static IEnumerable<string> LoggedErrors(IEnumerable<WebAppProcess> everyInstance)
    {
        foreach (var app in everyInstance)
        {
            var lines = app.Output.Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                if (lines[i].StartsWith("fail:", StringComparison.Ordinal) || lines[i].StartsWith("crit:", StringComparison.Ordinal))
                {
                    yield return $"{app.Id} logged {lines[i].Trim()} {(i + 1 < lines.Length ? lines[i + 1].Trim() : "")}";
                }
            }
        }
    }

    private bool IsExempt(WebAppProcess app, long sentAt)
    {
        lock (_gate)
        {
            return _exemptBefore.TryGetValue(app, out long before) && sentAt < before;
        }
    }

    private static long Ms(long from, long to) => (long)Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;

    private WebAppProcess? Pick()
    {
        lock (_gate)
        {
            return _targets.Count == 0 ? null : _targets[(int)(_picks++ % _targets.Count)];
        }
    }

    private async Task LoopAsync(Func<WebAppProcess, CancellationToken, Task> operation, TimeSpan between)
    {
        var stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            if (Pick() is { } app)
            {
                using var request = CancellationTokenSource.CreateLinkedTokenSource(stop);
                request.CancelAfter(RequestTimeout);
                try
                {
                    await operation(app, request.Token);
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException or TimeoutException or InvalidOperationException)
                {
                    // The instance is stopping, stopped or frozen, or the load is over: the next one is asked.
                }
            }

            try
            {
                await Task.Delay(between, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Count(string what, HttpStatusCode status) => _answers.AddOrUpdate($"{what} {(int)status}", 1, (_, n) => n + 1);

    private async Task AppendAsync(WebAppProcess app, CancellationToken cancellationToken)
    {
        string body = $$"""{"run":"{{_run}}","n":{{Interlocked.Increment(ref _appends)}},"via":"{{app.Id}}"}""";
        using var response = await app.Client.PostAsync("/log", new StringContent(body, Encoding.UTF8, "application/json"), cancellationToken);
        Count("append", response.StatusCode);
        if (response.IsSuccessStatusCode)
        {
            long index = (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("index").GetInt64();
            if (!_acknowledged.TryAdd(index, body))
            {
                _failures.Enqueue($"index {index} was acknowledged for {body} and for {_acknowledged[index]}");
            }
        }
    }

    private async Task LockCycleAsync(WebAppProcess app, CancellationToken cancellationToken)
    {
        long sentAt = Now;
        // Not cancelled when the load stops: an acquire abandoned half-way could be granted after its
        // client gave up, and the instance would hold (and renew) it for a client that never learns
        // its token. It answers within its 2 s wait; the hold is then released below.
        using var acquire = new CancellationTokenSource(RequestTimeout);
        using var response = await app.Client.PostAsync($"/locks/{LockName}?timeoutMs=2000", null, acquire.Token);
        Count("lock", response.StatusCode);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return;
        }

        // Read with the acquire's own limit, not the load's: a grant answered as the load stops is released too.
        var grant = new Grant(app, (await response.Content.ReadFromJsonAsync<JsonElement>(acquire.Token)).GetProperty("fencingToken").GetInt64(), sentAt, Now);
        _grants.Enqueue(grant);

        // Released even when the load stops meanwhile, so that no hold outlives it.
        using var release = new CancellationTokenSource(RequestTimeout);
        await Task.Delay(20, release.Token);
        grant.ReleaseSentAt = Now;
        using var released = await app.Client.DeleteAsync($"/locks/{LockName}?token={grant.Token}", release.Token);
        grant.ReleasedAt = Now;
        grant.Released = released.StatusCode == HttpStatusCode.OK;
        Count("release", released.StatusCode);
    }

    private async Task IncrementAsync(WebAppProcess app, CancellationToken cancellationToken)
    {
        long sentAt = Now;
        using var response = await app.Client.PostAsync($"/counters/load-{_run}/increment", null, cancellationToken);
        Count("increment", response.StatusCode);
        string answer = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            var write = JsonDocument.Parse(answer).RootElement;
            _writes.Enqueue((write.GetProperty("value").GetInt64(), write.GetProperty("fencingToken").GetInt64(), app.Id));
        }
        else if (answer.Contains("Stale fencing token", StringComparison.Ordinal))
        {
            _staleWrites.Enqueue((app, sentAt, answer));
        }
    }

    private async Task WatchJobAsync()
    {
        var stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            List<WebAppProcess> targets;
            lock (_gate)
            {
                targets = [.. _targets];
            }

            await Task.WhenAll(targets.Select(async app =>
            {
                using var request = CancellationTokenSource.CreateLinkedTokenSource(stop);
                request.CancelAfter(RequestTimeout);
                try
                {
                    long sentAt = Now;
                    var runs = await app.Client.GetFromJsonAsync<JsonElement[]>("/jobs", request.Token);
                    long answeredAt = Now;
                    foreach (var run in runs!)
                    {
                        _jobRuns.Enqueue((app, run.GetProperty("fencingToken").GetInt64(), sentAt, answeredAt));
                    }
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException or TimeoutException or InvalidOperationException)
                {
                    // As in LoopAsync.
                }
            }));

            try
            {
                await Task.Delay(250, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private sealed class Grant(WebAppProcess app, long token, long sentAt, long grantedAt)
    {
        public WebAppProcess App => app;

        public long Token => token;

        public long SentAt => sentAt;

        public long GrantedAt => grantedAt;

        public long ReleaseSentAt { get; set; } = long.MaxValue;

        public long ReleasedAt { get; set; } = long.MaxValue;

        public bool Released { get; set; }
    }
}
