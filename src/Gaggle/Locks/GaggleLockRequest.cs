namespace Gaggle.Locks;

/// <summary>
/// One lock of a multi-lock acquisition (<see cref="GaggleLocks.AcquireAllAsync"/>): which lock, and as
/// what kind of hold. Make it with <see cref="Mutex"/>, <see cref="Semaphore"/>, <see cref="Read"/> or
/// <see cref="Write"/>.
/// </summary>
public readonly record struct GaggleLockRequest
{
    private GaggleLockRequest(string name, LockHoldKind kind, int maxCount)
    {
        Name = name;
        Kind = kind;
        MaxCount = maxCount;
    }

    /// <summary>The lock's name (1 to 256 characters).</summary>
    public string Name { get; }

    /// <summary>The hold asked for: of a mutex, a semaphore slot, or a reader-writer lock for reading or writing.</summary>
    public LockHoldKind Kind { get; }

    /// <summary>1 for a mutex; the semaphore's slot count; 0 for a reader-writer lock.</summary>
    public int MaxCount { get; }

    /// <summary>The mutex <paramref name="name"/>.</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <returns>The request.</returns>
    public static GaggleLockRequest Mutex(string name) => new(NotNull(name), LockHoldKind.Mutex, 1);

    /// <summary>One of <paramref name="maxCount"/> slots of the semaphore <paramref name="name"/> (a semaphore of one slot is the mutex of that name).</summary>
    /// <param name="name">The semaphore's name (1 to 256 characters); every user must pass the same <paramref name="maxCount"/>.</param>
    /// <param name="maxCount">How many may hold it at once (1 to 100000).</param>
    /// <returns>The request.</returns>
    public static GaggleLockRequest Semaphore(string name, int maxCount) => new(NotNull(name), maxCount == 1 ? LockHoldKind.Mutex : LockHoldKind.SemaphoreSlot, maxCount);

    /// <summary>The reader-writer lock <paramref name="name"/> for reading, shared with other readers.</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <returns>The request.</returns>
    public static GaggleLockRequest Read(string name) => new(NotNull(name), LockHoldKind.Read, 0);

    /// <summary>The reader-writer lock <paramref name="name"/> for writing, alone.</summary>
    /// <param name="name">The lock's name (1 to 256 characters).</param>
    /// <returns>The request.</returns>
    public static GaggleLockRequest Write(string name) => new(NotNull(name), LockHoldKind.Write, 0);

    private static string NotNull(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name;
    }

    /// <summary>The request of a single-lock acquire, its arguments not checked yet (the acquire checks them, failing its task).</summary>
    internal static GaggleLockRequest Unchecked(string name, LockHoldKind kind, int maxCount) => kind switch
    {
        LockHoldKind.Read or LockHoldKind.Write => new(name, kind, 0),
        _ => new(name, maxCount == 1 ? LockHoldKind.Mutex : LockHoldKind.SemaphoreSlot, maxCount),
    };

    /// <summary>The request as the lock table reads it.</summary>
    internal LockPart ToPart() => new(Kind switch
    {
        LockHoldKind.Read => LockCommandType.AcquireRead,
        LockHoldKind.Write => LockCommandType.AcquireWrite,
        _ => LockCommandType.Acquire,
    }, Name, MaxCount);
}
