using Gaggle.Channels;
using Gaggle.Locks;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Gaggle.Hosting.Tests;

[TestFixture]
public sealed class HostTests
{
    private static IHost Build(Dictionary<string, string?> settings, Action<GaggleBuilder>? more = null, InMemoryNetwork? network = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(settings);
        var gaggle = builder.Services.AddGaggle(builder.Configuration.GetSection("Gaggle"));
        if (network is not null)
        {
            gaggle.UseInMemory(network);
        }

        more?.Invoke(gaggle);
        return builder.Build();
    }

    [Test]
    public async Task AHostStartsTheNodeFromConfigurationAndStopsIt()
    {
        using var host = Build(
            new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", ["Gaggle:HeartbeatInterval"] = "00:00:00.010", ["Gaggle:ElectionTimeoutMin"] = "00:00:00.050", ["Gaggle:ElectionTimeoutMax"] = "00:00:00.100" },
            network: new InMemoryNetwork(1));
        await host.StartAsync();
        var node = host.Services.GetRequiredService<GaggleNode>();
        var locks = host.Services.GetRequiredService<GaggleLocks>();
        await node.WaitForLeaderAsync(TimeSpan.FromSeconds(10));
        await using (await locks.AcquireAsync("x", TimeSpan.FromSeconds(10)))
        {
            var health = await new GaggleHealthCheck(node).CheckHealthAsync(new HealthCheckContext());
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy));
        }

        await host.StopAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => node.AppendAsync(new byte[] { 1 }));
    }

    private static IEnumerable<TestCaseData> InvalidSettings()
    {
        yield return new TestCaseData("Gaggle:HeartbeatInterval", "00:00:01", "ElectionTimeoutMin is 300 ms; it must be greater than HeartbeatInterval (1000 ms)");
        yield return new TestCaseData("Gaggle:Members:1", "solo", "Members lists 'solo' more than once");
        yield return new TestCaseData("Gaggle:MaxInflightMessages", "0", "MaxInflightMessages is 0; it must be between 1 and 1024");
        yield return new TestCaseData("Gaggle:NodeId", "not valid!", "NodeId is 'not valid!'");
        yield return new TestCaseData("Gaggle:LockLeaseDuration", "00:00:00.001", "LockLeaseDuration is 1 ms; it must be between 100 ms and 1 hour");
    }

    [TestCaseSource(nameof(InvalidSettings))]
    public async Task AnInvalidSettingFailsTheStartWithItsMessage(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?> { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo", [key] = value };
        using var host = Build(settings, network: new InMemoryNetwork(1));
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain(expected));
    }

    [Test]
    public async Task WithoutATransportTheErrorSaysHowToChooseOne()
    {
        using var host = Build(new() { ["Gaggle:NodeId"] = "solo", ["Gaggle:Members:0"] = "solo" });
        var error = await Assert.ThrowsAsync<InvalidOptionsException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain("Gaggle:Redis").And.Contain("UseInMemory"));
    }

    [Test]
    public void TheNodeIdDefaultsToTheMachineName()
    {
        using var host = Build(new() { ["Gaggle:ClusterSize"] = "1" }, network: new InMemoryNetwork(1));
        var options = host.Services.GetRequiredService<IOptions<GaggleOptions>>().Value;
        Assert.That(options.NodeId, Is.Not.Empty);
        Assert.That(options.NodeId, Does.Match("^[a-z0-9-]{1,64}$"));
    }
}
