namespace Gaggle.Leadership;

/// <summary>
/// This node's leadership, as far as it can be trusted: <see cref="IsLeader"/> is true only while
/// the node is the Raft leader AND holds a leadership lease, and <see cref="LeadershipToken"/> is
/// cancelled the moment either ends.
/// </summary>
/// <remarks>
/// The lease: when a majority of members has answered a heartbeat sent at time t, none of them will
/// vote for another candidate before t + ElectionTimeoutMin (they honour their leader for an election
/// timeout, even across a restart), so no other leader can exist before then. The lease is trusted
/// until t + 90% of ElectionTimeoutMin on this node's monotonic clock, which assumes clock rates
/// differ by less than 10% between nodes (clock offsets do not matter). It is renewed with every
/// heartbeat; a leader cut off from the majority loses it within an election timeout, before any
/// other node can be elected. A leader handing leadership over (on leave) gives it up at once.
/// </remarks>
public sealed class GaggleLeadership
{
    private readonly GaggleNode _node;
    private readonly Lock _lock = new();
    private CancellationTokenSource? _tenure;
    private TaskCompletionSource<CancellationToken> _acquired = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal GaggleLeadership(GaggleNode node)
    {
        _node = node;
    }

    /// <summary>Raised (on a thread-pool thread) when this node gains or loses trusted leadership.</summary>
    public event EventHandler<bool>? Changed;

    /// <summary>Whether this node is the leader and its leadership lease holds.</summary>
    public bool IsLeader
    {
        get
        {
            lock (_lock)
            {
                return _tenure is not null;
            }
        }
    }

    /// <summary>The leader as this node knows it (it may lag behind a change).</summary>
    public string? LeaderId => _node.LeaderId;

    /// <summary>
    /// Cancelled when this node's current leadership ends or can no longer be trusted; an already
    /// cancelled token when this node is not a trusted leader. Run leader-only work with it.
    /// </summary>
    public CancellationToken LeadershipToken
    {
        get
        {
            lock (_lock)
            {
                return _tenure?.Token ?? new CancellationToken(canceled: true);
            }
        }
    }

    /// <summary>Waits until this node is a trusted leader and returns the token of that leadership.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The leadership token (see <see cref="LeadershipToken"/>).</returns>
    public Task<CancellationToken> WaitForLeadershipAsync(CancellationToken cancellationToken = default)
    {
        Task<CancellationToken> acquired;
        lock (_lock)
        {
            acquired = _acquired.Task;
        }

        return acquired.WaitAsync(cancellationToken);
    }

    /// <summary>Called by the node's loop with whether the lease holds now.</summary>
    internal void Update(bool trusted)
    {
        CancellationTokenSource? ended = null;
        bool changed = false;
        lock (_lock)
        {
            if (trusted && _tenure is null)
            {
                _tenure = new CancellationTokenSource();
                _acquired.TrySetResult(_tenure.Token);
                changed = true;
            }
            else if (!trusted && _tenure is not null)
            {
                ended = _tenure;
                _tenure = null;
                _acquired = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
                changed = true;
            }
        }

        if (changed)
        {
            // Token callbacks and event handlers belong to the application: never run them on the node's loop.
            ThreadPool.QueueUserWorkItem(_ =>
            {
                ended?.Cancel();
                Changed?.Invoke(_node, trusted);
            });
        }
    }
}
