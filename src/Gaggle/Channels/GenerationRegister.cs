namespace Gaggle.Channels;

/// <summary>
/// A generation store's value in process memory (see <see cref="IClusterGenerationStore"/>): the id,
/// and how and when it last changed. Not thread-safe; time comes in as arguments. The Redis store's
/// scripts do the same at the Redis server.
/// </summary>
internal sealed class GenerationRegister
{
    private (GenerationChange Change, long AtUs) _beforeClaim;

    /// <summary>The recorded generation id; 0 when none is.</summary>
    public long Id { get; private set; }

    /// <summary>How the value last changed.</summary>
    public GenerationChange Change { get; private set; }

    /// <summary>When the value last changed.</summary>
    public long ChangedAtUs { get; private set; }

    /// <summary>Sets the id to <paramref name="claimed"/> if it is still <paramref name="expected"/>; true when it did.</summary>
    public bool TryClaim(long expected, long claimed, long nowUs)
    {
        Check(expected, nameof(expected));
        Check(claimed, nameof(claimed));
        if (Id != expected)
        {
            return false;
        }

        _beforeClaim = (Change, ChangedAtUs);
        Set(claimed, GenerationChange.Claimed, nowUs);
        return true;
    }

    /// <summary>Sets the id back to <paramref name="expected"/> if it is still <paramref name="claimed"/>; true when it did.</summary>
    public bool TryRelease(long claimed, long expected, long nowUs)
    {
        Check(claimed, nameof(claimed));
        Check(expected, nameof(expected));
        if (Id != claimed)
        {
            return false;
        }

        // Nobody acted under the claim: the value goes back with the change that had made it.
        Set(expected, _beforeClaim.Change, _beforeClaim.AtUs);
        return true;
    }

    /// <summary>Returns the id, after recording <paramref name="generation"/> if none or a lower number was recorded.</summary>
    public GenerationConfirmation Confirm(long generation, long nowUs)
    {
        Check(generation, nameof(generation));
        long before = Id;
        if (before == 0 || GenerationIds.IsNewer(generation, before))
        {
            Set(generation, before == 0 ? GenerationChange.Restored : GenerationChange.Replaced, nowUs);
        }

        return new GenerationConfirmation(before, Change, Change == GenerationChange.Unknown ? TimeSpan.MaxValue : TimeSpan.FromMicroseconds(Math.Max(0, nowUs - ChangedAtUs)));
    }

    /// <summary>Records <paramref name="id"/> as a value written by hand (its change unknown: taken as long ago).</summary>
    public void WriteByHand(long id)
    {
        Check(id, nameof(id));
        Set(id, GenerationChange.Unknown, 0);
    }

    /// <summary>The store lost its value (evicted, flushed, failed over): it reads 0 again.</summary>
    public void Lose() => Set(0, GenerationChange.Unknown, 0);

    private void Set(long id, GenerationChange change, long nowUs)
    {
        Id = id;
        Change = change;
        ChangedAtUs = nowUs;
    }

    private static void Check(long id, string name)
    {
        if (!GenerationIds.IsValid(id))
        {
            throw new ArgumentOutOfRangeException(name, id, $"A generation id must be non-negative with a number of at most {GenerationIds.MaxNumber} and a tag below 2^{GenerationIds.TagBits}.");
        }
    }
}
