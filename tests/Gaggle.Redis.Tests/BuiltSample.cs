using NUnit.Framework;

namespace Gaggle.Redis.Tests;

/// <summary>Locates a sample's build output next to this test build (same configuration and framework).</summary>
internal static class BuiltSample
{
    /// <summary>samples/&lt;name&gt;/bin/&lt;Configuration&gt;/&lt;framework&gt;/&lt;name&gt;.dll; the test is ignored when it is not built.</summary>
    public static string Path(string name)
    {
        var here = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        string framework = here.Name;
        string configuration = here.Parent!.Name;
        var root = here;
        while (root is not null && !File.Exists(System.IO.Path.Combine(root.FullName, "Gaggle.Redis.sln")))
        {
            root = root.Parent;
        }

        var path = System.IO.Path.Combine(root!.FullName, "samples", name, "bin", configuration, framework, name + ".dll");
        if (!File.Exists(path))
        {
            Assert.Ignore($"The sample {name} is not built at {path}; build the solution first (dotnet build Gaggle.Redis.sln).");
        }

        return path;
    }
}
