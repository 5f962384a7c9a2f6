// End to end against the real burnrate binary (BURNRATE_BIN or target/debug/burnrate).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { Burnrate, usageFromOpenRouter } from "../dist/esm/index.js";
import { startFakeProvider } from "./support/fake-provider.mjs";
import { startBurnrate } from "./support/burnrate-server.mjs";

// gpt-4o-mini: $0.15/M input, $0.075/M cached input, $0.60/M output.
const GPT4O_MINI = { input: 0.15e-6, cached: 0.075e-6, output: 0.6e-6 };
const cost = (p, input, cached, output) => (input - cached) * p.input + cached * p.cached + output * p.output;
const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] };

let server, fp, br, openai, anthropic;
const logs = [];
before(async () => {
  server = await startBurnrate();
  fp = await startFakeProvider();
  br = new Burnrate({ url: server.url, apiKey: server.ingestKey, flushOnExit: false, logger: (m) => logs.push(m) });
  openai = br.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: fp.url + "/v1" }), { endpointTag: "support.reply", promptVersion: "support_v9" });
  anthropic = br.wrapAnthropic(new Anthropic({ apiKey: "sk-ant", baseURL: fp.url }), { endpointTag: "triage.classify" });
});
after(async () => {
  await br?.close(2000);
  await fp?.close();
  await server?.stop();
});

/** Make one logical call with a known externalRequestId, flush, read the stored events back. */
async function stored(id, fn, ctx = {}) {
  await br.withContext({ externalRequestId: id, ...ctx }, fn);
  assert.equal(await br.flush(), true, `flush failed: ${JSON.stringify(br.stats())}`);
  return server.eventsById(id);
}

test("chat call: stored with the right fields, tokens and catalog cost", async () => {
  const [e, ...rest] = await stored("e2e-chat-1", () => openai.chat.completions.create(CHAT), { tenantId: "acme", userId: br.pseudonymize("u-1") });
  assert.equal(rest.length, 0);
  assert.equal(e.provider, "openai");
  assert.equal(e.model, "gpt-4o-mini");
  assert.equal(e.endpointTag, "support.reply");
  assert.equal(e.promptVersion, "support_v9");
  assert.equal(e.tenantId, "acme");
  assert.match(e.userId, /^ps_[0-9a-f]{64}$/);
  assert.equal(e.inputTokens, 1200);
  assert.equal(e.cachedTokens, 1000);
  assert.equal(e.outputTokens, 300);
  assert.equal(e.reasoningTokens, 64);
  assert.equal(e.status, "success");
  assert.equal(e.usageMissing, false);
  assert.equal(e.operation, "chat");
  assert.equal(e.attempt, 1);
  assert.equal(e.costSource, "catalog");
  const expected = cost(GPT4O_MINI, 1200, 1000, 300); // 0.000285
  assert.ok(Math.abs(e.costUsd - expected) < 1e-12, `costUsd ${e.costUsd} != ${expected}`);
});

test("streamed chat call: usage from the final chunk, same cost", async () => {
  const [e] = await stored("e2e-stream-1", async () => {
    for await (const c of await openai.chat.completions.create({ ...CHAT, stream: true })) void c;
  });
  assert.equal(e.inputTokens, 1200);
  assert.equal(e.outputTokens, 300);
  assert.ok(Math.abs(e.costUsd - 0.000285) < 1e-12);
});

test("responses call priced from input/cached/output", async () => {
  const [e] = await stored("e2e-responses-1", () => openai.responses.create({ model: "gpt-4o-mini", input: "Hi" }));
  assert.equal(e.operation, "responses");
  assert.equal(e.inputTokens, 2000);
  assert.equal(e.cachedTokens, 500);
  assert.equal(e.outputTokens, 400);
  const expected = cost(GPT4O_MINI, 2000, 500, 400);
  assert.ok(Math.abs(e.costUsd - expected) < 1e-12, `costUsd ${e.costUsd} != ${expected}`);
});

test("provider SDK retries: one externalRequestId, attempt counted (429 then success)", async () => {
  fp.fail("/v1/chat/completions", [429, 500]);
  const events = await stored("e2e-retry-1", () => openai.chat.completions.create(CHAT));
  assert.equal(events.length, 1, JSON.stringify(events));
  const [e] = events;
  assert.equal(e.attempt, 3);
  assert.ok(e.attempts >= 1);
  assert.equal(e.status, "success");
  assert.equal(e.inputTokens, 1200);
});

test("app-level retry: the caller's externalRequestId across two logical attempts", async () => {
  const noRetry = openai.withOptions({ maxRetries: 0 });
  fp.fail("/v1/chat/completions", [500]);
  await assert.rejects(br.withContext({ externalRequestId: "e2e-app-retry", attempt: 1 }, () => noRetry.chat.completions.create(CHAT)), OpenAI.InternalServerError);
  await br.withContext({ externalRequestId: "e2e-app-retry", attempt: 2 }, () => noRetry.chat.completions.create(CHAT));
  assert.equal(await br.flush(), true);
  const events = await server.eventsById("e2e-app-retry");
  assert.ok(events.length >= 1, "stored");
  const last = events.find((e) => e.attempt === 2) ?? events[0];
  assert.equal(last.attempt, 2, JSON.stringify(events));
  assert.equal(last.status, "success");
  assert.equal(last.attempts, 2, `server counts both attempts: ${JSON.stringify(events.map((e) => [e.attempt, e.attempts, e.status]))}`);
});

test("failed call: stored as error with usageMissing and errorCode, error rethrown", async () => {
  fp.fail("/v1/chat/completions", [500, 500, 500]);
  let thrown = null;
  const [e] = await stored("e2e-error-1", () => openai.chat.completions.create(CHAT).catch((x) => (thrown = x)));
  assert.ok(thrown instanceof OpenAI.InternalServerError);
  assert.equal(e.status, "error");
  assert.equal(e.usageMissing, true);
  assert.equal(e.errorCode, "500");
  assert.equal(e.attempt, 3);
  assert.equal(e.inputTokens, 0);
});

test("anthropic call and stream stored with cache tokens inside input", async () => {
  const [a] = await stored("e2e-anthropic-1", () => anthropic.messages.create({ model: "claude-sonnet-5-5", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] }));
  const [s] = await stored("e2e-anthropic-2", () => anthropic.messages.stream({ model: "claude-sonnet-5-5", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] }).finalMessage());
  for (const e of [a, s]) {
    assert.equal(e.provider, "anthropic");
    assert.equal(e.inputTokens, 1300);
    assert.equal(e.cachedTokens, 1000);
    assert.equal(e.cacheWriteTokens, 200);
    assert.equal(e.outputTokens, 50);
    assert.equal(e.endpointTag, "triage.classify");
  }
});

test("track(): provider-reported cost is kept (costSource client); embeddings", async () => {
  const usage = usageFromOpenRouter({ prompt_tokens: 100, completion_tokens: 20, total_tokens: 120, cost: 0.0004321 });
  br.track({ provider: "openrouter", model: "anthropic/claude-sonnet-4", endpointTag: "router.test", externalRequestId: "e2e-track-1", usage, latencyMs: 12 });
  await openai.embeddings.create({ model: "text-embedding-3-small", input: "hello" });
  assert.equal(await br.flush(), true);
  const [e] = await server.eventsById("e2e-track-1");
  assert.equal(e.costSource, "client");
  assert.ok(Math.abs(e.costUsd - 0.0004321) < 1e-12);
  assert.equal(e.latencyMs, 12);
});

test("every event shape the SDK produces is accepted (no rejects); duplicates are recognised", async () => {
  const before = br.stats();
  const ev = { provider: "google", model: "gemini-2.5-flash", endpointTag: "dup.test", externalRequestId: "e2e-dup-1", usage: null, status: "timeout", errorCode: "timeout" };
  br.track(ev);
  assert.equal(await br.flush(), true);
  br.track(ev);
  assert.equal(await br.flush(), true);
  const s = br.stats();
  assert.equal(s.duplicates - before.duplicates, 1);
  assert.equal(s.rejected, 0, `rejected events; last error: ${s.lastError}`);
});

test("workspace paused (402): the app's call succeeds, sending pauses, resumes after", async () => {
  const paused = new Burnrate({ url: server.url, apiKey: server.ingestKey, flushIntervalMs: 50, pauseOnPaymentRequiredMs: 300, flushOnExit: false, logger: (m) => logs.push(m) });
  const client = paused.wrapOpenAI(new OpenAI({ apiKey: "k", baseURL: fp.url + "/v1" }), { endpointTag: "paused.test" });
  server.cli("workspaces", "pause", "default");
  await server.waitIngestPaused(true);
  try {
    const t0 = performance.now();
    await paused.withContext({ externalRequestId: "e2e-paused-1" }, () => client.chat.completions.create(CHAT));
    assert.ok(performance.now() - t0 < 1000);
    const end = Date.now() + 3000;
    while (!paused.stats().paused && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(paused.stats().paused, true, JSON.stringify(paused.stats()));
  } finally {
    server.cli("workspaces", "resume", "default");
  }
  const end = Date.now() + 5000;
  while (paused.stats().sent < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const [e] = await server.eventsById("e2e-paused-1");
  assert.ok(e, "delivered after resume");
  await paused.close(1000);
});

test("guard(): POST /v1/guard answered by the real server (no budget: allowed)", async () => {
  const d = await br.guard({ endpointTag: "support.reply", model: "gpt-4o-mini", provider: "openai" });
  assert.equal(d.allow, true);
  assert.equal(d.degraded, false, "the server answered; the SDK did not fail open");
  assert.equal(d.reason, "ok");
});
