using Gaggle.Runtime;
using NUnit.Framework;

namespace Gaggle.Tests.Runtime;

/// <summary>The membership request as it travels to the leader.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class MembershipRequestTests
{
    [TestCase(-1L, Description = "no expected index: any configuration")]
    [TestCase(0L, Description = "the seed configuration")]
    [TestCase(42L)]
    public void ARequestDecodesAsEncodedWhateverItsExpectedIndex(long expectedIndex)
    {
        var request = new MembershipRequest { Kind = MembershipRequestKind.Promote, NodeId = "d", ExpectedIndex = expectedIndex, TimeoutUs = 250_000 };

        var decoded = MembershipRequest.Decode(request.Encode());

        Assert.That((decoded.Kind, decoded.NodeId, decoded.ExpectedIndex, decoded.TimeoutUs), Is.EqualTo((MembershipRequestKind.Promote, "d", expectedIndex, 250_000L)));
    }
}
