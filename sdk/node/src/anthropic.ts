import {
  callStreamHelper,
  instrumentClientFetch,
  methodOf,
  proxify,
  unwrapClient,
  type CallRecorder,
  type CallSink,
  type MethodConfig,
  type StreamObserver,
} from "./instrument.js";
import type { WrapOptions } from "./types.js";
import { usageFromAnthropic, usageFromAnthropicStream } from "./usage.js";

function messageStreamObserver(rec: CallRecorder): StreamObserver {
  const usages: unknown[] = [];
  return {
    onItem(ev: any) {
      if (!ev || typeof ev !== "object") return true;
      if (ev.type === "message_start") {
        rec.observeMeta(ev.message);
        if (ev.message?.usage) usages.push(ev.message.usage);
      } else if (ev.type === "message_delta" && ev.usage) {
        usages.push(ev.usage);
      }
      return true;
    },
    usage: () => (usages.length ? usageFromAnthropicStream(usages) : null),
    failureCode: () => null,
  };
}

export function wrapAnthropicClient<T extends object>(sink: CallSink, client: T, opts: WrapOptions = {}): T {
  if (!client || typeof client !== "object") return client;
  // Wrapping a wrapped client re-wraps the real one (new options replace the old): one event per call.
  client = unwrapClient(client);
  instrumentClientFetch(client);
  const cls = (client as any).constructor?.name;
  const provider = opts.provider ?? (cls === "AnthropicBedrock" ? "bedrock" : cls === "AnthropicVertex" ? "google" : "anthropic");
  const messages: MethodConfig = {
    provider,
    operation: "chat",
    wrap: opts,
    usageOf: (data) => usageFromAnthropic(data?.usage),
    prepareStream: (body, rec) => ({ body, observer: messageStreamObserver(rec) }),
  };
  const messagesSpec = {
    create: methodOf(sink, messages),
    parse: methodOf(sink, { ...messages, prepareStream: undefined }),
    // messages.stream() returns a MessageStream helper: observed through its events.
    stream: (target: any, real: any) =>
      function (...args: any[]) {
        return callStreamHelper(sink, messages, "streamEvent", (r) => messageStreamObserver(r), target, real, args);
      },
  };
  return proxify(client, {
    messages: messagesSpec,
    beta: { messages: messagesSpec },
    withOptions: (target: any, real: any) =>
      function (...args: any[]) {
        return wrapAnthropicClient(sink, real.apply(target, args), opts);
      },
  });
}
