using System.Net;
using System.Net.Sockets;
using Garnet;

namespace Gaggle.Samples.Cluster;

/// <summary>
/// Microsoft Garnet (a Redis-compatible server) in this process on a free loopback port, so the
/// default demo runs over Redis pub/sub with nothing to install. Only the sample uses it; the library
/// talks to it as to any Redis.
/// </summary>
internal sealed class EmbeddedRedis : IDisposable
{
    private readonly GarnetServer _server;

    private EmbeddedRedis(GarnetServer server, int port)
    {
        _server = server;
        Configuration = $"127.0.0.1:{port}";
    }

    /// <summary>The StackExchange.Redis configuration string of the server.</summary>
    public string Configuration { get; }

    public static EmbeddedRedis Start()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        // Garnet writes its banner to stdout while it starts and has no option to turn it off; the
        // demo's own output stays readable by muting the console for that moment only, before the
        // demo prints anything.
        var stdout = Console.Out;
        Console.SetOut(TextWriter.Null);
        try
        {
            var server = new GarnetServer(["--port", port.ToString(), "--bind", "127.0.0.1"]);
            try
            {
                server.Start();
            }
            catch
            {
                server.Dispose();
                throw;
            }

            return new EmbeddedRedis(server, port);
        }
        finally
        {
            Console.SetOut(stdout);
        }
    }

    public void Dispose() => _server.Dispose();
}
