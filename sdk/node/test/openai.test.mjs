import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFakeProvider, OPENAI_CHAT_USAGE } from "./support/fake-provider.mjs";
import { capturing } from "./support/harness.mjs";
import { deadUrl } from "./support/fake-burnrate.mjs";

let fp, cap, raw, client;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] };

before(async () => {
  fp = await startFakeProvider();
  cap = await capturing();
  raw = new OpenAI({ apiKey: "sk-test", baseURL: fp.url + "/v1" });
  client = cap.br.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: fp.url + "/v1" }), { endpointTag: "support.reply", promptVersion: "support_v9" });
});
after(async () => {
  await cap.close();
  await fp.close();
});

/** Events delivered since the last call. */
let seen = 0;
async function newEvents() {
  const all = await cap.events();
  const out = all.slice(seen);
  seen = all.length;
  return out;
}
const strip = (o) => JSON.parse(JSON.stringify(o, (k, v) => (k === "id" || k === "created" || k === "created_at" || k === "item_id" ? undefined : v)));

test("chat.completions.create: same result, one event with the contract fields", async () => {
  const t0 = Date.now();
  const res = await client.chat.completions.create(CHAT);
  const ref = await raw.chat.completions.create(CHAT);
  assert.deepEqual(strip(res), strip(ref));
  assert.match(res._request_id, /^req_/);
  const [e, ...rest] = await newEvents();
  assert.equal(rest.length, 0);
  assert.match(e.externalRequestId, UUID);
  assert.equal(e.attempt, 1);
  assert.ok(Math.abs(Date.parse(e.timestamp) - t0) < 1000);
  assert.match(e.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.equal(e.provider, "openai");
  assert.equal(e.model, "gpt-4o-mini");
  assert.equal(e.endpointTag, "support.reply");
  assert.equal(e.promptVersion, "support_v9");
  assert.equal(e.operation, "chat");
  assert.equal(e.status, "success");
  assert.equal(e.usageMissing, false);
  assert.equal(e.inputTokens, OPENAI_CHAT_USAGE.prompt_tokens);
  assert.equal(e.cachedTokens, OPENAI_CHAT_USAGE.prompt_tokens_details.cached_tokens);
  assert.equal(e.outputTokens, OPENAI_CHAT_USAGE.completion_tokens);
  assert.equal(e.reasoningTokens, 64);
  assert.equal(e.totalTokens, e.inputTokens + e.outputTokens);
  assert.equal(e.dataMode, "real");
  assert.equal(e.environment, "prod");
  assert.equal(e.serviceTier, "standard");
  assert.ok(e.latencyMs >= 0 && e.latencyMs < 5000);
  assert.equal(e.errorCode, undefined);
});

test("the APIPromise helpers still work: withResponse, asResponse", async () => {
  const p = client.chat.completions.create(CHAT);
  assert.equal(p.constructor.name, "APIPromise");
  const { data, response, request_id } = await p.withResponse();
  assert.equal(response.status, 200);
  assert.match(request_id, /^req_/);
  assert.equal(data.choices[0].message.content, "Hello! How can I help?");
  const [e] = await newEvents();
  assert.equal(e.inputTokens, 1200);

  const rawRes = await client.chat.completions.create(CHAT).asResponse();
  const body = await rawRes.json();
  assert.equal(body.usage.prompt_tokens, 1200);
  const [e2] = await newEvents();
  assert.equal(e2.status, "success");
  assert.equal(e2.usageMissing, true, "raw response read by the caller: usage unknown to the SDK");
});

test("service_tier flex is recorded", async () => {
  await client.chat.completions.create({ ...CHAT, service_tier: "flex" });
  const [e] = await newEvents();
  assert.equal(e.serviceTier, "flex");
});

async function collect(stream) {
  const out = [];
  for await (const c of stream) out.push(c);
  return out;
}

test("streaming: include_usage added for us, the extra chunk hidden, chunks identical", async () => {
  fp.clear();
  const mine = await collect(await client.chat.completions.create({ ...CHAT, stream: true }));
  const ref = await collect(await raw.chat.completions.create({ ...CHAT, stream: true }));
  assert.deepEqual(strip(mine), strip(ref), "caller sees exactly what an unwrapped client sees");
  assert.ok(mine.every((c) => !("usage" in c)));
  assert.equal(fp.requests[0].body.stream_options.include_usage, true, "the SDK asked for usage");
  assert.equal(fp.requests[1].body.stream_options, undefined);
  const [e] = await newEvents();
  assert.equal(e.status, "success");
  assert.equal(e.usageMissing, false);
  assert.equal(e.inputTokens, 1200);
  assert.equal(e.outputTokens, 300);
});

test("streaming: a caller who asked for usage gets the usage chunk", async () => {
  const req = { ...CHAT, stream: true, stream_options: { include_usage: true } };
  const mine = await collect(await client.chat.completions.create(req));
  const ref = await collect(await raw.chat.completions.create(req));
  assert.deepEqual(strip(mine), strip(ref));
  assert.deepEqual(mine.at(-1).usage, OPENAI_CHAT_USAGE);
  const [e] = await newEvents();
  assert.equal(e.cachedTokens, 1000);
});

test("streaming: tee() and toReadableStream() still work", async () => {
  const s = await client.chat.completions.create({ ...CHAT, stream: true });
  const [a, b] = s.tee();
  const [ca, cb] = await Promise.all([collect(a), collect(b)]);
  assert.equal(ca.length, 6);
  assert.deepEqual(ca, cb);
  const [e] = await newEvents();
  assert.equal(e.outputTokens, 300);
  const s2 = await client.chat.completions.create({ ...CHAT, stream: true });
  const rs = s2.toReadableStream();
  const reader = rs.getReader();
  let n = 0;
  while (!(await reader.read()).done) n++;
  assert.equal(n, 6);
  const [e2] = await newEvents();
  assert.equal(e2.usageMissing, false);
});

test("streaming: caller breaks early -> cancelled, usage missing", async () => {
  const s = await client.chat.completions.create({ ...CHAT, stream: true });
  for await (const c of s) {
    void c;
    break;
  }
  const [e] = await newEvents();
  assert.equal(e.status, "cancelled");
  assert.equal(e.usageMissing, true);
});

test("streaming: connection cut mid-stream -> one event with usageMissing", async () => {
  fp.options = { stream: { cutAfter: 3 } };
  try {
    const s = await client.chat.completions.create({ ...CHAT, stream: true });
    const got = [];
    let err = null;
    try {
      for await (const c of s) got.push(c);
    } catch (e) {
      err = e;
    }
    const [e] = await newEvents();
    assert.equal(e.usageMissing, true);
    assert.equal(e.status, err ? "error" : "success");
  } finally {
    fp.options = {};
  }
});

test("responses.create plain and streaming, responses.stream helper", async () => {
  const r = await client.responses.create({ model: "gpt-4o-mini", input: "Hi" });
  assert.equal(r.output_text, "Hello!");
  const events = [];
  for await (const ev of await client.responses.create({ model: "gpt-4o-mini", input: "Hi", stream: true })) events.push(ev.type);
  assert.equal(events.at(-1), "response.completed");
  const helper = client.responses.stream({ model: "gpt-4o-mini", input: "Hi" });
  const final = await helper.finalResponse();
  assert.equal(final.usage.input_tokens, 2000);
  const es = await newEvents();
  assert.equal(es.length, 3);
  for (const e of es) {
    assert.equal(e.operation, "responses");
    assert.equal(e.inputTokens, 2000);
    assert.equal(e.cachedTokens, 500);
    assert.equal(e.outputTokens, 400);
    assert.equal(e.reasoningTokens, 128);
    assert.equal(e.status, "success");
  }
});

test("embeddings.create (base64 decoding by the SDK intact)", async () => {
  const r = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
  assert.equal(r.data.length, 2);
  assert.ok(Math.abs(r.data[0].embedding[0] - 0.0123) < 1e-6);
  const [e] = await newEvents();
  assert.equal(e.operation, "embeddings");
  assert.equal(e.model, "text-embedding-3-small");
  assert.equal(e.inputTokens, 8);
  assert.equal(e.outputTokens, 0);
});

test("chat.completions.parse and chat.completions.stream helpers are recorded", async () => {
  const parsed = await client.chat.completions.parse(CHAT);
  assert.equal(parsed.choices[0].message.content, "Hello! How can I help?");
  const s = client.chat.completions.stream({ ...CHAT, stream_options: { include_usage: true } });
  const final = await s.finalChatCompletion();
  assert.equal(final.choices[0].message.content, "Hello! How can I help?");
  const [a, b] = await newEvents();
  assert.equal(a.inputTokens, 1200);
  assert.equal(b.inputTokens, 1200);
  assert.equal(b.status, "success");
});

test("provider SDK retry (429 then success): one event, same id, attempt 2", async () => {
  fp.clear();
  fp.fail("/v1/chat/completions", [429]);
  const res = await client.chat.completions.create(CHAT);
  assert.equal(res.choices.length, 1);
  assert.equal(fp.requests.length, 2, "the SDK retried");
  const es = await newEvents();
  assert.equal(es.length, 1);
  assert.equal(es[0].attempt, 2);
  assert.equal(es[0].status, "success");
  assert.equal(es[0].inputTokens, 1200);
});

test("failed call: error rethrown unchanged, event error/usageMissing/errorCode, attempts counted", async () => {
  fp.fail("/v1/chat/completions", [500, 500, 500]);
  const err = await client.chat.completions.create(CHAT).then(
    () => assert.fail("should throw"),
    (e) => e,
  );
  fp.fail("/v1/chat/completions", [500, 500, 500]);
  const refErr = await raw.chat.completions.create(CHAT).then(
    () => assert.fail("should throw"),
    (e) => e,
  );
  assert.ok(err instanceof OpenAI.InternalServerError);
  assert.equal(err.constructor, refErr.constructor);
  assert.equal(err.status, 500);
  assert.equal(err.message, refErr.message);
  const [e] = await newEvents();
  assert.equal(e.status, "error");
  assert.equal(e.errorCode, "500");
  assert.equal(e.usageMissing, true);
  assert.equal(e.inputTokens, 0);
  assert.equal(e.attempt, 3, "maxRetries=2: three HTTP attempts");
});

test("429 on every retry -> rate_limited", async () => {
  fp.fail("/v1/chat/completions", [429, 429, 429]);
  await assert.rejects(client.chat.completions.create(CHAT), OpenAI.RateLimitError);
  const [e] = await newEvents();
  assert.equal(e.status, "rate_limited");
  assert.equal(e.errorCode, "429");
});

test("timeout and connection errors", async () => {
  const slow = cap.br.wrapOpenAI(new OpenAI({ apiKey: "k", baseURL: fp.url + "/v1", timeout: 100, maxRetries: 0 }), { endpointTag: "t" });
  fp.fail("/v1/chat/completions", [{ status: "hang" }]);
  await assert.rejects(slow.chat.completions.create(CHAT), OpenAI.APIConnectionTimeoutError);
  const [t] = await newEvents();
  assert.equal(t.status, "timeout");
  assert.equal(t.usageMissing, true);

  const down = cap.br.wrapOpenAI(new OpenAI({ apiKey: "k", baseURL: (await deadUrl()) + "/v1", maxRetries: 1 }), { endpointTag: "t" });
  await assert.rejects(down.chat.completions.create(CHAT), OpenAI.APIConnectionError);
  const [c] = await newEvents();
  assert.equal(c.status, "error");
  assert.equal(c.errorCode, "connection_error");
  assert.equal(c.attempt, 2);
});

test("withContext: attribution per request, isolated between concurrent requests", async () => {
  const run = (tenantId, userId) =>
    cap.br.withContext({ tenantId, userId, tags: { plan: tenantId } }, async () => {
      await new Promise((r) => setTimeout(r, 5));
      return cap.br.withContext({ endpointTag: "support.summarize" }, () => client.chat.completions.create(CHAT));
    });
  await Promise.all([run("acme", "ps_u1"), run("globex", "ps_u2")]);
  const es = await newEvents();
  assert.equal(es.length, 2);
  const byTenant = Object.fromEntries(es.map((e) => [e.tenantId, e]));
  assert.equal(byTenant.acme.userId, "ps_u1");
  assert.equal(byTenant.globex.userId, "ps_u2");
  assert.deepEqual(byTenant.acme.tags, { plan: "acme" });
  assert.equal(byTenant.acme.endpointTag, "support.summarize", "context overrides the wrap option");
  assert.equal(byTenant.acme.promptVersion, "support_v9", "wrap option kept");
  await client.chat.completions.create(CHAT);
  const [plain] = await newEvents();
  assert.equal(plain.tenantId, undefined, "no leak outside the context");
});

test("caller's externalRequestId and app-level attempt: provider retries add to it", async () => {
  fp.fail("/v1/chat/completions", [429]);
  await cap.br.withContext({ externalRequestId: "order-77-reply", attempt: 2 }, () => client.chat.completions.create(CHAT));
  const [e] = await newEvents();
  assert.equal(e.externalRequestId, "order-77-reply");
  assert.equal(e.attempt, 3);
});

test("the wrapped client is still the client; the original stays unrecorded", async () => {
  assert.ok(client instanceof OpenAI);
  assert.equal(client.apiKey, "sk-test");
  assert.equal(client.baseURL, fp.url + "/v1");
  const base = new OpenAI({ apiKey: "k", baseURL: fp.url + "/v1" });
  const wrapped = cap.br.wrapOpenAI(base, { endpointTag: "x" });
  await base.chat.completions.create(CHAT);
  assert.equal((await newEvents()).length, 0);
  const child = wrapped.withOptions({ maxRetries: 0 });
  await child.chat.completions.create(CHAT);
  const [e] = await newEvents();
  assert.equal(e.endpointTag, "x", "withOptions() keeps the wrapping");
  // wrapping twice does not double-count attempts
  const twice = cap.br.wrapOpenAI(cap.br.wrapOpenAI(new OpenAI({ apiKey: "k", baseURL: fp.url + "/v1" }), { endpointTag: "a" }), { endpointTag: "b" });
  fp.fail("/v1/chat/completions", [429]);
  await twice.chat.completions.create(CHAT);
  const es = await newEvents();
  assert.equal(es.length, 1, "one event per call");
  assert.equal(es[0].endpointTag, "b", "the second wrap's options win");
  assert.equal(es[0].attempt, 2);
});
