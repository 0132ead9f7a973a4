using System.Net;
using System.Net.Sockets;
using Garnet;
using NUnit.Framework;
using Testcontainers.Redis;

namespace Gaggle.Redis.Tests
{
    /// <summary>
    /// The Redis the tests use, the first that works of: <c>GAGGLE_REDIS</c> when set, a Testcontainers
    /// Redis, and Microsoft Garnet started in this process (a Redis-compatible server, so a machine with
    /// neither Redis nor Docker still runs every Redis test). The choice is printed once per test run.
    /// Shared by the Redis and hosting test projects (linked, not copied).
    /// </summary>
    internal static class RedisServer
    {
        private static readonly SemaphoreSlim Gate = new(1, 1);
        private static string? _configuration;
        private static RedisContainer? _container;
        private static EmbeddedRedisServer? _embedded;

        /// <summary>Whether the tests run against the in-process Garnet, which lacks a few Redis features.</summary>
        public static bool IsEmbedded => _embedded is not null;

        public static async Task<string> RequireAsync()
        {
            await Gate.WaitAsync();
            try
            {
                _configuration ??= await ResolveAsync();
            }
            finally
            {
                Gate.Release();
            }

            return _configuration;
        }

        private static async Task<string> ResolveAsync()
        {
            var fromEnvironment = Environment.GetEnvironmentVariable("GAGGLE_REDIS");
            if (!string.IsNullOrWhiteSpace(fromEnvironment))
            {
                Announce($"the Redis at GAGGLE_REDIS={fromEnvironment}");
                return fromEnvironment;
            }

            string testcontainersFailure;
            try
            {
                _container = new RedisBuilder("redis:7-alpine").Build();
                await _container.StartAsync();
                Announce("a Testcontainers Redis (redis:7-alpine)");
                return _container.GetConnectionString();
            }
            catch (Exception e)
            {
                testcontainersFailure = $"{e.GetType().Name}: {e.Message.Split('\n')[0]}";
                _container = null;
            }

            _embedded = await EmbeddedRedisServer.StartAsync();
            Announce($"an embedded Garnet server at {_embedded.Configuration} (GAGGLE_REDIS is not set; Testcontainers failed: {testcontainersFailure})");
            return _embedded.Configuration;
        }

        // TestContext.Error, not Progress: VSTest shows it at its default verbosity, so every run says which Redis it used.
        private static void Announce(string which) => TestContext.Error.WriteLine($"Redis tests use {which}.");

        public static async Task StopAsync()
        {
            if (_container is not null)
            {
                await _container.DisposeAsync();
            }

            if (_embedded is not null)
            {
                await _embedded.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Microsoft Garnet in this process on a free loopback port: PUBLISH/SUBSCRIBE, CLIENT, ACL (its ACL
    /// authenticator, the default user open to all) and Lua, run atomically (the generation's
    /// compare-and-set and the web sample's scripts). Stop and
    /// <see cref="StartAgainAsync"/> restart it on the same port, as a test restarting Redis needs.
    /// </summary>
    internal sealed class EmbeddedRedisServer : IAsyncDisposable
    {
        private readonly int _port;
        private GarnetServer? _server;

        private EmbeddedRedisServer(int port)
        {
            _port = port;
        }

        public string Configuration => $"127.0.0.1:{_port}";

        public static async Task<EmbeddedRedisServer> StartAsync()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var server = new EmbeddedRedisServer(port);
            await server.StartAgainAsync();
            return server;
        }

        public async Task StartAgainAsync()
        {
            // --lua-transaction-mode: Garnet runs a Lua script atomically only in this mode (off by default);
            // without it two concurrent claims of the cluster generation (a compare-and-set script) can both win.
            string[] arguments = ["--port", _port.ToString(), "--bind", "127.0.0.1", "--auth", "Acl", "--lua", "--lua-transaction-mode"];
            // The port of a server just stopped may take a moment to be free again.
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    _server = new GarnetServer(arguments);
                    _server.Start();
                    return;
                }
                catch (Exception) when (attempt < 50)
                {
                    _server?.Dispose();
                    _server = null;
                    await Task.Delay(100);
                }
            }
        }

        public Task StopAsync()
        {
            _server?.Dispose();
            _server = null;
            return Task.CompletedTask;
        }

        public async ValueTask DisposeAsync() => await StopAsync();
    }
}

/// <summary>Stops the Redis the tests started (container or embedded server) after the whole assembly ran.</summary>
[SetUpFixture]
public sealed class RedisServerLifetime
{
    [OneTimeTearDown]
    public Task StopAsync() => Gaggle.Redis.Tests.RedisServer.StopAsync();
}
