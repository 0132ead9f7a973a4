namespace Gaggle.Tests.Simulation;

/// <summary>
/// Forced generations (GaggleNode.ForceNewGenerationAsync): the survivor keeps its committed prefix, so
/// the new generation's lock history starts from the old one's as it stood at the survivor's commit
/// index, not from an empty table. That state is rebuilt by replaying the old history's commands up to
/// there into a fresh model (the tables that applied them first were compared at the time); what the
/// lost majority applied after it is lost by design and left out.
/// </summary>
internal sealed partial class LockHistoryChecker
{
    /// <summary>
    /// <paramref name="forced"/> was forced on a survivor of <paramref name="generation"/> whose commit
    /// index was <paramref name="upTo"/>: its history is that of <paramref name="generation"/> up to
    /// there. From then on it is checked as its own, with two rules of a forced generation: its table
    /// says the old generation until the new one's start entry applies, and nothing may be granted at
    /// an index after <paramref name="upTo"/> before then (those indexes are the new generation's, and
    /// the lost majority may have granted the same tokens at them; see RaftCore.ForceNewCluster).
    /// </summary>
    public void Fork(long generation, long forced, long upTo)
    {
        var parent = HistoryOf(generation);
        // Replayed as the parent (its tokens, its own fork rules), then renamed.
        var history = new History { Generation = parent.Generation, ForkedFrom = parent.ForkedFrom, ForkedAt = parent.ForkedAt };
        var (saved, stats, tokens) = (_history, Stats, _tokens);
        (_history, Stats, _tokens) = (history, new LockSimStats(), []);
        try
        {
            foreach (var record in parent.Records)
            {
                if (record.Index > upTo)
                {
                    break;
                }

                history.Records.Add(record);
                history.Fingerprints[record.Index] = record.Fingerprint;
                history.CheckedUpTo = record.Index;
                history.GrantsFrom = record.GrantsFrom;
                history.TableGeneration = record.TableGeneration;
                if (record.Command is { } command)
                {
                    Check(null, record.Index, record.Envelope, command, record.Events);
                }
            }
        }
        finally
        {
            (_history, Stats, _tokens) = (saved, stats, tokens);
        }

        history.Generation = forced;
        history.ForkedFrom = generation;
        history.ForkedAt = upTo;
        history.CheckedUpTo = upTo;
        _histories[forced] = history;
    }
}
