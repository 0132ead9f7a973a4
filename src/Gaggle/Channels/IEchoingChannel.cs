namespace Gaggle.Channels;

/// <summary>
/// A channel on which a node hears its own broadcasts come back (Redis pub/sub delivers a publish to
/// every subscriber of the channel, the publisher included). An elastic node waiting to found a
/// generation counts silence only while its echoes keep coming: hearing itself proves that its
/// subscription works, so a live leader's announcements, sent through the same server, would have
/// reached it too. Without it a node whose subscription was down (a half-open socket, a proxy, a
/// channel ACL) but whose commands still reached Redis took the live cluster for gone and founded a
/// generation beside it.
/// </summary>
internal interface IEchoingChannel
{
    /// <summary>How many of this node's own broadcasts came back so far.</summary>
    long EchoesHeard { get; }
}
