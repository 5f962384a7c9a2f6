// guard(): client side of POST /v1/guard (the server side lands in a later issue).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Burnrate, BudgetExceededError } from "../dist/esm/index.js";
import { startFakeBurnrate, deadUrl } from "./support/fake-burnrate.mjs";

let server, br;
before(async () => {
  server = await startFakeBurnrate();
  br = new Burnrate({ url: server.url, apiKey: "gk", flushOnExit: false, logger: () => {}, defaults: { endpointTag: "default.tag" } });
});
after(async () => {
  await br.close(10);
  await server.close();
});

test("allow: resolves with the decision; sends attribution from the context", async () => {
  server.setGuard({ status: 200, body: { allow: true, remainingUsd: 12.5 } });
  const d = await br.withContext({ tenantId: "acme", userId: "ps_x" }, () => br.guard({ model: "gpt-4o-mini", estimatedCostUsd: 0.01 }));
  assert.equal(d.allow, true);
  assert.equal(d.degraded, false);
  assert.equal(d.remainingUsd, 12.5);
  const hit = server.hits.at(-1);
  assert.equal(hit.path, "/v1/guard");
  assert.equal(hit.headers["x-api-key"], "gk");
  const body = JSON.parse(hit.body);
  assert.equal(body.tenantId, "acme");
  assert.equal(body.userId, "ps_x");
  assert.equal(body.endpointTag, "default.tag");
  assert.equal(body.model, "gpt-4o-mini");
  assert.equal(body.estimatedCostUsd, 0.01);
});

test("deny: throws BudgetExceededError carrying the decision (also on a 402/429 answer)", async () => {
  for (const status of [200, 402, 429]) {
    server.setGuard({ status, body: { allow: false, reason: "tenant acme reached its monthly budget", budgetId: "bud_1", limitUsd: 50, spentUsd: 50.2 } });
    const err = await br.guard({ tenantId: "acme" }).catch((e) => e);
    assert.ok(err instanceof BudgetExceededError, `status ${status}`);
    assert.equal(err.name, "BudgetExceededError");
    assert.equal(err.reason, "tenant acme reached its monthly budget");
    assert.equal(err.budgetId, "bud_1");
    assert.equal(err.decision.spentUsd, 50.2);
  }
});

test("fails open: no endpoint (404), garbage, slow (> timeout), or burnrate down", async () => {
  server.setGuard({ status: 404, body: { error: { code: "not_found" } } });
  assert.deepEqual(pick(await br.guard()), { allow: true, degraded: true });
  server.setGuard({ status: 200, body: ["nope"] });
  assert.deepEqual(pick(await br.guard()), { allow: true, degraded: true });
  server.setGuard({ status: 200, body: { allow: false }, delayMs: 2000 });
  const t0 = Date.now();
  assert.deepEqual(pick(await br.guard()), { allow: true, degraded: true });
  assert.ok(Date.now() - t0 < 1200, "bounded by timeoutMs");
  const down = new Burnrate({ url: await deadUrl(), flushOnExit: false, logger: () => {} });
  assert.deepEqual(pick(await down.guard()), { allow: true, degraded: true });
  const none = new Burnrate({ url: "", flushOnExit: false, logger: () => {} });
  assert.deepEqual(pick(await none.guard()), { allow: true, degraded: true });
});

const pick = (d) => ({ allow: d.allow, degraded: d.degraded });
