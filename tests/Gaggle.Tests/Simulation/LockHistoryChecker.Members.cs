using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The checks of <see cref="LockCommandType.MembersChanged"/> (elastic mode): at a configuration
/// entry, exactly the waits of nodes it does not list end, each once (a multi-lock request in the name
/// of its first lock, from every queue); holds stay.
/// </summary>
internal sealed partial class LockHistoryChecker
{
    private void EndWaitOfRemovedNode(long index, LockCommand command, LockEvent e, TrackedLock state)
    {
        Require(!command.Members.Contains(e.Request.Node), index, $"the wait of {e.Request} for '{e.Name}' ended at a configuration that lists its node");
        if (state.Queue.Find(w => w.Request == e.Request) is { Group: { } group })
        {
            Require(e.Name == group.Names[0], index, $"the wait of multi-lock request {e.Request} for [{string.Join(", ", group.Names)}] ended in the name of '{e.Name}', not of its first lock");
            RemoveGroup(index, group);
        }
        else
        {
            Require(state.Queue.RemoveAll(w => w.Request == e.Request) == 1, index, $"{e.Request} of a removed node rejected but was not waiting for '{e.Name}'");
        }

        Stats.WaitsOfRemovedNodes++;
    }

    private void RequireNoWaitOfRemovedNodes(long index, LockCommand command)
    {
        foreach (var (name, state) in _history.Locks)
        {
            Require(!state.Queue.Exists(w => !command.Members.Contains(w.Request.Node)), index,
                $"a configuration without {string.Join(", ", state.Queue.Where(w => !command.Members.Contains(w.Request.Node)).Select(w => w.Request.Node).Distinct())} left their waits for '{name}'");
        }
    }
}
