using Gaggle;
using Gaggle.Hosting;
using Gaggle.Samples.WebApp;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

// One instance of this app is one Gaggle node. Start as many as you like, each with only the Redis
// and the cluster's name (see README.md); they form one cluster by themselves (elastic mode):
//   dotnet run --project samples/Gaggle.Samples.WebApp -- --urls http://127.0.0.1:5101 --Gaggle:Redis=127.0.0.1:6379 --Gaggle:Cluster=web
// A fixed member list (static mode) still works: add --Gaggle:NodeId=a --Gaggle:Members:0=a ... and a --Gaggle:DataDirectory.
var builder = WebApplication.CreateBuilder(args);
var gaggle = builder.Configuration.GetSection("Gaggle");
string redis = gaggle["Redis"] is { Length: > 0 } configured
    ? configured
    : throw new InvalidOperationException("Gaggle:Redis is not set: pass --Gaggle:Redis=127.0.0.1:6379 (or set it in appsettings.json).");

// One Redis connection for the app's own data (the fenced counters) and for Gaggle's pub/sub.
builder.Services.AddSingleton<IConnectionMultiplexer>(_ =>
{
    var options = ConfigurationOptions.Parse(redis);
    options.AbortOnConnectFail = false; // keep retrying in the background instead of failing the start
    return ConnectionMultiplexer.Connect(options);
});

builder.Services.AddGaggle(gaggle)
    .UseRedis() // the IConnectionMultiplexer above, instead of a second connection
    .AddSingletonJob<CounterCleanupJob>("counter-cleanup");

// The event log behind /log is a state machine of the node, so snapshots carry it.
builder.Services.AddSingleton<EventLog>();
builder.Services.AddOptions<GaggleOptions>().Configure<EventLog>((options, log) => options.StateMachines[EventLog.Name] = log);

builder.Services.AddOptions<WebAppOptions>().Bind(builder.Configuration.GetSection("WebApp")).ValidateOnStart();
builder.Services.AddSingleton<IValidateOptions<WebAppOptions>, WebAppOptionsValidator>();
builder.Services.AddSingleton<FencedCounters>();
builder.Services.TryAddSingleton(TimeProvider.System);
builder.Services.AddSingleton<HeldLocks>();
builder.Services.AddHostedService(services => services.GetRequiredService<HeldLocks>()); // releases holds before the node leaves
builder.Services.AddHealthChecks().AddCheck<GaggleHealthCheck>("gaggle");
builder.Services.AddProblemDetails();

var app = builder.Build();
app.MapStatusEndpoints();
app.MapLockEndpoints();
app.MapLogEndpoints();
app.MapCounterEndpoints();
app.MapHealthChecks("/health");
app.Lifetime.ApplicationStarted.Register(() =>
{
    var node = app.Services.GetRequiredService<GaggleNode>();
    var options = app.Services.GetRequiredService<IOptions<GaggleOptions>>().Value;
    app.Logger.LogInformation(
        "Instance {MemberId} of cluster {Cluster}: {Mode}",
        node.Id,
        app.Services.GetRequiredService<IOptions<GaggleHostingOptions>>().Value.Cluster,
        options.Members.Count > 0 ? "static members " + string.Join(",", options.Members) : "elastic (the cluster manages its members)");
});
app.Run();
