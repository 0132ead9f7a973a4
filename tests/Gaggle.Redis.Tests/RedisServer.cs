using NUnit.Framework;
using Testcontainers.Redis;

namespace Gaggle.Redis.Tests;

/// <summary>
/// The Redis the tests use: <c>GAGGLE_REDIS</c> when set, else a Testcontainers Redis; when neither
/// is possible the Redis tests are ignored with the reason (never passed silently).
/// </summary>
internal static class RedisServer
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static string? _configuration;
    private static string? _unavailableReason;
    private static RedisContainer? _container;

    public static async Task<string> RequireAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_configuration is null && _unavailableReason is null)
            {
                await ResolveAsync();
            }
        }
        finally
        {
            Gate.Release();
        }

        if (_configuration is null)
        {
            Assert.Ignore(_unavailableReason!);
        }

        return _configuration!;
    }

    private static async Task ResolveAsync()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("GAGGLE_REDIS");
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            _configuration = fromEnvironment;
            return;
        }

        try
        {
            _container = new RedisBuilder("redis:7-alpine").Build();
            await _container.StartAsync();
            _configuration = _container.GetConnectionString();
        }
        catch (Exception e)
        {
            _unavailableReason = "Redis tests need a Redis: set GAGGLE_REDIS=host:port, or run a Docker engine for Testcontainers "
                + $"(Testcontainers failed: {e.GetType().Name}: {e.Message.Split('\n')[0]})";
        }
    }

    public static async Task StopContainerAsync()
    {
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }
}

[SetUpFixture]
public sealed class RedisServerLifetime
{
    [OneTimeTearDown]
    public Task StopAsync() => RedisServer.StopContainerAsync();
}
