namespace Gaggle.Samples.Cluster;

/// <summary>The demo's command line.</summary>
internal sealed record DemoSettings(int Nodes, int Entries, string? Redis, string? Id, string Cluster, string[]? Members, double? Duration, string? Data = null, int IntervalMs = 500, int PaceMs = 50, bool Memory = false)
{
    public const string Usage = """
        Usage: dotnet run --project samples/Gaggle.Samples.Cluster [-- options]
          --nodes N          cluster size, 3..26 (default 3)
          --entries N        entries appended per phase of the scenario (default 10)
          (default)          run the scenario over Redis pub/sub on an embedded Garnet server (Redis-compatible, in this process)
          --memory           run it over the in-process network instead (no Redis at all)
          --redis HOST:PORT  run it over this Redis instead of the embedded server
          --id ID            run only this node in this process (needs --redis); start one process per node
          --cluster NAME     cluster name on Redis (default demo)
          --members A,B,C    member ids (default node-a, node-b, ... for --nodes)
          --duration S       with --id: stop after S seconds (default: run until Ctrl+C)
          --data DIR         keep each node's log and snapshots in DIR/<id> (durable; default: in memory)
          --interval MS      with --id: milliseconds between appends (default 500)
          --pace MS          pause between the scenario's appends, so the live table can be followed (default 50; 0 = flat out)
        """;

    /// <summary>How long each node holds the contended lock: long enough to see the holder in the table.</summary>
    public int HoldMs => Math.Max(5, 2 * PaceMs);

    public string[] MemberIds => Members ?? Enumerable.Range(0, Nodes).Select(i => $"node-{(char)('a' + i)}").ToArray();

    public static DemoSettings? Parse(string[] args)
    {
        var settings = new DemoSettings(3, 10, null, null, "demo", null, null);
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--memory")
            {
                settings = settings with { Memory = true };
                continue;
            }

            string? value = i + 1 < args.Length ? args[i + 1] : null;
            DemoSettings? next = (args[i], value) switch
            {
                ("--nodes", _) when int.TryParse(value, out int n) && n is >= 3 and <= 26 => settings with { Nodes = n },
                ("--entries", _) when int.TryParse(value, out int n) && n is >= 1 and <= 100000 => settings with { Entries = n },
                ("--redis", { Length: > 0 }) => settings with { Redis = value },
                ("--id", { Length: > 0 }) => settings with { Id = value },
                ("--cluster", { Length: > 0 }) => settings with { Cluster = value },
                ("--members", { Length: > 0 }) => settings with { Members = value!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                ("--data", { Length: > 0 }) => settings with { Data = value },
                ("--interval", _) when int.TryParse(value, out int ms) && ms is >= 1 and <= 60000 => settings with { IntervalMs = ms },
                ("--pace", _) when int.TryParse(value, out int ms) && ms is >= 0 and <= 10000 => settings with { PaceMs = ms },
                ("--duration", _) when double.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0 => settings with { Duration = s },
                _ => null,
            };
            if (next is null)
            {
                Console.Error.WriteLine($"Unknown or invalid argument '{args[i]}' (value '{value}').");
                Console.Error.WriteLine(Usage);
                return null;
            }

            settings = next;
            i++;
        }

        if (settings.Memory && settings.Redis is not null)
        {
            Console.Error.WriteLine("--memory and --redis pick different transports; pass one of them.");
            return null;
        }

        if (settings.Id is not null && settings.Redis is null)
        {
            Console.Error.WriteLine("--id runs one node per process, which needs --redis HOST:PORT so the processes can reach each other.");
            return null;
        }

        if (settings.Id is not null && !settings.MemberIds.Contains(settings.Id))
        {
            Console.Error.WriteLine($"--id '{settings.Id}' is not among the members ({string.Join(", ", settings.MemberIds)}); pass --members.");
            return null;
        }

        return settings;
    }
}
