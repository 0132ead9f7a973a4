using Gaggle.Hosting;
using Gaggle.Locks;
using Medallion.Threading;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gaggle.DistributedLock;

/// <summary>Registers Gaggle as the application's DistributedLock.Core providers.</summary>
public static class GaggleBuilderDistributedLockExtensions
{
    /// <summary>
    /// Makes <see cref="IDistributedLockProvider"/>, <see cref="IDistributedSemaphoreProvider"/> and
    /// <see cref="IDistributedReaderWriterLockProvider"/> (and the concrete <see cref="GaggleDistributedLockProvider"/>,
    /// <see cref="GaggleDistributedSemaphoreProvider"/> and <see cref="GaggleDistributedReaderWriterLockProvider"/>,
    /// whose handles show the fencing token) singletons backed by the hosted node's locks. Code that
    /// takes locks through those interfaces moves to Gaggle with this one registration; an earlier
    /// registration of the interfaces (another DistributedLock provider) is replaced.
    /// </summary>
    /// <remarks>
    /// The providers may be resolved and injected before the host starts; the node they use is the
    /// one the host starts (the same singleton), and acquiring before that throws
    /// <see cref="InvalidOperationException"/> naming the node. Acquire in request handlers, or in
    /// hosted services registered after <c>AddGaggle</c>, which the host starts after the node.
    /// </remarks>
    /// <param name="builder">The builder <c>AddGaggle</c> returned.</param>
    /// <returns>The builder.</returns>
    public static GaggleBuilder AddDistributedLockProviders(this GaggleBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        // One registration for every DistributedLock.Core provider Gaggle backs.
        services.TryAddSingleton(sp => new GaggleDistributedLockProvider(sp.GetRequiredService<GaggleLocks>()));
        services.TryAddSingleton(sp => new GaggleDistributedSemaphoreProvider(sp.GetRequiredService<GaggleLocks>()));
        services.TryAddSingleton(sp => new GaggleDistributedReaderWriterLockProvider(sp.GetRequiredService<GaggleLocks>()));
        Replace<IDistributedLockProvider, GaggleDistributedLockProvider>(services);
        Replace<IDistributedSemaphoreProvider, GaggleDistributedSemaphoreProvider>(services);
        Replace<IDistributedReaderWriterLockProvider, GaggleDistributedReaderWriterLockProvider>(services);
        return builder;
    }

    /// <summary>The interface resolves to the concrete provider only (so both give one instance).</summary>
    private static void Replace<TInterface, TProvider>(IServiceCollection services)
        where TInterface : class
        where TProvider : class, TInterface
    {
        services.RemoveAll<TInterface>();
        services.AddSingleton<TInterface>(sp => sp.GetRequiredService<TProvider>());
    }
}
