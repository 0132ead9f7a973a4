using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace Gaggle.Benchmarks.Micro;

/// <summary>Runs the BenchmarkDotNet micro-benchmarks; fails when any benchmark did not run or failed.</summary>
internal static class MicroBenchmarks
{
    public static int Run(string[] args)
    {
        // Without a filter BenchmarkDotNet asks interactively; without a job it runs the long default one.
        var arguments = args.ToList();
        if (!arguments.Contains("--filter"))
        {
            arguments.AddRange(["--filter", "*"]);
        }

        if (!arguments.Contains("--job") && !arguments.Contains("-j"))
        {
            arguments.AddRange(["--job", "short"]);
        }

        var summaries = BenchmarkSwitcher.FromTypes([typeof(RaftAppendBatchBenchmark), typeof(WireCodecBenchmark), typeof(LockTableBenchmark)])
            .Run([.. arguments], DefaultConfig.Instance)
            .ToList();
        int ran = summaries.Sum(s => s.Reports.Length);
        bool failed = summaries.Count == 0 || ran == 0
            || summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success || r.ResultStatistics is null));
        Console.WriteLine(failed ? $"micro-benchmarks FAILED ({ran} reports)" : $"micro-benchmarks ok ({ran} reports)");
        return failed ? 1 : 0;
    }
}
