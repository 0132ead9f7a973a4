using System.ComponentModel;
using System.Runtime.InteropServices;

namespace Gaggle.Storage;

/// <summary>
/// Makes a directory's entries (files created, renamed or removed) durable. On Linux and macOS that
/// takes an fsync of the directory itself, which .NET's file APIs do not offer (they refuse to open a
/// directory), hence the two libc calls. Windows (NTFS) journals directory changes; nothing to do.
/// </summary>
internal static partial class DirectorySync
{
    /// <summary>Flushes <paramref name="directory"/>'s entries to the disk where the platform needs it.</summary>
    /// <exception cref="IOException">The flush failed.</exception>
    public static void Flush(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return;
        }

        int fd;
        try
        {
            fd = Open(directory, 0 /* O_RDONLY */);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to call (an unusual runtime image): directory updates cannot be forced here.
            return;
        }

        if (fd < 0)
        {
            // Some file systems refuse to open a directory; their directory updates cannot be forced.
            return;
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new IOException($"Could not flush the directory '{directory}' to the disk: {new Win32Exception(errno).Message} (errno {errno}).");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Creates <paramref name="directory"/> and any missing parents, making each new entry durable when <paramref name="flush"/>.</summary>
    public static void Create(string directory, bool flush)
    {
        var missing = new Stack<string>();
        for (string? current = directory; current is not null && !Directory.Exists(current); current = Path.GetDirectoryName(current))
        {
            missing.Push(current);
        }

        Directory.CreateDirectory(directory);
        while (flush && missing.TryPop(out string? created))
        {
            if (Path.GetDirectoryName(created) is { } parent)
            {
                Flush(parent);
            }
        }
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}
