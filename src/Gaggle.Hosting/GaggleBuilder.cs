using Gaggle.Channels;
using Gaggle.Redis;
using Gaggle.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Gaggle.Hosting;

/// <summary>Chooses the transport and storage of the hosted node, and adds singleton jobs.</summary>
public sealed class GaggleBuilder
{
    internal GaggleBuilder(IServiceCollection services)
    {
        Services = services;
    }

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Talks over Redis through a connection created from <paramref name="configuration"/>.</summary>
    /// <param name="configuration">A StackExchange.Redis configuration string.</param>
    /// <param name="configure">Cluster name, prefix, key and limits.</param>
    /// <returns>This builder.</returns>
    public GaggleBuilder UseRedis(string configuration, Action<RedisPubSubChannelOptions>? configure = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        return UseChannel((services, options) => CreateRedisChannel(services, RedisOptions(services, options, configure, o => o.Configuration = configuration), options));
    }

    /// <summary>Talks over Redis through the <see cref="IConnectionMultiplexer"/> registered in the services (never disposed by Gaggle).</summary>
    /// <param name="configure">Cluster name, prefix, key and limits.</param>
    /// <returns>This builder.</returns>
    public GaggleBuilder UseRedis(Action<RedisPubSubChannelOptions>? configure = null)
        => UseChannel((services, options) => CreateRedisChannel(services, RedisOptions(services, options, configure, o => o.Connection = services.GetRequiredService<IConnectionMultiplexer>()), options));

    /// <summary>Talks over an in-process network (tests, demos).</summary>
    /// <param name="network">The network the cluster's nodes share.</param>
    /// <returns>This builder.</returns>
    public GaggleBuilder UseInMemory(InMemoryNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        return UseChannel((_, options) => network.CreateChannel(options.NodeId));
    }

    /// <summary>Keeps the node's log and snapshots in <paramref name="directory"/> (durable).</summary>
    /// <param name="directory">The node's own data directory.</param>
    /// <returns>This builder.</returns>
    public GaggleBuilder UseFileStorage(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Services.Configure<GaggleHostingOptions>(o => o.DataDirectory = directory);
        return this;
    }

    /// <summary>
    /// Runs <typeparamref name="TJob"/> on exactly one instance of the application at a time (the one
    /// holding the job's lock), cancels it when that instance loses the right to run it, and starts it
    /// elsewhere when that instance stops or dies. Jobs spread over the instances.
    /// </summary>
    /// <typeparam name="TJob">The job; resolved from a new scope for every run.</typeparam>
    /// <param name="name">The job's cluster-wide name; the type's name when null.</param>
    /// <returns>This builder.</returns>
    public GaggleBuilder AddSingletonJob<TJob>(string? name = null)
        where TJob : class, ISingletonJob
    {
        string jobName = name ?? typeof(TJob).Name;
        Services.AddScoped<TJob>();
        Services.AddSingleton<IHostedService>(services => new SingletonJobRunner<TJob>(
            jobName,
            services,
            services.GetRequiredService<GaggleNode>(),
            services.GetRequiredService<SingletonJobRegistry>(),
            services.GetRequiredService<IOptions<SingletonJobOptions>>().Value,
            services.GetService<TimeProvider>() ?? TimeProvider.System,
            services.GetRequiredService<ILogger<SingletonJobRunner<TJob>>>()));
        return this;
    }

    /// <summary>Uses the channel <paramref name="factory"/> creates.</summary>
    /// <param name="factory">Creates the channel from the services and the node's options.</param>
    /// <returns>This builder.</returns>
    public GaggleBuilder UseChannel(Func<IServiceProvider, GaggleOptions, IChannel> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        Services.AddSingleton(new GaggleChannelFactory(factory));
        return this;
    }

    /// <summary>The channel logs through the application's logging and keeps time with the node's clock (the registered <see cref="TimeProvider"/>, if any).</summary>
    private static RedisPubSubChannel CreateRedisChannel(IServiceProvider services, RedisPubSubChannelOptions redis, GaggleOptions node)
    {
        if (redis.ClusterKey is null)
        {
            StartupWarnings.NoClusterKey(services, node.NodeId, redis.ClusterName);
        }

        return new(node.NodeId, redis, services.GetService<ILoggerFactory>(), services.GetService<TimeProvider>());
    }

    private static RedisPubSubChannelOptions RedisOptions(IServiceProvider services, GaggleOptions node, Action<RedisPubSubChannelOptions>? configure, Action<RedisPubSubChannelOptions> connect)
    {
        var hosting = services.GetRequiredService<IOptions<GaggleHostingOptions>>().Value;
        // No sender filter by member id: members added later must be heard (the cluster name and key keep strangers out).
        // The cluster name is null only in elastic mode, where it must be given: here, or in the callback.
        var options = new RedisPubSubChannelOptions { ClusterName = hosting.Cluster ?? "", Prefix = hosting.Prefix, ClusterKey = hosting.ClusterKey };
        connect(options);
        configure?.Invoke(options);
        if (hosting.Cluster is null && string.IsNullOrEmpty(options.ClusterName))
        {
            string section = services.GetRequiredService<GaggleConfigurationSection>().Path;
            throw new InvalidOptionsException(GaggleHostingOptionsValidator.ElasticClusterMissing(section) + " (Or set ClusterName in the callback of UseRedis.)");
        }

        options.Validate(node);
        return options;
    }
}

/// <summary>The channel the hosted node uses (the last registered wins).</summary>
internal sealed record GaggleChannelFactory(Func<IServiceProvider, GaggleOptions, IChannel> Create);
