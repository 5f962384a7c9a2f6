// Both builds load (ESM import and CommonJS require, through the package's exports map)
// and expose the same API; the shipped types check in a TypeScript consumer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL("..", import.meta.url));

test("ESM and CJS builds both load by package name and export the same API", async () => {
  const esm = await import("burnrate-sdk");
  const cjs = require("burnrate-sdk");
  assert.ok(require.resolve("burnrate-sdk").endsWith("dist/cjs/index.js"));
  assert.ok(import.meta.resolve("burnrate-sdk").endsWith("dist/esm/index.js"));
  assert.deepEqual(Object.keys(esm).filter((k) => k !== "default").sort(), Object.keys(cjs).filter((k) => k !== "__esModule").sort());
  for (const mod of [esm, cjs]) {
    assert.equal(typeof mod.Burnrate, "function");
    const br = new mod.Burnrate({ url: "", logger: () => {} });
    assert.equal(typeof br.wrapOpenAI, "function");
    assert.equal(mod.usageFromOpenAIChat({ prompt_tokens: 3, completion_tokens: 4 }).outputTokens, 4);
    assert.equal(mod.pseudonymize("u", "s"), esm.pseudonymize("u", "s"));
    assert.ok(new mod.BudgetExceededError(mod.parseGuardResponse({ allow: false })) instanceof Error);
  }
});

test("CJS build works from a plain CommonJS program, ESM from a module", () => {
  const cjsOut = execFileSync(process.execPath, ["-e", "const { Burnrate } = require('burnrate-sdk'); const b = new Burnrate({ url: '' }); console.log(typeof b.track, typeof b.stats().dropped)"], { cwd: root, encoding: "utf8" });
  assert.equal(cjsOut.trim(), "function object");
  const esmOut = execFileSync(process.execPath, ["--input-type=module", "-e", "import { Burnrate } from 'burnrate-sdk'; console.log(typeof new Burnrate({ url: '' }).withContext)"], { cwd: root, encoding: "utf8" });
  assert.equal(esmOut.trim(), "function");
});

test("zero runtime dependencies, types shipped for both builds", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.exports["."].import.types, "./dist/esm/index.d.ts");
  assert.equal(pkg.exports["."].require.types, "./dist/cjs/index.d.ts");
  readFileSync(new URL("../dist/esm/index.d.ts", import.meta.url));
  readFileSync(new URL("../dist/cjs/index.d.ts", import.meta.url));
});

test("the shipped .d.ts type-check in an ESM and a CJS TypeScript consumer", () => {
  const tsc = require.resolve("typescript/bin/tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", "test/types/tsconfig.json"], { cwd: root, encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});
