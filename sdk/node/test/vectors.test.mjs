// The shared usage vectors (testdata/usage-vectors.json, authored by the Python SDK helper):
// every SDK and the server's validator run the same cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { usageFromShape, USAGE_SHAPES } from "../dist/esm/index.js";

const file = process.env.BURNRATE_VECTORS ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "testdata", "usage-vectors.json");
const FIELDS = ["inputTokens", "cachedTokens", "cacheWriteTokens", "outputTokens", "reasoningTokens"];

test("shared vectors file exists", () => {
  assert.ok(existsSync(file), `shared vectors not found at ${file}`);
});

const doc = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : { format: 1, cases: [] };

test("vectors format", () => {
  assert.equal(doc.format, 1);
  assert.ok(Array.isArray(doc.cases) && doc.cases.length > 0, "no cases");
  for (const c of doc.cases) assert.ok(c.shape in USAGE_SHAPES, `unknown shape ${c.shape} in "${c.name}"`);
});

for (const c of doc.cases) {
  test(`vector [${c.shape}] ${c.name}`, () => {
    const got = usageFromShape(c.shape, c.usage);
    assert.ok(got, "mapping returned null");
    for (const f of FIELDS) assert.equal(got[f], c.expected[f] ?? 0, f);
    const exp = c.expected.costUsd ?? null;
    if (exp === null) assert.equal(got.costUsd, null, "costUsd");
    else {
      assert.notEqual(got.costUsd, null, "costUsd");
      assert.ok(Math.abs(got.costUsd - exp) <= 1e-12, `costUsd ${got.costUsd} != ${exp}`);
    }
    // the expected values are themselves contract-valid
    assert.ok(got.cachedTokens + got.cacheWriteTokens <= got.inputTokens);
    assert.ok(got.reasoningTokens <= got.outputTokens);
  });
}
