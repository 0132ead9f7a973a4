namespace Gaggle.Samples.Cluster;

/// <summary>
/// A compact table of the nodes' state: coloured on a terminal (leader in green, nodes without a
/// leader in yellow, stopped nodes in grey), plain text when the output is redirected.
/// </summary>
internal static class StatusTable
{
    private static readonly bool Colour = !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is null;

    public static void Print(IEnumerable<string> ids, IReadOnlyDictionary<string, GaggleNode> running)
    {
        Console.WriteLine($"    {"node",-8} {"role",-10} {"term",5} {"commit",7} {"leader",-8}");
        foreach (var id in ids)
        {
            if (!running.TryGetValue(id, out var node))
            {
                Console.WriteLine(Paint($"    {id,-8} {"stopped",-10} {"",5} {"",7} {"",-8}", "90"));
                continue;
            }

            string line = $"    {id,-8} {node.Role,-10} {node.Term,5} {node.CommitIndex,7} {node.LeaderId ?? "-",-8}";
            Console.WriteLine(node.IsLeader ? Paint(line, "32;1") : node.LeaderId is null ? Paint(line, "33") : line);
        }
    }

    private static string Paint(string text, string code) => Colour ? $"\u001b[{code}m{text}\u001b[0m" : text;
}
