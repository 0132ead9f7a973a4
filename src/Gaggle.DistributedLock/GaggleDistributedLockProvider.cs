using Gaggle.Locks;
using Medallion.Threading;

namespace Gaggle.DistributedLock;

/// <summary>
/// Makes Gaggle mutexes for code written against DistributedLock.Core's <see cref="IDistributedLockProvider"/>
/// (and its extension methods: <c>AcquireLockAsync(name)</c>, <c>TryAcquireLock(name)</c>, ...).
/// Locks are taken through <paramref name="locks"/>' node: it must be started (a hosted node is
/// started with the host; before, acquiring throws <see cref="InvalidOperationException"/>).
/// </summary>
/// <param name="locks">The node's locks, <see cref="GaggleNode.Locks"/>.</param>
/// <example>
/// <code>
/// IDistributedLockProvider provider = new GaggleDistributedLockProvider(node.Locks);
/// await using (await provider.AcquireLockAsync("invoice:42", TimeSpan.FromSeconds(5))) { /* held */ }
/// </code>
/// </example>
public sealed class GaggleDistributedLockProvider(GaggleLocks locks) : IDistributedLockProvider
{
    private readonly GaggleLocks _locks = locks ?? throw new ArgumentNullException(nameof(locks));

    /// <summary>The mutex <paramref name="name"/>; the same lock as <see cref="GaggleLocks.AcquireAsync"/> takes by that name.</summary>
    /// <param name="name">The lock's name, 1 to 256 characters, used as given.</param>
    /// <returns>The lock (nothing is sent until it is acquired).</returns>
    public GaggleDistributedLock CreateLock(string name) => new(name, _locks);

    IDistributedLock IDistributedLockProvider.CreateLock(string name) => CreateLock(name);
}
