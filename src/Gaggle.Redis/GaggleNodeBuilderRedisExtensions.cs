using StackExchange.Redis;

namespace Gaggle.Redis;

/// <summary>
/// Connects a <see cref="GaggleNodeBuilder"/> to Redis. The channel logs through the builder's
/// <see cref="GaggleNodeBuilder.LoggerFactory"/> and keeps time with its <see cref="GaggleNodeBuilder.TimeProvider"/>,
/// the node's clock.
/// </summary>
public static class GaggleNodeBuilderRedisExtensions
{
    /// <summary>
    /// The node talks over Redis pub/sub, through a connection it creates from
    /// <paramref name="configuration"/> (and disposes when stopped). <see cref="GaggleNodeBuilder.Build"/>
    /// checks the channel's settings against the node's (<see cref="RedisPubSubChannelOptions.Validate(GaggleOptions)"/>).
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="configuration">A StackExchange.Redis configuration string, e.g. <c>localhost:6379</c>.</param>
    /// <param name="configure">Sets cluster name, prefix, cluster key and limits.</param>
    /// <returns>The builder.</returns>
    public static GaggleNodeBuilder UseRedis(this GaggleNodeBuilder builder, string configuration, Action<RedisPubSubChannelOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        return builder.UseRedis(options =>
        {
            options.Configuration = configuration;
            configure?.Invoke(options);
        });
    }

    /// <summary>
    /// The node talks over Redis pub/sub through <paramref name="connection"/>, which it never disposes.
    /// <see cref="GaggleNodeBuilder.Build"/> checks the channel's settings against the node's
    /// (<see cref="RedisPubSubChannelOptions.Validate(GaggleOptions)"/>).
    /// </summary>
    /// <param name="builder">The builder.</param>
    /// <param name="connection">The application's connection.</param>
    /// <param name="configure">Sets cluster name, prefix, cluster key and limits.</param>
    /// <returns>The builder.</returns>
    public static GaggleNodeBuilder UseRedis(this GaggleNodeBuilder builder, IConnectionMultiplexer connection, Action<RedisPubSubChannelOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connection);
        return builder.UseRedis(options =>
        {
            options.Connection = connection;
            configure?.Invoke(options);
        });
    }

    private static GaggleNodeBuilder UseRedis(this GaggleNodeBuilder builder, Action<RedisPubSubChannelOptions> configure)
    {
        return builder.UseChannel(nodeOptions =>
        {
            // No sender filter by member id: members added later must be heard (the cluster name and key keep strangers out).
            var options = new RedisPubSubChannelOptions();
            configure(options);
            options.Validate(nodeOptions);
            return new RedisPubSubChannel(nodeOptions.NodeId, options, builder.LoggerFactory, builder.TimeProvider);
        });
    }
}
