using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// Makes Gaggle reader-writer locks for code written against DistributedLock.Core's
/// <see cref="IDistributedReaderWriterLockProvider"/> (and its extension methods:
/// <c>AcquireReadLockAsync(name)</c>, <c>AcquireWriteLockAsync(name)</c>, ...). Locks are taken
/// through <paramref name="locks"/>' node: it must be started (a hosted node is started with the
/// host; before, acquiring throws <see cref="InvalidOperationException"/>).
/// </summary>
/// <param name="locks">The node's locks, <see cref="GaggleNode.Locks"/>.</param>
public sealed class GaggleDistributedReaderWriterLockProvider(GaggleLocks locks) : IDistributedReaderWriterLockProvider
{
    private readonly GaggleLocks _locks = locks ?? throw new ArgumentNullException(nameof(locks));

    /// <summary>The reader-writer lock <paramref name="name"/>; the same lock as <see cref="GaggleLocks.AcquireReadAsync"/> and <see cref="GaggleLocks.AcquireWriteAsync"/> take by that name.</summary>
    /// <param name="name">The lock's name, 1 to 256 characters, used as given; a name is one kind of lock at a time.</param>
    /// <returns>The lock (nothing is sent until it is acquired).</returns>
    public GaggleDistributedReaderWriterLock CreateReaderWriterLock(string name) => new(name, _locks);

    IDistributedReaderWriterLock IDistributedReaderWriterLockProvider.CreateReaderWriterLock(string name) => CreateReaderWriterLock(name);
}
