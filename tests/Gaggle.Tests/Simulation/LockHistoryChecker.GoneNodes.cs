using Gaggle.Locks;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// The checks of the waits of gone nodes: at a <see cref="LockCommandType.MembersChanged"/> (elastic
/// mode, a configuration entry) exactly the waits of nodes it does not list end; at an
/// <see cref="LockCommandType.IncarnationEnded"/> exactly those of the origin's incarnation it names (not its own).
/// Each ends once (a multi-lock request in the name of its first lock, from every queue); holds stay.
/// </summary>
internal sealed partial class LockHistoryChecker
{
    private static bool Gone(LockCommand command, RequestId origin, RequestId waiting) => command.Type == LockCommandType.MembersChanged
        ? !command.Members.Contains(waiting.Node)
        : waiting.Node == origin.Node && waiting.Incarnation == (ulong)command.Token && waiting.Incarnation != origin.Incarnation;

    private void EndWaitOfGoneNode(long index, LockCommand command, RequestId request, LockEvent e, TrackedLock state)
    {
        Require(Gone(command, request, e.Request), index, $"the wait of {e.Request} for '{e.Name}' ended at a {command.Type} of {request} that does not concern it");
        if (state.Queue.Find(w => w.Request == e.Request) is { Group: { } group })
        {
            Require(e.Name == group.Names[0], index, $"the wait of multi-lock request {e.Request} for [{string.Join(", ", group.Names)}] ended in the name of '{e.Name}', not of its first lock");
            RemoveGroup(index, group);
        }
        else
        {
            Require(state.Queue.RemoveAll(w => w.Request == e.Request) == 1, index, $"{e.Request} of a gone node rejected but was not waiting for '{e.Name}'");
        }

        if (command.Type == LockCommandType.MembersChanged)
        {
            Stats.WaitsOfRemovedNodes++;
        }
        else
        {
            Stats.WaitsOfEarlierIncarnations++;
        }
    }

    private void RequireNoWaitOfGoneNodes(long index, LockCommand command, RequestId request)
    {
        foreach (var (name, state) in _history.Locks)
        {
            Require(!state.Queue.Exists(w => Gone(command, request, w.Request)), index,
                $"a {command.Type} of {request} left the waits of {string.Join(", ", state.Queue.Where(w => Gone(command, request, w.Request)).Select(w => w.Request).Distinct())} for '{name}'");
        }
    }
}
