using Gaggle.Locks;

namespace Gaggle.Tests.Locks;

/// <summary>A lock table's snapshot as bytes, and a table read back from them: what a node that installs the snapshot has.</summary>
internal static class LockTableSnapshots
{
    public static byte[] Bytes(LockTable table)
    {
        using var stream = new MemoryStream();
        table.Write(stream);
        return stream.ToArray();
    }

    /// <summary>A table read from <paramref name="table"/>'s snapshot; with <paramref name="generalPassOnly"/>, one that decides by the general grant pass alone.</summary>
    public static LockTable Restore(LockTable table, bool generalPassOnly = false)
    {
        var restored = new LockTable { GeneralPassOnly = generalPassOnly };
        restored.Read(new MemoryStream(Bytes(table)));
        return restored;
    }
}
