using System.Buffers.Binary;
using Gaggle.Channels;

namespace Gaggle.Tests.Support;

/// <summary>
/// A channel receiver that records what it receives and lets a test await a number of messages with a
/// deadline instead of sleeping.
/// </summary>
internal sealed class RecordingReceiver
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);

    private readonly Lock gate = new();
    private readonly List<InboundMessage> messages = [];
    private readonly List<(int Count, TaskCompletionSource Reached)> waiters = [];

    public int Count
    {
        get
        {
            lock (gate)
            {
                return messages.Count;
            }
        }
    }

    public IReadOnlyList<InboundMessage> Messages
    {
        get
        {
            lock (gate)
            {
                return [.. messages];
            }
        }
    }

    /// <summary>The payloads received so far, each read as a little-endian 32-bit number.</summary>
    public IReadOnlyList<int> Numbers => [.. Messages.Select(message => BinaryPrimitives.ReadInt32LittleEndian(message.Payload.Span))];

    public void Receive(InboundMessage message)
    {
        lock (gate)
        {
            messages.Add(message);
            foreach (var waiter in waiters.Where(waiter => messages.Count >= waiter.Count).ToList())
            {
                waiters.Remove(waiter);
                waiter.Reached.TrySetResult();
            }
        }
    }

    /// <summary>Completes once <paramref name="count"/> messages have arrived; fails after five seconds.</summary>
    public Task WaitForCountAsync(int count)
    {
        lock (gate)
        {
            if (messages.Count >= count)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiters.Add((count, reached));
            return reached.Task.WaitAsync(Deadline);
        }
    }

    public static ReadOnlyMemory<byte> Number(int value)
    {
        var bytes = new byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        return bytes;
    }
}
