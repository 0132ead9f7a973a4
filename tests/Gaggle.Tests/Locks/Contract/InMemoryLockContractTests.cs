using NUnit.Framework;

namespace Gaggle.Tests.Locks.Contract;

/// <summary>The lock contract through Gaggle's own API on the in-memory network (a cut is <c>InMemoryNetwork.Isolate</c>).</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class InMemoryLockContractTests : LockContractTests
{
    protected override Task<LockContractCluster> StartClusterAsync(TimeSpan lease) => LockContractCluster.StartInMemoryAsync(lease);

    protected override ILockContractClient ClientOf(GaggleNode node) => new NativeLockClient(node);
}

/// <summary>The multi-lock contract on the in-memory network.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class InMemoryMultiLockContractTests : MultiLockContractTests
{
    protected override Task<LockContractCluster> StartClusterAsync(TimeSpan lease) => LockContractCluster.StartInMemoryAsync(lease);
}
