using System.Diagnostics;
using Gaggle.Benchmarks;
using Gaggle.Benchmarks.LockComparison;
using Gaggle.Benchmarks.Micro;
using Gaggle.Benchmarks.Processes;

// The end-to-end load driver (default) or, with --micro, BenchmarkDotNet micro-benchmarks.
// --node-host (first) is the hidden mode of the node processes that the driver starts for --processes.
if (args.Length > 0 && args[0] == "--micro")
{
    return MicroBenchmarks.Run(args[1..]);
}

if (args.Length > 0 && args[0] == NodeHost.Flag)
{
    return await NodeHost.RunAsync(args);
}

if (args is ["--help"] or ["-h"])
{
    Console.WriteLine(LoadSettings.Usage);
    return 0;
}

var settings = LoadSettings.Parse(args);
if (settings is null)
{
    return 2;
}

#if DEBUG
Console.Error.WriteLine("warning: a Debug build; figures are only meaningful with -c Release");
#endif

var clock = Stopwatch.StartNew();
IRunReport report = settings.Idle ? await IdleRun.RunAsync(settings)
    : settings.Locks ? await LockComparisonRun.RunAsync(settings)
    : await LoadRun.RunAsync(settings);
Console.WriteLine(report.ToTable());
string json = report.ToJson();
if (settings.Out is { } path)
{
    await File.WriteAllTextAsync(path, json + Environment.NewLine);
    Console.WriteLine($"wrote {path} ({clock.Elapsed.TotalSeconds:0.0} s in all)");
}
else
{
    Console.WriteLine(json);
}

return report.Errors == 0 ? 0 : 1;
