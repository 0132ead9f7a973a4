using Gaggle.Leadership;
using Gaggle.Locks;
using Gaggle.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gaggle.Hosting;

/// <summary>Adds a Gaggle node to an application's services.</summary>
public static class GaggleServiceCollectionExtensions
{
    /// <summary>The section named in error messages when options do not come from configuration.</summary>
    private const string DefaultSection = "Gaggle";

    /// <summary>
    /// Adds a Gaggle node configured by <paramref name="configure"/>, started and stopped with the
    /// host; <see cref="GaggleNode"/>, <see cref="GaggleLocks"/> and <see cref="GaggleLeadership"/>
    /// become injectable. Options are validated when the host starts.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Sets the node's options.</param>
    /// <returns>A builder to choose the transport (UseRedis, UseInMemory) and add singleton jobs.</returns>
    public static GaggleBuilder AddGaggle(this IServiceCollection services, Action<GaggleOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddGaggleCore(services, DefaultSection);
        services.Configure(configure);
        return builder;
    }

    /// <summary>
    /// Adds a Gaggle node configured from <paramref name="section"/> (e.g. <c>configuration.GetSection("Gaggle")</c>):
    /// every <see cref="GaggleOptions"/> property plus <see cref="GaggleHostingOptions"/> (<c>Redis</c>,
    /// <c>Cluster</c>, <c>Prefix</c>, <c>ClusterKey</c>, <c>DataDirectory</c>). When <c>Redis</c> is set
    /// the node talks over Redis.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="section">The configuration section.</param>
    /// <returns>A builder to choose the transport (UseRedis, UseInMemory) and add singleton jobs.</returns>
    public static GaggleBuilder AddGaggle(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        var builder = AddGaggleCore(services, (section as IConfigurationSection)?.Path ?? DefaultSection);
        services.AddOptions<GaggleOptions>().Bind(section);
        services.AddOptions<GaggleHostingOptions>().Bind(section);
        services.AddOptions<SingletonJobOptions>().Bind(section.GetSection("Jobs"));
        if (!string.IsNullOrWhiteSpace(section["Redis"]))
        {
            builder.UseRedis(section["Redis"]!);
        }

        return builder;
    }

    private static GaggleBuilder AddGaggleCore(IServiceCollection services, string section)
    {
        ArgumentNullException.ThrowIfNull(services);
        // GaggleOptions are validated (GaggleOptionsValidator below) when IOptions<GaggleOptions> is
        // first read: by CreateNode, when the host starts and builds the hosted services that need the
        // node. ValidateOnStart would validate a second instance, the one IOptionsMonitor caches.
        services.AddOptions<GaggleOptions>();
        services.AddOptions<GaggleHostingOptions>()
            .PostConfigure<IOptions<GaggleOptions>>((hosting, node) => GaggleHostingOptionsValidator.ResolveCluster(hosting, node.Value))
            .ValidateOnStart();
        services.AddOptions<SingletonJobOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GaggleOptions>, GaggleOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GaggleHostingOptions>, GaggleHostingOptionsValidator>(
            sp => new GaggleHostingOptionsValidator(section, () => sp.GetRequiredService<IOptions<GaggleOptions>>().Value)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SingletonJobOptions>>(new SingletonJobOptionsValidator(section + ":Jobs")));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<GaggleOptions>, DefaultNodeId>());
        services.TryAddSingleton(new GaggleConfigurationSection(section));
        services.TryAddSingleton<SingletonJobRegistry>();
        services.TryAddSingleton(CreateNode);
        services.TryAddSingleton(sp => sp.GetRequiredService<GaggleNode>().Locks);
        services.TryAddSingleton(sp => sp.GetRequiredService<GaggleNode>().Leadership);
        services.AddSingleton<IHostedService, GaggleHostedService>();
        return new GaggleBuilder(services);
    }

    private static GaggleNode CreateNode(IServiceProvider services)
    {
        var options = services.GetRequiredService<IOptions<GaggleOptions>>().Value;
        var hosting = services.GetRequiredService<IOptions<GaggleHostingOptions>>().Value;
        var factory = services.GetService<GaggleChannelFactory>()
            ?? throw new InvalidOptionsException("Gaggle has no transport: set Gaggle:Redis in configuration, or call UseRedis or UseInMemory on the builder AddGaggle returned.");
        var builder = new GaggleNodeBuilder(options).UseChannel(o => factory.Create(services, o));
        if (services.GetService<TimeProvider>() is { } time)
        {
            builder.UseTimeProvider(time);
        }

        if (services.GetService<ILoggerFactory>() is { } logging)
        {
            builder.UseLoggerFactory(logging);
        }

        if (hosting.DataDirectory is { Length: > 0 } directory)
        {
            builder.UseFileStorage(directory);
        }
        else if (!options.IsElastic)
        {
            StartupWarnings.StaticMembersInMemory(services, options);
        }

        // The options system validated the options when they were read above.
        return builder.BuildWithValidatedOptions();
    }

    /// <summary>
    /// An empty NodeId becomes the machine's name (lower case, letters, digits and - only): the node's
    /// id with a static member list, the display name its member ids are made from in elastic mode.
    /// </summary>
    private sealed class DefaultNodeId : IPostConfigureOptions<GaggleOptions>
    {
        public void PostConfigure(string? name, GaggleOptions options)
        {
            if (string.IsNullOrEmpty(options.NodeId))
            {
                options.NodeId = GaggleIdentity.MachineName(options.IsElastic ? GaggleIdentity.MaxDisplayNameLength : 64);
            }
        }
    }
}

/// <summary>The configuration section's path (e.g. <c>Gaggle</c>) that errors name keys by.</summary>
internal sealed record GaggleConfigurationSection(string Path);

/// <summary>A configuration error found while building the node.</summary>
public sealed class InvalidOptionsException(string message) : InvalidOperationException(message);
