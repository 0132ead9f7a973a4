using BenchmarkDotNet.Attributes;
using Gaggle.Channels;
using Gaggle.Raft;

namespace Gaggle.Benchmarks.Micro;

/// <summary>The wire codec on the hot message: an AppendEntries carrying 64 entries of 64 bytes.</summary>
[MemoryDiagnoser]
public class WireCodecBenchmark
{
    private RaftWireMessage _append = null!;
    private byte[] _encoded = [];

    [GlobalSetup]
    public void Setup()
    {
        var payload = new byte[64];
        var entries = Enumerable.Range(1001, 64).Select(i => new LogEntry(i, 7, EntryKind.Normal, payload)).ToArray();
        _append = new RaftWireMessage(new RaftMessage
        {
            Type = MessageType.Append, From = "n1", To = "n2", Term = 7, Index = 1000, LogTerm = 7, Commit = 990, Entries = entries,
        });
        _encoded = WireCodec.Encode(_append);
    }

    [Benchmark(Description = "encode Append, 64 entries")]
    public byte[] Encode() => WireCodec.Encode(_append);

    [Benchmark(Description = "decode Append, 64 entries")]
    public object Decode() => WireCodec.Decode(_encoded, "n1", "n2");
}
