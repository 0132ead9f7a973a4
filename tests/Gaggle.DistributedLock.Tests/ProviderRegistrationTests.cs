using Gaggle.Channels;
using Gaggle.Hosting;
using Gaggle.Locks;
using Medallion.Threading;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace Gaggle.DistributedLock.Tests;

/// <summary>AddDistributedLockProviders: an application written against DistributedLock.Core's interfaces runs on the hosted node.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class ProviderRegistrationTests
{
    private static readonly TimeSpan LongWait = TimeSpan.FromSeconds(30);

    private static IHost Build(Action<IServiceCollection>? before = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        before?.Invoke(builder.Services);
        builder.Services.AddGaggle(options =>
            {
                options.NodeId = "solo";
                options.Members = ["solo"];
                options.HeartbeatInterval = TimeSpan.FromMilliseconds(10);
                options.ElectionTimeoutMin = TimeSpan.FromMilliseconds(50);
                options.ElectionTimeoutMax = TimeSpan.FromMilliseconds(100);
            })
            .UseInMemory(new InMemoryNetwork(1))
            .AddDistributedLockProviders();
        builder.Services.AddSingleton<InvoiceService>();
        return builder.Build();
    }

    [Test]
    public async Task AServiceWrittenAgainstTheInterfacesTakesGaggleLocksFromTheHostedNode()
    {
        using var host = Build();
        // Resolved before the host starts the node, as singletons of an application often are.
        var invoices = host.Services.GetRequiredService<InvoiceService>();
        var provider = host.Services.GetRequiredService<IDistributedLockProvider>();
        Assert.That(provider, Is.SameAs(host.Services.GetRequiredService<GaggleDistributedLockProvider>()));
        Assert.That(host.Services.GetRequiredService<IDistributedSemaphoreProvider>(), Is.SameAs(host.Services.GetRequiredService<GaggleDistributedSemaphoreProvider>()));
        Assert.That(host.Services.GetRequiredService<IDistributedReaderWriterLockProvider>(), Is.SameAs(host.Services.GetRequiredService<GaggleDistributedReaderWriterLockProvider>()));
        var early = await Assert.ThrowsAsync<InvalidOperationException>(async () => await invoices.TotalAsync(42));
        Assert.That(early!.Message, Does.Contain("'solo' is not started"), "before the host starts the node, a clear error");

        await host.StartAsync();
        await host.Services.GetRequiredService<GaggleNode>().WaitForLeaderAsync(LongWait);
        long fence = await invoices.TotalAsync(42);
        long slotFence = await invoices.ExportAsync();
        var locks = host.Services.GetRequiredService<GaggleLocks>();
        Assert.That(fence, Is.GreaterThan(0));
        Assert.That(slotFence, Is.GreaterThan(fence), "one log, one order of grants");
        Assert.That((await locks.InspectAsync("invoice:42", LongWait)).Holders, Is.Empty, "released when the service disposed its handle");
        await host.StopAsync();
    }

    [Test]
    public void AnEarlierRegistrationOfTheInterfacesIsReplaced()
    {
        using var host = Build(services =>
        {
            services.AddSingleton<IDistributedLockProvider>(new OtherProvider());
            services.AddSingleton<IDistributedLockProvider>(new OtherProvider());
        });
        Assert.That(host.Services.GetServices<IDistributedLockProvider>().ToList(), Has.Count.EqualTo(1).And.All.InstanceOf<GaggleDistributedLockProvider>());
        Assert.That(host.Services.GetServices<IDistributedSemaphoreProvider>().ToList(), Has.Count.EqualTo(1).And.All.InstanceOf<GaggleDistributedSemaphoreProvider>());
    }

    [Test]
    public void RegisteringTwiceKeepsOneProviderOfEachKind()
    {
        var services = new ServiceCollection();
        var gaggle = services.AddGaggle(options => options.NodeId = "solo").UseInMemory(new InMemoryNetwork(1));
        gaggle.AddDistributedLockProviders().AddDistributedLockProviders();
        Assert.That(services.Count(d => d.ServiceType == typeof(IDistributedLockProvider)), Is.EqualTo(1));
        Assert.That(services.Count(d => d.ServiceType == typeof(IDistributedSemaphoreProvider)), Is.EqualTo(1));
        Assert.That(services.Count(d => d.ServiceType == typeof(GaggleDistributedLockProvider)), Is.EqualTo(1));
        Assert.That(services.Count(d => d.ServiceType == typeof(GaggleDistributedSemaphoreProvider)), Is.EqualTo(1));
        Assert.That(services.Count(d => d.ServiceType == typeof(IDistributedReaderWriterLockProvider)), Is.EqualTo(1));
        Assert.That(services.Count(d => d.ServiceType == typeof(GaggleDistributedReaderWriterLockProvider)), Is.EqualTo(1));
    }

    /// <summary>Application code that knows only DistributedLock.Core's interfaces.</summary>
    private sealed class InvoiceService(IDistributedLockProvider locks, IDistributedSemaphoreProvider semaphores)
    {
        public async Task<long> TotalAsync(int invoice)
        {
            await using var handle = await locks.AcquireLockAsync($"invoice:{invoice}", TimeSpan.FromSeconds(5));
            return handle is GaggleDistributedLockHandle gaggle ? gaggle.FencingToken : -1;
        }

        public async Task<long> ExportAsync()
        {
            await using var handle = await semaphores.AcquireSemaphoreAsync("exports", 3, TimeSpan.FromSeconds(5));
            return ((GaggleDistributedLockHandle)handle).FencingToken;
        }
    }

    private sealed class OtherProvider : IDistributedLockProvider
    {
        public IDistributedLock CreateLock(string name) => throw new NotSupportedException();
    }
}
