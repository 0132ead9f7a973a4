using System.Globalization;

namespace Gaggle.Benchmarks;

/// <summary>Command-line settings of the load driver.</summary>
internal sealed record LoadSettings
{
    public string Channel { get; init; } = "memory";

    public string? Redis { get; init; }

    public int Nodes { get; init; } = 3;

    public double DurationSeconds { get; init; } = 10;

    public int PayloadBytes { get; init; } = 64;

    public string? Out { get; init; }

    /// <summary>Appends in flight per node in the throughput phase.</summary>
    public int AppendsInFlightPerNode { get; init; } = 64;

    /// <summary>Concurrent lock clients (also the SET NX baseline's concurrency).</summary>
    public int LockClients { get; init; } = 64;

    /// <summary>Samples allocations by type during the throughput phase and prints the top types.</summary>
    public bool ProfileAllocations { get; init; }

    /// <summary>Each node in its own process (this program again, in node-host mode); over Redis only.</summary>
    public bool Processes { get; init; }

    /// <summary>
    /// <c>static</c>: the nodes get a member list (<see cref="GaggleOptions.Members"/>). <c>elastic</c>:
    /// none; they form the cluster by themselves, and the measured phases start once it has its voters,
    /// every node is a member and the first lock was granted (a new generation holds locks off at first).
    /// </summary>
    public string Mode { get; init; } = "static";

    /// <summary>
    /// Instead of the load phases, an idle run of <see cref="Nodes"/> nodes: once the cluster has settled,
    /// what it appends and sends per second while nobody uses it, over <see cref="DurationSeconds"/>.
    /// </summary>
    public bool Idle { get; init; }

    /// <summary>
    /// Instead of the load phases, the lock comparison: acquire + release pairs of the plain Redis locks
    /// and of Gaggle, against the same Redis, one short cell per implementation and client count.
    /// </summary>
    public bool Locks { get; init; }

    /// <summary>How long each cell of the lock comparison runs, in seconds.</summary>
    public double CellSeconds { get; init; } = 2;

    public bool IsRedis => Channel == "redis";

    public bool IsElastic => Mode == "elastic";

    public const string Usage =
        "usage: Gaggle.Benchmarks [--channel memory|redis] [--redis HOST:PORT] [--mode static|elastic] [--nodes N (3-26)] [--duration S] [--payload BYTES]\n" +
        "                         [--inflight PER_NODE] [--lock-clients N] [--out FILE.json] [--profile-allocations]\n" +
        "                         [--processes (each node in its own process; needs --channel redis and --mode static)]\n" +
        "                         [--idle N (N nodes, 1-64, left idle for --duration S: log entries and messages per second)]\n" +
        "                         [--locks [--cell S (default 2)] (lock comparison with the Redis lock libraries; needs --channel redis)]\n" +
        "       Gaggle.Benchmarks --micro [BenchmarkDotNet arguments, default: --filter * --job short]";

    /// <summary>Parses <paramref name="args"/>; null (after printing why) when they are invalid.</summary>
    public static LoadSettings? Parse(string[] args)
    {
        var settings = new LoadSettings();
        int? idleNodes = null;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (name == "--profile-allocations")
            {
                settings = settings with { ProfileAllocations = true };
                continue;
            }

            if (name == "--processes")
            {
                settings = settings with { Processes = true };
                continue;
            }

            if (name == "--locks")
            {
                settings = settings with { Locks = true };
                continue;
            }

            if (i + 1 >= args.Length)
            {
                return Fail($"{name} needs a value");
            }

            string value = args[++i];
            switch (name)
            {
                case "--channel" when value is "memory" or "redis":
                    settings = settings with { Channel = value };
                    break;
                case "--mode" when value is "static" or "elastic":
                    settings = settings with { Mode = value };
                    break;
                case "--idle" when int.TryParse(value, CultureInfo.InvariantCulture, out int idle) && idle is >= 1 and <= 64:
                    idleNodes = idle;
                    break;
                case "--redis":
                    settings = settings with { Redis = value };
                    break;
                case "--nodes" when int.TryParse(value, CultureInfo.InvariantCulture, out int nodes) && nodes is >= 3 and <= 26:
                    settings = settings with { Nodes = nodes };
                    break;
                case "--duration" when double.TryParse(value, CultureInfo.InvariantCulture, out double duration) && duration is >= 1 and <= 3600:
                    settings = settings with { DurationSeconds = duration };
                    break;
                case "--payload" when int.TryParse(value, CultureInfo.InvariantCulture, out int payload) && payload is >= 1 and <= 256 * 1024:
                    settings = settings with { PayloadBytes = payload };
                    break;
                case "--inflight" when int.TryParse(value, CultureInfo.InvariantCulture, out int inflight) && inflight is >= 1 and <= 10_000:
                    settings = settings with { AppendsInFlightPerNode = inflight };
                    break;
                case "--lock-clients" when int.TryParse(value, CultureInfo.InvariantCulture, out int clients) && clients is >= 1 and <= 10_000:
                    settings = settings with { LockClients = clients };
                    break;
                case "--cell" when double.TryParse(value, CultureInfo.InvariantCulture, out double cell) && cell is >= 0.1 and <= 600:
                    settings = settings with { CellSeconds = cell };
                    break;
                case "--out":
                    settings = settings with { Out = value };
                    break;
                default:
                    return Fail($"invalid option or value: {name} {value}");
            }
        }

        if (idleNodes is { } idleCount)
        {
            settings = settings with { Idle = true, Nodes = idleCount };
        }

        if (settings.IsRedis && settings.Redis is null)
        {
            return Fail("--channel redis needs --redis HOST:PORT");
        }

        if (!settings.IsRedis && settings.Redis is not null)
        {
            settings = settings with { Channel = "redis" };
        }

        if (settings.Processes && !settings.IsRedis)
        {
            return Fail($"--processes needs --channel redis (got --channel {settings.Channel}): node processes can only reach each other over Redis");
        }

        if (settings.Processes && (settings.IsElastic || settings.Idle))
        {
            return Fail($"--processes runs a static cluster's load phases only (got --mode {settings.Mode}{(settings.Idle ? ", --idle" : "")})");
        }

        if (settings.Locks && !settings.IsRedis)
        {
            return Fail($"--locks needs --channel redis (got --channel {settings.Channel}): the baselines are Redis locks");
        }

        if (settings.Locks && (settings.Processes || settings.Idle))
        {
            return Fail("--locks runs its cluster in this process (it does not combine with --processes or --idle)");
        }

        return settings;
    }

    private static LoadSettings? Fail(string message)
    {
        Console.Error.WriteLine(message);
        Console.Error.WriteLine(Usage);
        return null;
    }
}
