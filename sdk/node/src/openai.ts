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
import type { Usage, WrapOptions } from "./types.js";
import {
  usageFromOpenAIChat,
  usageFromOpenAIEmbeddings,
  usageFromOpenAIResponses,
  usageFromOpenRouter,
  usageFromXAI,
} from "./usage.js";

const HOSTS: Array<[RegExp, string]> = [
  [/(^|\.)openrouter\.ai$/, "openrouter"],
  [/(^|\.)x\.ai$/, "xai"],
  [/(^|\.)deepseek\.com$/, "deepseek"],
  [/(^|\.)mistral\.ai$/, "mistral"],
  [/\.azure\.com$/, "azure"],
  [/(^|\.)googleapis\.com$/, "google"],
  [/(^|\.)groq\.com$/, "groq"],
  [/(^|\.)together\.(xyz|ai)$/, "together"],
  [/(^|\.)fireworks\.ai$/, "fireworks"],
];

/** Provider of an OpenAI-SDK client, from its class (AzureOpenAI) or baseURL host; default "openai". */
export function detectOpenAIProvider(client: any): string {
  try {
    if (client?.constructor?.name === "AzureOpenAI") return "azure";
    const base = typeof client?.baseURL === "string" ? client.baseURL : "";
    if (base) {
      const host = new URL(base).hostname.toLowerCase();
      for (const [re, name] of HOSTS) if (re.test(host)) return name;
    }
  } catch {
    // fall through
  }
  return "openai";
}

function chatUsageFn(provider: string): (u: unknown) => Usage | null {
  if (provider === "openrouter") return usageFromOpenRouter;
  if (provider === "xai") return usageFromXAI;
  return usageFromOpenAIChat;
}

function chatStreamObserver(rec: CallRecorder, mapUsage: (u: unknown) => Usage | null, injected: boolean): StreamObserver {
  let usage: Usage | null = null;
  return {
    onItem(chunk: any) {
      if (!chunk || typeof chunk !== "object") return true;
      rec.observeMeta(chunk);
      if (chunk.usage) {
        usage = mapUsage(chunk.usage);
        // The usage-only chunk we asked for on the caller's behalf is not handed to the caller.
        if (injected && Array.isArray(chunk.choices) && chunk.choices.length === 0) return false;
      } else if (injected && chunk.usage === null) {
        delete chunk.usage;
      }
      return true;
    },
    usage: () => usage,
    failureCode: () => null,
  };
}

function responsesStreamObserver(rec: CallRecorder): StreamObserver {
  let usage: Usage | null = null;
  let failed: string | null = null;
  return {
    onItem(ev: any) {
      const r = ev?.response;
      if (r && typeof r === "object") {
        rec.observeMeta(r);
        if (r.usage) usage = usageFromOpenAIResponses(r.usage);
        if (ev.type === "response.failed") failed = String(r.error?.code ?? "response.failed").slice(0, 128);
      }
      return true;
    },
    usage: () => usage,
    failureCode: () => failed,
  };
}

export function wrapOpenAIClient<T extends object>(sink: CallSink, client: T, opts: WrapOptions = {}): T {
  if (!client || typeof client !== "object") return client;
  // Wrapping a wrapped client re-wraps the real one (new options replace the old): one event per call.
  client = unwrapClient(client);
  instrumentClientFetch(client);
  const provider = opts.provider ?? detectOpenAIProvider(client);
  const chatUsage = chatUsageFn(provider);

  const chat: MethodConfig = {
    provider,
    operation: "chat",
    wrap: opts,
    usageOf: (data) => chatUsage(data?.usage),
    prepareStream(body, rec) {
      const asked = body?.stream_options?.include_usage === true;
      const newBody = asked ? body : { ...body, stream_options: { ...(body.stream_options ?? {}), include_usage: true } };
      return { body: newBody, observer: chatStreamObserver(rec, chatUsage, !asked) };
    },
  };
  const responses: MethodConfig = {
    provider,
    operation: "responses",
    wrap: opts,
    usageOf: (data) => usageFromOpenAIResponses(data?.usage),
    prepareStream: (body, rec) => ({ body, observer: responsesStreamObserver(rec) }),
  };
  const embeddings: MethodConfig = {
    provider,
    operation: "embeddings",
    wrap: opts,
    usageOf: (data) => usageFromOpenAIEmbeddings(data?.usage),
  };

  return proxify(client, {
    chat: {
      completions: {
        create: methodOf(sink, chat),
        parse: methodOf(sink, { ...chat, prepareStream: undefined }),
        // The .stream() helper: observed through its events. It does not get
        // stream_options.include_usage added (its 'chunk' listeners would see the extra
        // chunk), so pass stream_options: { include_usage: true } yourself to get usage.
        stream: (target: any, real: any) =>
          function (...args: any[]) {
            return callStreamHelper(sink, chat, "chunk", (r) => chatStreamObserver(r, chatUsage, false), target, real, args);
          },
      },
    },
    responses: {
      create: methodOf(sink, responses),
      parse: methodOf(sink, { ...responses, prepareStream: undefined }),
      stream: (target: any, real: any) =>
        function (...args: any[]) {
          return callStreamHelper(sink, responses, "event", (r) => responsesStreamObserver(r), target, real, args);
        },
    },
    embeddings: {
      create: methodOf(sink, embeddings),
    },
    withOptions: (target: any, real: any) =>
      function (...args: any[]) {
        return wrapOpenAIClient(sink, real.apply(target, args), opts);
      },
  });
}
