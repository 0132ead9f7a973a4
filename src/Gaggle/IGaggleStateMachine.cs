namespace Gaggle;

/// <summary>
/// Application state built from the committed log, which Gaggle can snapshot so the log need not be
/// kept forever. Register it in <see cref="GaggleOptions.StateMachines"/> under a stable name.
/// </summary>
/// <remarks>
/// All three methods run on the node's loop, one at a time. <see cref="Apply"/> sees every committed
/// application entry once, in log order (the same order on every node), and must be deterministic:
/// no clocks, no randomness, no I/O whose result changes the state. A node that catches up from the
/// leader's snapshot, or restarts from its own, gets <see cref="ReadSnapshot"/> instead of the entries the
/// snapshot covers.
/// </remarks>
public interface IGaggleStateMachine
{
    /// <summary>Applies one committed entry.</summary>
    /// <param name="entry">The entry.</param>
    void Apply(GaggleLogEntry entry);

    /// <summary>Writes the whole state, as of the last applied entry.</summary>
    /// <param name="output">Where to write it.</param>
    void WriteSnapshot(Stream output);

    /// <summary>Replaces the whole state with one written by <see cref="WriteSnapshot"/>.</summary>
    /// <param name="input">The snapshot.</param>
    void ReadSnapshot(Stream input);
}
