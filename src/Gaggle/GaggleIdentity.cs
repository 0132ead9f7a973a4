using System.Security.Cryptography;
using System.Text;

namespace Gaggle;

/// <summary>Node identities: the machine's name as a display name, and elastic mode's per-process member ids.</summary>
internal static class GaggleIdentity
{
    /// <summary>An elastic display name leaves room for the separator and the suffix within the 64 characters of an id.</summary>
    public const int MaxDisplayNameLength = 55;

    private const int SuffixLength = 8;
    private const string SuffixAlphabet = "abcdefghijklmnopqrstuvwxyz234567";

    /// <summary>The machine's name, lower case, letters, digits and '-' only ("node" if nothing is left), at most <paramref name="maxLength"/> characters.</summary>
    public static string MachineName(int maxLength = 64)
    {
        var id = new StringBuilder();
        foreach (char c in Environment.MachineName.ToLowerInvariant())
        {
            id.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        }

        return id.Length == 0 ? "node" : id.ToString()[..Math.Min(id.Length, maxLength)];
    }

    /// <summary>A new member id for a process of elastic node <paramref name="displayName"/> (the machine's name when empty): the name, a dot and 8 random characters.</summary>
    public static string NewMemberId(string displayName)
    {
        string name = displayName.Length > 0 ? displayName : MachineName(MaxDisplayNameLength);
        Span<char> suffix = stackalloc char[SuffixLength];
        for (int i = 0; i < suffix.Length; i++)
        {
            suffix[i] = SuffixAlphabet[RandomNumberGenerator.GetInt32(SuffixAlphabet.Length)];
        }

        return $"{name}.{suffix}";
    }

    /// <summary>Whether <paramref name="memberId"/> is a member id of elastic node <paramref name="displayName"/>.</summary>
    public static bool IsMemberIdOf(string memberId, string displayName)
    {
        string name = displayName.Length > 0 ? displayName : MachineName(MaxDisplayNameLength);
        return memberId.Length == name.Length + 1 + SuffixLength && memberId.StartsWith(name + ".", StringComparison.Ordinal);
    }
}
