import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { startFakeProvider, ANTHROPIC_USAGE } from "./support/fake-provider.mjs";
import { capturing } from "./support/harness.mjs";

let fp, cap, raw, client;
const MODEL = "claude-sonnet-5-5";
const REQ = { model: MODEL, max_tokens: 256, messages: [{ role: "user", content: "Hi" }] };
const INPUT = ANTHROPIC_USAGE.input_tokens + ANTHROPIC_USAGE.cache_read_input_tokens + ANTHROPIC_USAGE.cache_creation_input_tokens;

before(async () => {
  fp = await startFakeProvider();
  cap = await capturing();
  raw = new Anthropic({ apiKey: "sk-ant-test", baseURL: fp.url });
  client = cap.br.wrapAnthropic(new Anthropic({ apiKey: "sk-ant-test", baseURL: fp.url }), { endpointTag: "triage.classify", tenantId: "acme" });
});
after(async () => {
  await cap.close();
  await fp.close();
});

let seen = 0;
async function newEvents() {
  const all = await cap.events();
  const out = all.slice(seen);
  seen = all.length;
  return out;
}
const strip = (o) => JSON.parse(JSON.stringify(o, (k, v) => (k === "id" ? undefined : v)));

function assertUsage(e) {
  assert.equal(e.provider, "anthropic");
  assert.equal(e.model, MODEL);
  assert.equal(e.inputTokens, INPUT);
  assert.equal(e.cachedTokens, ANTHROPIC_USAGE.cache_read_input_tokens);
  assert.equal(e.cacheWriteTokens, ANTHROPIC_USAGE.cache_creation_input_tokens);
  assert.equal(e.outputTokens, ANTHROPIC_USAGE.output_tokens);
  assert.equal(e.usageMissing, false);
  assert.equal(e.status, "success");
}

test("messages.create: same result, event with cache tokens in input", async () => {
  const m = await client.messages.create(REQ);
  const ref = await raw.messages.create(REQ);
  assert.deepEqual(strip(m), strip(ref));
  const [e, ...rest] = await newEvents();
  assert.equal(rest.length, 0);
  assertUsage(e);
  assert.equal(e.endpointTag, "triage.classify");
  assert.equal(e.tenantId, "acme");
  assert.equal(e.attempt, 1);
});

test("messages.create(...).withResponse() still works", async () => {
  const { data, response } = await client.messages.create(REQ).withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.content[0].text, "Hello! How can I help?");
  assertUsage((await newEvents())[0]);
});

test("messages.create stream: true: events identical, message_start input + last message_delta output", async () => {
  const mine = [];
  for await (const ev of await client.messages.create({ ...REQ, stream: true })) mine.push(ev);
  const ref = [];
  for await (const ev of await raw.messages.create({ ...REQ, stream: true })) ref.push(ev);
  assert.deepEqual(strip(mine), strip(ref));
  assert.equal(mine.filter((e) => e.type === "message_delta").length, 2);
  const [e] = await newEvents();
  assertUsage(e);
});

test("messages.stream helper: finalMessage works, event recorded", async () => {
  const stream = client.messages.stream(REQ);
  let text = "";
  stream.on("text", (t) => (text += t));
  const final = await stream.finalMessage();
  assert.equal(text, "Hello! How can I help?");
  assert.equal(final.usage.output_tokens, 50);
  const [e] = await newEvents();
  assertUsage(e);
});

test("messages.stream helper: failure keeps the helper's error behaviour and records it", async () => {
  fp.fail("/v1/messages", [500, 500, 500]);
  const stream = client.messages.stream(REQ);
  const err = await stream.finalMessage().then(
    () => assert.fail("should fail"),
    (e) => e,
  );
  assert.ok(err instanceof Anthropic.InternalServerError);
  const [e] = await newEvents();
  assert.equal(e.status, "error");
  assert.equal(e.errorCode, "500");
  assert.equal(e.usageMissing, true);
  assert.equal(e.attempt, 3);
});

test("retry 429 then success: one event, attempt 2", async () => {
  fp.clear();
  fp.fail("/v1/messages", [429]);
  await client.messages.create(REQ);
  assert.equal(fp.requests.length, 2);
  const es = await newEvents();
  assert.equal(es.length, 1);
  assert.equal(es[0].attempt, 2);
  assertUsage(es[0]);
});

test("errors rethrown unchanged: 429 exhausted -> rate_limited, 529 overloaded -> error", async () => {
  fp.fail("/v1/messages", [429, 429, 429]);
  const err = await client.messages.create(REQ).catch((e) => e);
  assert.ok(err instanceof Anthropic.RateLimitError);
  assert.equal(err.error.error.type, "rate_limit_error");
  const [e] = await newEvents();
  assert.equal(e.status, "rate_limited");
  assert.equal(e.usageMissing, true);

  const noRetry = client.withOptions({ maxRetries: 0 });
  fp.fail("/v1/messages", [529]);
  await assert.rejects(noRetry.messages.create(REQ), (x) => x.status === 529);
  const [o] = await newEvents();
  assert.equal(o.status, "error");
  assert.equal(o.errorCode, "529");
  assert.equal(o.attempt, 1);
  assert.equal(o.endpointTag, "triage.classify");
});

test("stream: true with an error before the stream starts", async () => {
  fp.fail("/v1/messages", [{ status: 400 }]);
  await assert.rejects(client.messages.create({ ...REQ, stream: true }), Anthropic.BadRequestError);
  const [e] = await newEvents();
  assert.equal(e.status, "error");
  assert.equal(e.errorCode, "400");
});

test("beta.messages.create is recorded too; other resources pass through", async () => {
  const m = await client.beta.messages.create(REQ);
  assert.equal(m.content[0].text, "Hello! How can I help?");
  assertUsage((await newEvents())[0]);
  assert.equal(typeof client.models.list, "function");
  assert.ok(client instanceof Anthropic);
});
