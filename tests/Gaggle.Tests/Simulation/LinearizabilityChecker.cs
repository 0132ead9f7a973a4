using System.Text;

namespace Gaggle.Tests.Simulation;

/// <summary>
/// A sequential specification of one object: its initial state and what each operation, with the
/// answer its client saw, may do to a state. An operation may leave a state in several (an unanswered
/// or ambiguous one), so the checker follows sets of states, as Porcupine's nondeterministic models do.
/// </summary>
internal interface ISequentialModel<TState>
    where TState : IEquatable<TState>
{
    TState Initial { get; }

    /// <summary>
    /// Adds to <paramref name="next"/> every state <paramref name="operation"/> may leave
    /// <paramref name="state"/> in; when it adds none, returns why the operation cannot come next.
    /// </summary>
    string? Step(TState state, ClientOperation operation, List<TState> next);

    /// <summary>Where the operation likely falls in a linearization (its log index): tried in this order, so a correct history is found without backtracking.</summary>
    long OrderHint(ClientOperation operation);

    string Describe(TState state);
}

/// <summary>The verdict on one history: linearizable, not (with an explanation), or unknown (the search's budget ran out).</summary>
/// <param name="Explanation">Why no order fits (when inconclusive: how far the search got).</param>
/// <param name="Inconclusive">The search ran out of budget.</param>
/// <param name="Steps">Model steps taken.</param>
internal sealed record LinearizabilityResult(string? Explanation, bool Inconclusive, long Steps)
{
    public bool Linearizable => Explanation is null;
}

/// <summary>
/// Wing and Gong's linearizability check with Lowe's memoization, as Porcupine implements it: a
/// depth-first search for an order of the operations that respects real time (one answered before
/// another was called comes first) and that the sequential model accepts with the answers the clients
/// saw. The history is a list of call and answer events in time order; the operations that may come
/// next are those called before the first answer still in the list. Placing one removes its call and
/// answer from the list; reaching an answer means its operation should have been placed, so the
/// search backtracks. Each (set of operations placed, model states) pair is explored once. An
/// operation never answered has its answer after everything: it may take effect at any time after its
/// call, and its model step allows for it not taking effect at all.
/// </summary>
internal static class LinearizabilityChecker
{
    /// <summary>
    /// Model steps one history may take before the search gives up (a correct history takes about one
    /// per operation). Lock seed 841 (3 nodes) needed more than 2 million: a read answered 15,000 steps
    /// after its call, many calls left unanswered by crashes; it linearizes within a few seconds.
    /// </summary>
    public const long DefaultBudget = 100_000_000;

    public static LinearizabilityResult Check<TState>(ISequentialModel<TState> model, IReadOnlyList<ClientOperation> operations, long budget = DefaultBudget)
        where TState : IEquatable<TState>
        => new Search<TState>(model, operations, budget).Run();

    private sealed class Search<TState>
        where TState : IEquatable<TState>
    {
        private readonly ISequentialModel<TState> _model;
        private readonly IReadOnlyList<ClientOperation> _operations;
        private readonly long _budget;
        private readonly long[] _hints;

        // The event list: entries 0..n-1 are calls, n..2n-1 answers (of operation entry - n), 2n is the head.
        private readonly int[] _next;
        private readonly int[] _prev;
        private readonly int _head;
        private readonly HashSet<Memo> _seen = [];
        private readonly List<TState> _buffer = [];
        private long _steps;

        private int _bestAnswered = -1;
        private int _bestPlaced;
        private int _bestLast = -1;
        private Bits _bestBits;
        private StateSet<TState> _bestStates = null!;

        public Search(ISequentialModel<TState> model, IReadOnlyList<ClientOperation> operations, long budget)
        {
            _model = model;
            _operations = operations;
            _budget = budget;
            int n = operations.Count;
            _hints = operations.Select(model.OrderHint).ToArray();
            var events = Enumerable.Range(0, 2 * n)
                .OrderBy(e => e < n ? operations[e].InvokedAt : operations[e - n].RespondedAt)
                .ThenBy(e => e < n ? 0 : 1)
                .ThenBy(e => e)
                .ToArray();
            _head = 2 * n;
            _next = new int[(2 * n) + 1];
            _prev = new int[(2 * n) + 1];
            int previous = _head;
            foreach (int e in events)
            {
                _next[previous] = e;
                _prev[e] = previous;
                previous = e;
            }

            _next[previous] = -1;
        }

        public LinearizabilityResult Run()
        {
            int n = _operations.Count;
            var placed = Bits.Empty(n);
            var states = new StateSet<TState>([_model.Initial]);
            var frames = new Stack<Frame>();
            var candidates = Candidates();
            int position = 0;
            int answered = 0;
            Remember(answered, 0, -1, placed, states);
            while (_next[_head] != -1)
            {
                bool advanced = false;
                while (position < candidates.Length)
                {
                    int op = candidates[position++];
                    if (++_steps > _budget)
                    {
                        return new LinearizabilityResult(Explain(), true, _steps);
                    }

                    if (Step(states, op, out _) is not { } after)
                    {
                        continue;
                    }

                    var bits = placed.With(op);
                    if (!_seen.Add(new Memo(bits, after)))
                    {
                        continue;
                    }

                    frames.Push(new Frame(op, placed, states, candidates, position));
                    Lift(op);
                    placed = bits;
                    states = after;
                    candidates = Candidates();
                    position = 0;
                    answered += _operations[op].Answered ? 1 : 0;
                    Remember(answered, frames.Count, op, placed, states);
                    advanced = true;
                    break;
                }

                if (advanced)
                {
                    continue;
                }

                if (frames.Count == 0)
                {
                    return new LinearizabilityResult(Explain(), false, _steps);
                }

                var frame = frames.Pop();
                Unlift(frame.Operation);
                answered -= _operations[frame.Operation].Answered ? 1 : 0;
                placed = frame.Placed;
                states = frame.States;
                candidates = frame.Candidates;
                position = frame.Position;
            }

            return new LinearizabilityResult(null, false, _steps);
        }

        /// <summary>The operations that may be placed next (called before the first answer left), in the model's order.</summary>
        private int[] Candidates()
        {
            int n = _operations.Count;
            var found = new List<int>();
            for (int e = _next[_head]; e != -1 && e < n; e = _next[e])
            {
                found.Add(e);
            }

            found.Sort((a, b) => _hints[a] != _hints[b] ? _hints[a].CompareTo(_hints[b]) : a.CompareTo(b));
            return [.. found];
        }

        private StateSet<TState>? Step(StateSet<TState> states, int op, out string? why)
        {
            why = null;
            var after = new List<TState>();
            foreach (var state in states.States)
            {
                _buffer.Clear();
                string? reason = _model.Step(state, _operations[op], _buffer);
                why ??= reason;
                foreach (var next in _buffer)
                {
                    if (!after.Contains(next))
                    {
                        after.Add(next);
                    }
                }
            }

            return after.Count == 0 ? null : new StateSet<TState>([.. after]);
        }

        private void Lift(int op)
        {
            int answer = op + _operations.Count;
            _next[_prev[op]] = _next[op];
            if (_next[op] != -1)
            {
                _prev[_next[op]] = _prev[op];
            }

            _next[_prev[answer]] = _next[answer];
            if (_next[answer] != -1)
            {
                _prev[_next[answer]] = _prev[answer];
            }
        }

        /// <summary>Undoes <see cref="Lift"/> (the last lift not undone): the removed entries still point at their neighbours.</summary>
        private void Unlift(int op)
        {
            int answer = op + _operations.Count;
            if (_next[answer] != -1)
            {
                _prev[_next[answer]] = answer;
            }

            _next[_prev[answer]] = answer;
            if (_next[op] != -1)
            {
                _prev[_next[op]] = op;
            }

            _next[_prev[op]] = op;
        }

        /// <summary>Keeps the point where the most answered operations were placed (unanswered ones may be placed anywhere, so they do not count as progress).</summary>
        private void Remember(int answered, int count, int last, Bits placed, StateSet<TState> states)
        {
            if (answered > _bestAnswered)
            {
                _bestAnswered = answered;
                _bestPlaced = count;
                _bestLast = last;
                _bestBits = placed;
                _bestStates = states;
            }
        }

        /// <summary>
        /// The furthest the search got (the most answered operations placed): the object's state then,
        /// and every operation that could have come next with why the model refused it, up to the first
        /// answer that forced the choice.
        /// </summary>
        private string Explain()
        {
            int n = _operations.Count;
            var left = Enumerable.Range(0, n).Where(i => !_bestBits.Has(i)).ToList();
            long firstAnswer = left.Count == 0 ? ClientOperation.Unanswered : left.Min(i => _operations[i].RespondedAt);
            int blocking = left.FirstOrDefault(i => _operations[i].RespondedAt == firstAnswer);
            var text = new StringBuilder();
            text.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"no order of its {n} operations explains what the clients saw. The furthest an order got placed {_bestPlaced} ({_bestAnswered} answered)"
                + $"{(_bestLast < 0 ? "" : $", the last #{_bestLast + 1} {_operations[_bestLast]}")}, leaving ");
            text.AppendJoin(" or ", _bestStates.States.Select(_model.Describe));
            text.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"; the next must include #{blocking + 1} (answered first of those left), and none of those that may come next fits:");
            foreach (int i in left.Where(i => _operations[i].InvokedAt < firstAnswer).OrderBy(i => _operations[i].InvokedAt))
            {
                Step(_bestStates, i, out string? why);
                text.AppendLine().Append(System.Globalization.CultureInfo.InvariantCulture, $"  #{i + 1} {_operations[i]}: {why ?? "fits, but what must follow it does not"}");
            }

            return text.ToString();
        }

        private readonly record struct Frame(int Operation, Bits Placed, StateSet<TState> States, int[] Candidates, int Position);

        private readonly record struct Memo(Bits Placed, StateSet<TState> States);
    }

    /// <summary>An immutable bit set of placed operations (copied on change; equality by content).</summary>
    private readonly struct Bits : IEquatable<Bits>
    {
        private readonly ulong[] _words;
        private readonly int _hash;

        private Bits(ulong[] words)
        {
            _words = words;
            var hash = new HashCode();
            foreach (ulong word in words)
            {
                hash.Add(word);
            }

            _hash = hash.ToHashCode();
        }

        public static Bits Empty(int count) => new(new ulong[(count + 63) / 64]);

        public bool Has(int i) => (_words[i >> 6] & (1UL << (i & 63))) != 0;

        public Bits With(int i)
        {
            var words = (ulong[])_words.Clone();
            words[i >> 6] |= 1UL << (i & 63);
            return new Bits(words);
        }

        public bool Equals(Bits other) => _hash == other._hash && _words.AsSpan().SequenceEqual(other._words);

        public override bool Equals(object? obj) => obj is Bits other && Equals(other);

        public override int GetHashCode() => _hash;
    }
}

/// <summary>A set of model states (small: usually one), equal by content whatever the order.</summary>
internal sealed class StateSet<TState>(TState[] states) : IEquatable<StateSet<TState>>
    where TState : IEquatable<TState>
{
    private readonly int _hash = states.Aggregate(states.Length, (sum, s) => unchecked(sum + s.GetHashCode()));

    public TState[] States { get; } = states;

    public bool Equals(StateSet<TState>? other)
        => other is not null && _hash == other._hash && States.Length == other.States.Length && States.All(s => Array.IndexOf(other.States, s) >= 0);

    public override bool Equals(object? obj) => Equals(obj as StateSet<TState>);

    public override int GetHashCode() => _hash;
}
