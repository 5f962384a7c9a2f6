import { test } from "node:test";
import assert from "node:assert/strict";
import {
  usageFromOpenAIChat,
  usageFromOpenAIResponses,
  usageFromOpenAIEmbeddings,
  usageFromAnthropic,
  usageFromAnthropicStream,
  usageFromGemini,
  usageFromBedrock,
  usageFromOpenRouter,
  usageFromXAI,
  usageFromShape,
  USAGE_SHAPES,
  pseudonymize,
  parseGuardResponse,
  classifyError,
  detectOpenAIProvider,
  roundUsd,
  Burnrate,
} from "../dist/esm/index.js";
import { parseRetryAfter, backoffMs } from "../dist/esm/transport.js";

test("mapping functions return null without usage and never throw", () => {
  for (const f of Object.values(USAGE_SHAPES)) {
    for (const bad of [null, undefined, 42, "x", true]) assert.equal(f(bad), null);
  }
  assert.equal(usageFromShape("no.such.shape", { prompt_tokens: 1 }), null);
});

test("openai chat accepts a whole response and cleans bad numbers", () => {
  const u = usageFromOpenAIChat({ id: "x", usage: { prompt_tokens: 10.7, completion_tokens: -3, prompt_tokens_details: { cached_tokens: "5" } } });
  assert.deepEqual(u, { inputTokens: 10, cachedTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, costUsd: null });
});

test("results are always contract-valid (cached <= input, reasoning <= output)", () => {
  const u = usageFromOpenAIChat({ prompt_tokens: 10, prompt_tokens_details: { cached_tokens: 50 }, completion_tokens: 3, completion_tokens_details: { reasoning_tokens: 9 } });
  assert.equal(u.cachedTokens, 10);
  assert.equal(u.reasoningTokens, 3);
  const b = usageFromBedrock({ inputTokens: 1, outputTokens: 2, cacheReadInputTokens: 3, cacheWriteInputTokens: 4 });
  assert.equal(b.inputTokens, 8);
  assert.ok(b.cachedTokens + b.cacheWriteTokens <= b.inputTokens);
});

test("responses, embeddings, anthropic, gemini shapes", () => {
  assert.equal(usageFromOpenAIResponses({ input_tokens: 5, output_tokens: 7, output_tokens_details: { reasoning_tokens: 2 } }).reasoningTokens, 2);
  assert.deepEqual(usageFromOpenAIEmbeddings({ prompt_tokens: 8, total_tokens: 8 }), {
    inputTokens: 8, cachedTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, costUsd: null,
  });
  assert.equal(usageFromAnthropic({ input_tokens: 1, cache_read_input_tokens: 2, cache_creation_input_tokens: 3, output_tokens: 4 }).inputTokens, 6);
  assert.equal(usageFromGemini({ usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 5, thoughtsTokenCount: 20 } }).outputTokens, 25);
});

test("anthropic stream: last non-null cumulative value wins, nulls ignored", () => {
  const u = usageFromAnthropicStream([
    { input_tokens: 10, cache_read_input_tokens: 100, cache_creation_input_tokens: null, output_tokens: 1 },
    { output_tokens: 20 },
    { input_tokens: null, output_tokens: 42 },
  ]);
  assert.deepEqual(u, { inputTokens: 110, cachedTokens: 100, cacheWriteTokens: 0, outputTokens: 42, reasoningTokens: 0, costUsd: null });
  assert.equal(usageFromAnthropicStream([]), null);
});

test("openrouter and xai costs, rounded to nano-dollars", () => {
  assert.equal(usageFromOpenRouter({ prompt_tokens: 1, completion_tokens: 1, cost: 0.000123456789 }).costUsd, 0.000123457);
  assert.equal(usageFromOpenRouter({ prompt_tokens: 1, completion_tokens: 1 }).costUsd, null);
  assert.equal(usageFromXAI({ prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cost_in_usd_ticks: 10_000_000 }).costUsd, 0.001);
  assert.equal(roundUsd(0.0000158504), 0.00001585);
});

test("pseudonymize: HMAC-SHA256 hex with ps_ prefix (cross-checked with Python hmac)", () => {
  assert.equal(pseudonymize("user-42", "topsecret"), "ps_be1a753f955c8d28e5faa3db38a2b11900e2c8b88cdd87220dfa12bd0ccbbc4b");
  assert.equal(pseudonymize("jürgen@example.com", "topsecret"), "ps_152e86a8aeff175895390c4c1d509467e7950bce6ef6a3ef4739fdc9479290dd");
  const br = new Burnrate({ pseudonymizeSecret: "topsecret", logger: () => {} });
  assert.equal(br.pseudonymize("user-42"), pseudonymize("user-42", "topsecret"));
  const logs = [];
  const noSecret = new Burnrate({ logger: (m) => logs.push(m) });
  const a = noSecret.pseudonymize("u1");
  assert.match(a, /^ps_[0-9a-f]{64}$/);
  assert.equal(noSecret.pseudonymize("u1"), a, "stable within the process");
  assert.ok(!logs.join("\n").includes("u1"), "raw id never logged");
});

test("guard response parsing", () => {
  assert.equal(parseGuardResponse(null), null);
  assert.equal(parseGuardResponse({ ok: true }), null);
  assert.equal(parseGuardResponse([]), null);
  const allow = parseGuardResponse({ allow: true });
  assert.equal(allow.allow, true);
  assert.equal(allow.degraded, false);
  const deny = parseGuardResponse({ allow: false, reason: "monthly budget reached", budgetId: "b_1", limitUsd: 100, spentUsd: "100.5", retryAfterSeconds: 3600 });
  assert.deepEqual(
    { ...deny, raw: undefined },
    { allow: false, reason: "monthly budget reached", budgetId: "b_1", limitUsd: 100, spentUsd: 100.5, remainingUsd: null, retryAfterSeconds: 3600, degraded: false, raw: undefined },
  );
  const nested = parseGuardResponse({ allowed: false, message: "cap", budget: { id: "b2", limitUsd: 5, spentUsd: 6, remainingUsd: 0 } });
  assert.equal(nested.allow, false);
  assert.equal(nested.reason, "cap");
  assert.equal(nested.budgetId, "b2");
  assert.equal(nested.remainingUsd, 0);
});

test("parseGuardResponse reads the server's budgets array with integer ids", () => {
  // The shape POST /v1/guard really answers: ids are integers, the denying budget is exceeded.
  const deny = parseGuardResponse({
    allow: false, reason: "budget_exceeded", retryAfterSeconds: 120,
    budgets: [
      { id: 3, name: "team", action: "notify", remaining: 40.5, state: "ok" },
      { id: 7, name: "acme monthly", action: "block", remaining: 0, state: "exceeded" },
    ],
  });
  assert.equal(deny.budgetId, "7");
  assert.equal(deny.remainingUsd, 0);
  const allow = parseGuardResponse({
    allow: true, reason: "ok",
    budgets: [{ id: 2, remaining: 12.25, state: "ok" }, { id: 1, remaining: 3.5, state: "warning" }],
  });
  assert.equal(allow.budgetId, "1");
  assert.equal(allow.remainingUsd, 3.5);
});

test("error classification", () => {
  class RateLimitError extends Error { status = 429; }
  class APIConnectionTimeoutError extends Error {}
  class APIUserAbortError extends Error {}
  class APIConnectionError extends Error {}
  assert.deepEqual(classifyError(new RateLimitError()), { status: "rate_limited", errorCode: "429" });
  assert.deepEqual(classifyError(Object.assign(new Error("x"), { status: 500 })), { status: "error", errorCode: "500" });
  assert.deepEqual(classifyError(Object.assign(new Error("x"), { status: 504 })), { status: "timeout", errorCode: "504" });
  assert.equal(classifyError(new APIConnectionTimeoutError()).status, "timeout");
  assert.equal(classifyError(new APIUserAbortError()).status, "cancelled");
  assert.deepEqual(classifyError(new APIConnectionError()), { status: "error", errorCode: "connection_error" });
  assert.deepEqual(classifyError(Object.assign(new Error("x"), { error: { type: "overloaded_error" } })), { status: "error", errorCode: "overloaded_error" });
  assert.deepEqual(classifyError("weird"), { status: "error", errorCode: "error" });
});

test("provider detection from baseURL", () => {
  assert.equal(detectOpenAIProvider({ baseURL: "https://api.openai.com/v1" }), "openai");
  assert.equal(detectOpenAIProvider({ baseURL: "https://openrouter.ai/api/v1" }), "openrouter");
  assert.equal(detectOpenAIProvider({ baseURL: "https://api.x.ai/v1" }), "xai");
  assert.equal(detectOpenAIProvider({ baseURL: "https://myres.openai.azure.com/openai" }), "azure");
  assert.equal(detectOpenAIProvider({}), "openai");
});

test("Retry-After parsing and backoff bounds", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter("0.5"), 500);
  assert.equal(parseRetryAfter(null), 1000);
  assert.equal(parseRetryAfter("999999"), 300000);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:03 GMT", now), 3000);
  for (let i = 1; i < 20; i++) {
    const b = backoffMs(i);
    assert.ok(b >= 0 && b <= 10000, `backoff ${b}`);
  }
});

test("a client without BURNRATE_URL is a silent no-op that counts", async () => {
  const logs = [];
  const br = new Burnrate({ url: "", logger: (m) => logs.push(m) });
  br.track({ provider: "google", model: "gemini-2.5-flash", endpointTag: "x", usage: null });
  br.track({ provider: "google", model: "gemini-2.5-flash", endpointTag: "x", usage: null });
  assert.equal(br.stats().dropped.disabled, 2);
  assert.equal(logs.length, 1, "logged once");
  assert.equal(await br.flush(), true);
});
