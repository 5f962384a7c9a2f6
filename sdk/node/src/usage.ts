import type { Usage } from "./types.js";

// One mapping function per provider usage shape (docs/event-contract.md, "Token conventions per provider").
// Every function takes the provider's usage object exactly as the API returns it (a whole
// response carrying it under `usage` / `usageMetadata` is accepted too), never throws,
// returns null when there is no usage, and always returns a contract-valid Usage
// (cached + cacheWrite <= input, reasoning <= output, all integers >= 0).

type Obj = Record<string, any>;

function obj(x: unknown): Obj | null {
  return x !== null && typeof x === "object" && !Array.isArray(x) ? (x as Obj) : null;
}

/** Non-negative integer, or 0 for anything else (null, missing, NaN, negative, strings). */
function n(x: unknown): number {
  return typeof x === "number" && Number.isFinite(x) && x > 0 ? Math.floor(x) : 0;
}

function money(x: unknown): number | null {
  if (typeof x === "number" && Number.isFinite(x) && x >= 0) return x;
  if (typeof x === "string" && x.trim() !== "") {
    const v = Number(x);
    if (Number.isFinite(v) && v >= 0) return v;
  }
  return null;
}

/** USD rounded to 9 decimals (nano-dollars): the server's precision; it rejects finer costUsd. */
export function roundUsd(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}

function unwrap(x: unknown, key: string): Obj | null {
  const o = obj(x);
  if (!o) return null;
  const inner = obj(o[key]);
  return inner ?? o;
}

function make(input: number, cached: number, cacheWrite: number, output: number, reasoning: number, costUsd: number | null = null): Usage {
  const c = Math.min(cached, input);
  const w = Math.min(cacheWrite, input - c);
  return {
    inputTokens: input,
    cachedTokens: c,
    cacheWriteTokens: w,
    outputTokens: output,
    reasoningTokens: Math.min(reasoning, output),
    costUsd,
  };
}

/** OpenAI chat completions: input=prompt_tokens, cached=prompt_tokens_details.cached_tokens, output=completion_tokens, reasoning=completion_tokens_details.reasoning_tokens. */
export function usageFromOpenAIChat(usage: unknown): Usage | null {
  const u = unwrap(usage, "usage");
  if (!u) return null;
  const pd = obj(u.prompt_tokens_details) ?? {};
  const cd = obj(u.completion_tokens_details) ?? {};
  return make(n(u.prompt_tokens), n(pd.cached_tokens), 0, n(u.completion_tokens), n(cd.reasoning_tokens));
}

/** OpenAI chat streaming: the final chunk's usage (same shape as chat). */
export const usageFromOpenAIChatStream = usageFromOpenAIChat;

/** OpenAI responses: input=input_tokens, cached=input_tokens_details.cached_tokens, output=output_tokens, reasoning=output_tokens_details.reasoning_tokens. */
export function usageFromOpenAIResponses(usage: unknown): Usage | null {
  const u = unwrap(usage, "usage");
  if (!u) return null;
  const id = obj(u.input_tokens_details) ?? {};
  const od = obj(u.output_tokens_details) ?? {};
  return make(n(u.input_tokens), n(id.cached_tokens), 0, n(u.output_tokens), n(od.reasoning_tokens));
}

/** OpenAI embeddings: input=prompt_tokens, output=0. */
export function usageFromOpenAIEmbeddings(usage: unknown): Usage | null {
  const u = unwrap(usage, "usage");
  if (!u) return null;
  return make(n(u.prompt_tokens ?? u.input_tokens), 0, 0, 0, 0);
}

/** Anthropic messages: input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens. */
export function usageFromAnthropic(usage: unknown): Usage | null {
  const u = unwrap(usage, "usage");
  if (!u) return null;
  const read = n(u.cache_read_input_tokens);
  const write = n(u.cache_creation_input_tokens);
  return make(n(u.input_tokens) + read + write, read, write, n(u.output_tokens), 0);
}

/**
 * Anthropic streaming: the list of usage objects of message_start.message.usage, then each
 * message_delta.usage, in order. message_start carries the input usage; message_delta carries
 * cumulative counts: for every field, the last non-null value wins.
 */
export function usageFromAnthropicStream(usages: unknown): Usage | null {
  if (!Array.isArray(usages)) return usageFromAnthropic(usages);
  let merged: Obj | null = null;
  for (const item of usages) {
    const u = obj(item);
    if (!u) continue;
    merged = merged ?? {};
    for (const k of Object.keys(u)) {
      if (u[k] !== null && u[k] !== undefined) merged[k] = u[k];
    }
  }
  return merged ? usageFromAnthropic(merged) : null;
}

/** Gemini usageMetadata: input=promptTokenCount, cached=cachedContentTokenCount, output=candidatesTokenCount+thoughtsTokenCount, reasoning=thoughtsTokenCount. */
export function usageFromGemini(usage: unknown): Usage | null {
  const u = unwrap(usage, "usageMetadata");
  if (!u) return null;
  const thoughts = n(u.thoughtsTokenCount);
  return make(n(u.promptTokenCount), n(u.cachedContentTokenCount), 0, n(u.candidatesTokenCount) + thoughts, thoughts);
}

/** Bedrock Converse: input=inputTokens+cacheReadInputTokens+cacheWriteInputTokens, output=outputTokens. */
export function usageFromBedrock(usage: unknown): Usage | null {
  const u = unwrap(usage, "usage");
  if (!u) return null;
  const read = n(u.cacheReadInputTokens);
  const write = n(u.cacheWriteInputTokens);
  return make(n(u.inputTokens) + read + write, read, write, n(u.outputTokens), 0);
}

/** OpenRouter: OpenAI chat shape plus usage.cost (USD) -> costUsd. */
export function usageFromOpenRouter(usage: unknown): Usage | null {
  const base = usageFromOpenAIChat(usage);
  if (!base) return null;
  const u = unwrap(usage, "usage")!;
  const cost = money(u.cost);
  return { ...base, costUsd: cost === null ? null : roundUsd(cost) };
}

/**
 * xAI: OpenAI chat shape; if usage.cost_in_usd_ticks is present, costUsd = ticks / 1e10.
 * xAI reports reasoning tokens outside completion_tokens on some models
 * (total_tokens = prompt + completion + reasoning); they are added to output then, so that
 * outputTokens always includes reasoning.
 */
export function usageFromXAI(usage: unknown): Usage | null {
  const u = unwrap(usage, "usage");
  if (!u) return null;
  const base = usageFromOpenAIChat(u)!;
  const cd = obj(u.completion_tokens_details) ?? {};
  const reasoning = n(cd.reasoning_tokens);
  const prompt = n(u.prompt_tokens);
  const completion = n(u.completion_tokens);
  let result = base;
  if (reasoning > 0 && n(u.total_tokens) === prompt + completion + reasoning) {
    result = make(prompt, base.cachedTokens, 0, completion + reasoning, reasoning);
  }
  const ticks = money(u.cost_in_usd_ticks);
  return { ...result, costUsd: ticks === null ? null : roundUsd(ticks / 1e10) };
}

/** The shapes of testdata/usage-vectors.json, mapped to their function. */
export const USAGE_SHAPES: Readonly<Record<string, (usage: unknown) => Usage | null>> = Object.freeze({
  "openai.chat": usageFromOpenAIChat,
  "openai.responses": usageFromOpenAIResponses,
  "openai.embeddings": usageFromOpenAIEmbeddings,
  "openai.chat.stream": usageFromOpenAIChatStream,
  "anthropic.messages": usageFromAnthropic,
  "anthropic.stream": usageFromAnthropicStream,
  gemini: usageFromGemini,
  "bedrock.converse": usageFromBedrock,
  openrouter: usageFromOpenRouter,
  xai: usageFromXAI,
});

/** Map a usage object of a named shape (see USAGE_SHAPES); null for unknown shapes or no usage. */
export function usageFromShape(shape: string, usage: unknown): Usage | null {
  const f = USAGE_SHAPES[shape];
  return f ? f(usage) : null;
}
