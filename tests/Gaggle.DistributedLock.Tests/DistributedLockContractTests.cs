using Gaggle.Tests.Locks.Contract;
using NUnit.Framework;

namespace Gaggle.DistributedLock.Tests;

/// <summary>
/// The lock contract through the DistributedLock.Core adapters on the in-memory network, once with
/// the async methods and once with the blocking ones (<c>Acquire</c>, <c>TryAcquire</c>, <c>Dispose</c>).
/// </summary>
[TestFixture(AdapterCalls.Async)]
[TestFixture(AdapterCalls.Blocking)]
[Parallelizable(ParallelScope.All)]
public sealed class DistributedLockContractTests(AdapterCalls calls) : LockContractTests
{
    protected override Task<LockContractCluster> StartClusterAsync(TimeSpan lease) => LockContractCluster.StartInMemoryAsync(lease);

    protected override ILockContractClient ClientOf(GaggleNode node) => new AdapterLockClient(node, calls);
}
