namespace Gaggle.Tests.Simulation;

/// <summary>
/// The sequential specification of GaggleNode.AppendAsync as its callers see it: the log assigns
/// indexes in order, so each append lands after the one before it and completes with its own index.
/// Other entries (no-ops, configurations, lock commands, time entries) take indexes in between
/// unseen, so an index may skip ahead but never repeat or go back. The state is the index of the last
/// append placed.
/// </summary>
/// <remarks>
/// An append completed from a snapshot its node installed is told the snapshot's index S (documented
/// in <see cref="AppendChecker"/>), at or after its entry's own. It is placed at S, after the appends
/// with index S or less, which is a valid place for it: every entry up to S was proposed, so called,
/// before S was committed, and that came before this answer. Appends told the same S share it, and an
/// exact append at S comes before them.
/// </remarks>
internal sealed class AppendLogModel : ISequentialModel<long>
{
    public long Initial => 0;

    public string? Step(long state, ClientOperation operation, List<long> next)
    {
        var append = (AppendOperation)operation;
        if (append.Covered ? append.Index < state : append.Index <= state)
        {
            return $"its index {append.Index} is not after {state}, the index of an append placed before it";
        }

        next.Add(append.Index);
        return null;
    }

    public long OrderHint(ClientOperation operation) => operation is AppendOperation { Covered: true } covered ? (2 * covered.Index) + 1 : 2 * ((AppendOperation)operation).Index;

    public string Describe(long state) => $"the last append placed at index {state}";
}
