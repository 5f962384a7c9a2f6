// Delivery: the app never waits on, or fails because of, burnrate.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { Burnrate } from "../dist/esm/index.js";
import { startFakeProvider } from "./support/fake-provider.mjs";
import { startFakeBurnrate, deadUrl } from "./support/fake-burnrate.mjs";
import { capturing, waitFor } from "./support/harness.mjs";

const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] };
const EV = (i = 0) => ({ provider: "google", model: "gemini-2.5-flash", endpointTag: "t", externalRequestId: `ev-${i}`, usage: null });
let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp.close();
});

async function timeCalls(client, n) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await client.chat.completions.create(CHAT);
    times.push(performance.now() - t0);
    assert.equal(r.choices[0].message.content, "Hello! How can I help?");
  }
  return times;
}

for (const mode of ["down", "slow", "hang", "429", "402", "500", "401"]) {
  test(`the app's call succeeds and stays fast when burnrate is ${mode}`, async () => {
    const server = mode === "down" ? null : await startFakeBurnrate({ mode, slowMs: 2000 });
    const url = server ? server.url : await deadUrl();
    const logs = [];
    const br = new Burnrate({ url, apiKey: "secret-ingest-key", batchSize: 1, flushIntervalMs: 20, flushOnExit: false, logger: (m) => logs.push(m) });
    const raw = new OpenAI({ apiKey: "k", baseURL: fp.url + "/v1" });
    const client = br.wrapOpenAI(new OpenAI({ apiKey: "k", baseURL: fp.url + "/v1" }), { endpointTag: "t" });
    await timeCalls(raw, 3); // warm up
    await timeCalls(client, 3);
    const base = await timeCalls(raw, 15);
    const wrapped = await timeCalls(client, 15);
    const sum = (a) => a.reduce((x, y) => x + y, 0);
    assert.ok(Math.max(...wrapped) < 300, `slowest wrapped call ${Math.max(...wrapped).toFixed(1)} ms`);
    assert.ok(sum(wrapped) < sum(base) + 300, `wrapped ${sum(wrapped).toFixed(0)} ms vs plain ${sum(base).toFixed(0)} ms`);
    // flush gives up within its deadline, never rejects
    const t0 = Date.now();
    const ok = await br.flush(800);
    assert.equal(ok, false);
    assert.ok(Date.now() - t0 < 2500, `flush took ${Date.now() - t0} ms`);
    const st = br.stats();
    assert.ok(st.enqueued + st.dropped.queueFull > 0);
    for (const m of logs) assert.ok(!m.includes("secret-ingest-key"), "the key is never logged");
    await br.close(10);
    await server?.close();
  });
}

test("send timeout is 600 ms: a 2 s burnrate costs one 600 ms attempt, then drop + count", async () => {
  const server = await startFakeBurnrate({ mode: "slow", slowMs: 2000 });
  const br = new Burnrate({ url: server.url, maxRetries: 0, flushIntervalMs: 60_000, flushOnExit: false, logger: () => {} });
  br.track(EV());
  const t0 = Date.now();
  await br.flush(3000);
  const took = Date.now() - t0;
  assert.ok(took >= 550 && took < 1500, `took ${took} ms`);
  const st = br.stats();
  assert.equal(st.dropped.sendFailed, 1);
  assert.match(st.lastError, /timeout/);
  await br.close(10);
  await server.close();
});

test("network errors: jittered backoff retries, then drop and count", async () => {
  const server = await startFakeBurnrate({ mode: "500" });
  const br = new Burnrate({ url: server.url, maxRetries: 2, flushIntervalMs: 10, flushOnExit: false, logger: () => {} });
  br.track(EV(1));
  br.track(EV(2));
  await waitFor(() => br.stats().dropped.sendFailed === 2, 5000, "drop after retries");
  assert.equal(server.hits.length, 3, "1 try + 2 retries");
  const gaps = server.hits.slice(1).map((h, i) => h.at - server.hits[i].at);
  assert.ok(gaps.every((g) => g >= 100), `backoff gaps ${gaps}`);
  assert.equal(br.stats().retries, 2);
  await br.close(10);
  await server.close();
});

test("429 honours Retry-After, then delivers", async () => {
  const server = await startFakeBurnrate({ mode: "429", retryAfter: "1" });
  const br = new Burnrate({ url: server.url, flushIntervalMs: 20, flushOnExit: false, logger: () => {} });
  br.track(EV(1));
  await waitFor(() => br.stats().paused, 2000, "paused by the 429");
  assert.equal(server.hits.length, 1);
  assert.equal(await br.flush(300), false, "flush does not wait out a long Retry-After past its deadline");
  server.setMode("ok");
  await waitFor(() => server.events().length === 1, 3000, "delivery after Retry-After");
  const [first, second] = server.hits;
  assert.ok(second.at - first.at >= 950, `resent after ${second.at - first.at} ms`);
  await waitFor(() => br.stats().sent === 1, 2000, "sent counted");
  await br.close(10);
  await server.close();
});

test("402 pauses sending, logs once, keeps events; resumes later", async () => {
  const server = await startFakeBurnrate({ mode: "402" });
  const logs = [];
  const br = new Burnrate({ url: server.url, flushIntervalMs: 20, pauseOnPaymentRequiredMs: 300, flushOnExit: false, logger: (m) => logs.push(m) });
  br.track(EV(1));
  await waitFor(() => server.hits.length >= 1, 2000, "first hit");
  br.track(EV(2));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.hits.length, 1, "paused: no hammering");
  assert.equal(br.stats().paused, true);
  assert.equal(br.stats().queued, 2);
  await waitFor(() => server.hits.length >= 2, 2000, "probe after pause");
  assert.equal(logs.filter((m) => m.includes("402")).length, 1, "logged once");
  server.setMode("ok");
  await waitFor(() => server.events().length === 2, 3000, "delivery after resume");
  await br.close(10);
  await server.close();
});

test("401 drops and counts, logs without the key", async () => {
  const server = await startFakeBurnrate({ mode: "401" });
  const logs = [];
  const br = new Burnrate({ url: server.url, apiKey: "br_live_supersecret", flushOnExit: false, logger: (m) => logs.push(m) });
  br.track(EV());
  await br.flush(1000);
  assert.equal(br.stats().dropped.unauthorized, 1);
  assert.equal(logs.length, 1);
  assert.ok(!logs[0].includes("supersecret"));
  assert.equal(server.hits[0].headers["x-api-key"], "br_live_supersecret");
  await br.close(10);
  await server.close();
});

test("queue full: the newest events are dropped and counted", async () => {
  const server = await startFakeBurnrate();
  const br = new Burnrate({ url: server.url, queueSize: 5, batchSize: 100, flushIntervalMs: 60_000, flushOnExit: false, logger: () => {} });
  for (let i = 0; i < 10; i++) br.track(EV(i));
  const st = br.stats();
  assert.equal(st.queued, 5);
  assert.equal(st.dropped.queueFull, 5);
  assert.equal(await br.flush(), true);
  assert.deepEqual(server.events().map((e) => e.externalRequestId), ["ev-0", "ev-1", "ev-2", "ev-3", "ev-4"]);
  await br.close(10);
  await server.close();
});

test("batches respect batchSize; the worker sends on its interval", async () => {
  const server = await startFakeBurnrate();
  const br = new Burnrate({ url: server.url, batchSize: 3, flushIntervalMs: 30, flushOnExit: false, logger: () => {} });
  for (let i = 0; i < 7; i++) br.track(EV(i));
  await waitFor(() => br.stats().sent === 7, 3000, "all delivered by the worker");
  assert.ok(server.batches.every((b) => b.length <= 3));
  assert.equal(server.hits[0].headers["content-type"], "application/json");
  assert.equal(br.stats().batchesSent, server.batches.length);
  await br.close(10);
  await server.close();
});

test("413 halves the batch; 202 with rejected[] is counted", async () => {
  const server = await startFakeBurnrate();
  server.setHandler((events) => {
    if (events.length > 2) return { status: 413, body: { error: "too large" } };
    const bad = events.findIndex((e) => e.externalRequestId === "ev-3");
    return {
      status: 202,
      body: { accepted: events.length - (bad >= 0 ? 1 : 0), duplicates: 0, rejected: bad >= 0 ? [{ index: bad, errors: [{ field: "model", message: "bad" }] }] : [] },
    };
  });
  const br = new Burnrate({ url: server.url, batchSize: 8, flushIntervalMs: 60_000, flushOnExit: false, logger: () => {} });
  for (let i = 0; i < 6; i++) br.track(EV(i));
  assert.equal(await br.flush(), true);
  const st = br.stats();
  assert.equal(st.sent, 5);
  assert.equal(st.rejected, 1);
  assert.equal(server.events().length, 5);
  await br.close(10);
  await server.close();
});

test("nothing the SDK does throws into the caller", async () => {
  const br = new Burnrate({
    url: "http://127.0.0.1:1",
    flushOnExit: false,
    logger: () => {
      throw new Error("bad logger");
    },
    fetch: () => {
      throw new Error("bad fetch");
    },
  });
  assert.doesNotThrow(() => br.track(null));
  assert.doesNotThrow(() => br.track({}));
  assert.doesNotThrow(() => br.track({ provider: 1, model: {}, usage: { inputTokens: "x" }, tags: { a: 1n }, timestamp: "garbage" }));
  const circular = {};
  circular.self = circular;
  assert.doesNotThrow(() => br.track({ provider: "x", model: "y", endpointTag: "z", tags: circular }));
  assert.equal(await br.flush(500), false);
  assert.equal(typeof br.stats().queued, "number");
  assert.equal(br.wrapOpenAI(null), null);
  assert.equal(br.wrapAnthropic(42), 42);
  const r = br.withContext(null, () => 7);
  assert.equal(r, 7);
  await br.close(10);
});

function runChild(code, env = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], {
      env: { ...process.env, ...env },
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("exit", (code) => resolve({ code, ms: Date.now() - t0, out }));
  });
}

const SDK = new URL("../dist/esm/index.js", import.meta.url).href;

test("flush at process exit (beforeExit) delivers what is queued", async () => {
  const server = await startFakeBurnrate();
  const r = await runChild(
    `import { Burnrate } from ${JSON.stringify(SDK)};
     const br = new Burnrate({ flushIntervalMs: 600000 });
     br.track({ provider: "mistral", model: "mistral-large", endpointTag: "exit.test", usage: null });`,
    { BURNRATE_URL: server.url, BURNRATE_API_KEY: "k" },
  );
  assert.equal(r.code, 0, r.out);
  assert.equal(server.events().length, 1);
  assert.equal(server.events()[0].endpointTag, "exit.test");
  await server.close();
});

test("the SDK never keeps the process alive (idle, or burnrate hanging)", async () => {
  const idle = await runChild(`import { Burnrate } from ${JSON.stringify(SDK)}; new Burnrate({ url: "http://127.0.0.1:9" });`);
  assert.equal(idle.code, 0, idle.out);
  assert.ok(idle.ms < 3000, `idle exit took ${idle.ms} ms`);
  const server = await startFakeBurnrate({ mode: "hang" });
  const hung = await runChild(
    `import { Burnrate } from ${JSON.stringify(SDK)};
     const br = new Burnrate({ url: ${JSON.stringify(server.url)}, logger: () => {} });
     br.track({ provider: "x", model: "y", endpointTag: "z", usage: null });`,
  );
  assert.equal(hung.code, 0, hung.out);
  assert.ok(hung.ms < 6000, `exit with a hanging burnrate took ${hung.ms} ms`);
  await server.close();
});

test("the old BURNRATE_KEY env var still works, with a deprecation note on stderr", async () => {
  const server = await startFakeBurnrate();
  const r = await runChild(
    `import { Burnrate } from ${JSON.stringify(SDK)};
     const br = new Burnrate();
     br.track({ provider: "mistral", model: "mistral-large", endpointTag: "old.key", usage: null });
     await br.flush(2000);`,
    { BURNRATE_URL: server.url, BURNRATE_API_KEY: "", BURNRATE_KEY: "old-key" },
  );
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /BURNRATE_KEY is deprecated; set BURNRATE_API_KEY instead/);
  const hit = server.hits.find((h) => h.path === "/v1/ingest/batch");
  assert.ok(hit, "no batch reached the server");
  assert.equal(hit.headers["x-api-key"], "old-key");
  await server.close();
});

test("BURNRATE_API_KEY wins over the old name, without a note", async () => {
  const server = await startFakeBurnrate();
  const r = await runChild(
    `import { Burnrate } from ${JSON.stringify(SDK)};
     const br = new Burnrate();
     br.track({ provider: "mistral", model: "mistral-large", endpointTag: "new.key", usage: null });
     await br.flush(2000);`,
    { BURNRATE_URL: server.url, BURNRATE_API_KEY: "new-key", BURNRATE_KEY: "old-key" },
  );
  assert.equal(r.code, 0, r.out);
  assert.doesNotMatch(r.out, /BURNRATE_KEY/);
  assert.equal(server.hits.find((h) => h.path === "/v1/ingest/batch").headers["x-api-key"], "new-key");
  await server.close();
});

test("tag keys outside the server's charset become underscores (the server rejects the whole event otherwise)", async () => {
  const cap = await capturing();
  cap.br.track({ provider: "x", model: "y", endpointTag: "z", usage: null,
    tags: { "team name": "a", "région/zone": "b", "ok_key-1.x": "c", [" ".repeat(3)]: "dropped", ["k".repeat(80)]: "d" } });
  const [ev] = await cap.events();
  assert.deepEqual(ev.tags, { team_name: "a", r_gion_zone: "b", "ok_key-1.x": "c", ["k".repeat(64)]: "d" });
  await cap.close();
});
