using System.Text.Json;

namespace Gaggle.Samples.WebApp;

/// <summary>Request checks that answer 400 with a problem detail naming the field.</summary>
internal static class Validation
{
    /// <summary>The longest name accepted (room for the prefixes the app adds, under Gaggle's 256).</summary>
    private const int LongestName = 200;

    public static IResult Problem(string field, string message)
        => Results.ValidationProblem(new Dictionary<string, string[]> { [field] = [message] }, detail: message);

    /// <summary>Null when <paramref name="name"/> is a valid lock or counter name; a 400 otherwise.</summary>
    public static IResult? LockName(string name)
    {
        if (name.Length is 0 or > LongestName || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':'))
        {
            return Problem("name", $"name must have 1 to {LongestName} letters, digits, '.', '_', '-' or ':'; got '{name}'.");
        }

        // Gaggle's own locks (singleton jobs, presence) live under gaggle:; clients must not take them.
        return name.StartsWith("gaggle:", StringComparison.OrdinalIgnoreCase)
            ? Problem("name", $"names starting with 'gaggle:' are reserved for Gaggle; got '{name}'.")
            : null;
    }

    /// <summary>Parses an optional millisecond count from 0 to <paramref name="max"/> (absent: 0, try once).</summary>
    public static bool TryMilliseconds(string? text, string field, TimeSpan max, out TimeSpan value, out IResult problem)
    {
        problem = Results.Empty;
        value = TimeSpan.Zero;
        if (text is null)
        {
            return true;
        }

        if (!int.TryParse(text, out int ms) || ms < 0 || ms > max.TotalMilliseconds)
        {
            problem = Problem(field, $"{field} must be a whole number of milliseconds from 0 to {max.TotalMilliseconds:0}; got '{text}'.");
            return false;
        }

        value = TimeSpan.FromMilliseconds(ms);
        return true;
    }

    public static bool IsJson(byte[] data, out string? error)
    {
        try
        {
            using var document = JsonDocument.Parse(data);
            error = null;
            return true;
        }
        catch (JsonException e)
        {
            error = e.Message;
            return false;
        }
    }
}
