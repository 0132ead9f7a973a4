using Gaggle.Raft;

namespace Gaggle.Tests.Raft;

/// <summary>The test cluster's network faults: isolation, partitions and drop rules, and who a message reaches.</summary>
internal sealed partial class RaftTestCluster
{
    /// <summary>Cuts <paramref name="id"/> off from every other node, both ways.</summary>
    public void Isolate(string id) => _isolated.Add(id);

    /// <summary>
    /// Splits the network: a message crosses only between nodes of the same group. Nodes named in no
    /// group form one more group of their own.
    /// </summary>
    public void Partition(params string[][] groups)
    {
        _partition.Clear();
        for (int i = 0; i < groups.Length; i++)
        {
            foreach (var id in groups[i])
            {
                _partition[id] = i + 1;
            }
        }
    }

    /// <summary>Ends every isolation, partition and drop rule.</summary>
    public void Heal()
    {
        _isolated.Clear();
        _partition.Clear();
        _dropRules.Clear();
    }

    /// <summary>Drops every message matching <paramref name="predicate"/> until disposed (or <see cref="Heal"/>).</summary>
    public IDisposable Drop(Func<RaftMessage, bool> predicate)
    {
        _dropRules.Add(predicate);
        return new Rule(() => _dropRules.Remove(predicate));
    }

    private IEnumerable<TestNode> Targets(RaftMessage message)
    {
        if (message.To is not null)
        {
            return _nodes.TryGetValue(message.To, out var target) ? [target] : [];
        }

        return _nodes.Values.Where(n => n.Id != message.From);
    }

    private bool IsDropped(RaftMessage message, TestNode target)
        => target.Stopped
            || (_nodes.TryGetValue(message.From, out var sender) && sender.Stopped)
            || _isolated.Contains(message.From)
            || _isolated.Contains(target.Id)
            || (_partition.Count > 0 && _partition.GetValueOrDefault(message.From) != _partition.GetValueOrDefault(target.Id))
            || _dropRules.Any(rule => rule(message));

    private sealed class Rule(Action remove) : IDisposable
    {
        public void Dispose() => remove();
    }
}
