using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// Makes Gaggle semaphores for code written against DistributedLock.Core's <see cref="IDistributedSemaphoreProvider"/>
/// (and its extension methods: <c>AcquireSemaphoreAsync(name, maxCount)</c>, ...). Semaphores are
/// taken through <paramref name="locks"/>' node: it must be started (a hosted node is started with
/// the host; before, acquiring throws <see cref="InvalidOperationException"/>).
/// </summary>
/// <param name="locks">The node's locks, <see cref="GaggleNode.Locks"/>.</param>
public sealed class GaggleDistributedSemaphoreProvider(GaggleLocks locks) : IDistributedSemaphoreProvider
{
    private readonly GaggleLocks _locks = locks ?? throw new ArgumentNullException(nameof(locks));

    /// <summary>The semaphore <paramref name="name"/> with <paramref name="maxCount"/> slots; the same one as <see cref="GaggleLocks.AcquireSemaphoreAsync"/> takes by that name.</summary>
    /// <param name="name">The semaphore's name, 1 to 256 characters, used as given. Mutexes and semaphores share names: use a name for one kind only.</param>
    /// <param name="maxCount">How many may hold it at once (1 to 100000); every user of the name must pass the same count.</param>
    /// <returns>The semaphore (nothing is sent until it is acquired).</returns>
    public GaggleDistributedSemaphore CreateSemaphore(string name, int maxCount) => new(name, maxCount, _locks);

    IDistributedSemaphore IDistributedSemaphoreProvider.CreateSemaphore(string name, int maxCount) => CreateSemaphore(name, maxCount);
}
