using System.Globalization;
using StackExchange.Redis;

namespace Gaggle.Benchmarks.LockComparison;

/// <summary>
/// The Redis server's own counters (<c>INFO</c>): CPU seconds (user + system, all its threads) and
/// commands processed. Differences over a cell say what each lock pair costs the server, which the
/// benchmark process's CPU does not show.
/// </summary>
internal sealed record RedisServerCounters(double CpuSeconds, long Commands)
{
    public static async Task<RedisServerCounters> ReadAsync(IServer server)
    {
        var sections = await server.InfoAsync().ConfigureAwait(false);
        var fields = sections.SelectMany(s => s).ToDictionary(p => p.Key, p => p.Value);
        double Cpu(string name) => fields.TryGetValue(name, out var v) ? double.Parse(v, CultureInfo.InvariantCulture) : 0;
        long commands = fields.TryGetValue("total_commands_processed", out var c) ? long.Parse(c, CultureInfo.InvariantCulture) : 0;
        return new RedisServerCounters(Cpu("used_cpu_user") + Cpu("used_cpu_sys"), commands);
    }
}
