namespace Gaggle.Raft;

/// <summary>Majority math. A quorum is a strict majority: n/2 + 1 (integer division).</summary>
internal static class Quorum
{
    public static int Majority(int clusterSize) => clusterSize / 2 + 1;

    /// <summary>
    /// The highest index stored on a majority: sort match indexes descending and take the
    /// majority-th one. Members missing from <paramref name="matches"/> count as 0.
    /// </summary>
    public static long CommittedIndex(Span<long> matches, int clusterSize)
    {
        int majority = Majority(clusterSize);
        if (matches.Length < majority)
        {
            return 0;
        }

        matches.Sort();
        // Ascending order, padded with zeros up to clusterSize: the majority-th largest.
        int padded = clusterSize - matches.Length;
        int position = clusterSize - majority - padded;
        return position < 0 ? 0 : matches[position];
    }

    public static VoteResult Tally(int granted, int rejected, int clusterSize)
    {
        int majority = Majority(clusterSize);
        if (granted >= majority)
        {
            return VoteResult.Won;
        }

        return clusterSize - rejected < majority ? VoteResult.Lost : VoteResult.Pending;
    }
}

internal enum VoteResult
{
    Pending,
    Won,
    Lost,
}
