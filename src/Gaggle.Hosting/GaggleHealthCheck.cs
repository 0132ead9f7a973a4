using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Gaggle.Hosting;

/// <summary>
/// Healthy when the node knows a leader (and, as leader, holds its lease); degraded while it is
/// rejoining after lost storage, leads without a lease, or the cluster has fewer voters than wanted;
/// unhealthy without a leader, after a fatal error (its storage failed: restart the instance), and
/// (with voter management: elastic mode or Voters) until the node is a member that has caught up to
/// its own addition, so a load balancer sends it traffic only then.
/// Register with <c>services.AddHealthChecks().AddCheck&lt;GaggleHealthCheck&gt;("gaggle")</c>.
/// </summary>
public sealed class GaggleHealthCheck(GaggleNode node) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>
        {
            ["nodeId"] = node.Id,
            ["generation"] = node.Generation,
            ["term"] = node.Term,
            ["leaderId"] = node.LeaderId ?? "",
            ["commitIndex"] = node.CommitIndex,
            ["isLeader"] = node.IsLeader,
            ["voters"] = node.Membership.Voters.ToArray(),
            ["learners"] = node.Membership.Learners.ToArray(),
        };
        HealthCheckResult result;
        if (node.FatalError is { } fatal)
        {
            result = HealthCheckResult.Unhealthy($"Node '{node.Id}' stopped after a fatal error and serves nothing until it is restarted: {fatal.InnerException?.Message ?? fatal.Message}", fatal, data);
        }
        else if (node.LeaderId is null)
        {
            result = HealthCheckResult.Unhealthy($"Node '{node.Id}' sees no leader (term {node.Term}): it is cut off from the majority, or an election is under way.", data: data);
        }
        else if (node.TargetVoters is not null && !node.Membership.Contains(node.Id))
        {
            result = HealthCheckResult.Unhealthy($"Node '{node.Id}' is joining: the leader has not added it yet, or it has not caught up to its addition.", data: data);
        }
        else if (node.IsRejoining)
        {
            result = HealthCheckResult.Degraded($"Node '{node.Id}' is rejoining after lost storage and does not vote yet.", data: data);
        }
        else if (node.IsLeader && !node.Leadership.IsLeader)
        {
            result = HealthCheckResult.Degraded(
                $"Node '{node.Id}' leads term {node.Term} but cannot trust its leadership now: it has not heard from a majority recently"
                + (node.Generation > 0 ? ", or Redis has not confirmed its generation lately (the generation fence; a new leader waits for one answer, a new generation three election timeouts)." : "."), data: data);
        }
        else if (node.TargetVoters is { } target && node.Membership.Voters.Count < target)
        {
            result = HealthCheckResult.Degraded(
                $"The cluster has {node.Membership.Voters.Count} voters of the {target} wanted: it tolerates fewer failures than configured (too few members, or learners still catching up).", data: data);
        }
        else
        {
            result = HealthCheckResult.Healthy($"Node '{node.Id}' follows leader '{node.LeaderId}' in term {node.Term}.", data);
        }

        return Task.FromResult(result);
    }
}
