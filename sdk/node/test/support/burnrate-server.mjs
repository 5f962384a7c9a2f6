// Start the real burnrate binary on port 0 with a temporary database.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const BURNRATE_BIN = process.env.BURNRATE_BIN ?? resolve(here, "..", "..", "..", "..", "target", "debug", "burnrate");

export function requireBinary() {
  if (!existsSync(BURNRATE_BIN)) throw new Error(`burnrate binary not found at ${BURNRATE_BIN} (build it, or set BURNRATE_BIN)`);
}

export async function startBurnrate() {
  requireBinary();
  const dir = mkdtempSync(join(tmpdir(), "burnrate-node-sdk-"));
  const db = join(dir, "burnrate.db");
  const cli = (...args) => execFileSync(BURNRATE_BIN, [...args, "--db", db], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  const ingestKey = cli("keys", "create", "--workspace", "default", "--scope", "ingest");
  const readKey = cli("keys", "create", "--workspace", "default", "--scope", "read");
  const child = spawn(BURNRATE_BIN, ["serve", "--db", db, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolveUrl, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`burnrate serve printed no "listening on" line in 20 s; stderr: ${stderr.slice(-2000)}`)), 20_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1].replace(/\/+$/, ""));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`burnrate serve exited with ${code}; stderr: ${stderr.slice(-2000)}`));
    });
  });
  child.stdout.resume();
  return {
    url,
    db,
    ingestKey,
    readKey,
    cli,
    async events(query = "") {
      const res = await fetch(`${url}/v1/events${query ? "?" + query : ""}`, { headers: { "x-api-key": readKey } });
      if (!res.ok) throw new Error(`GET /v1/events -> ${res.status} ${await res.text()}`);
      return (await res.json()).events;
    },
    async eventsById(id) {
      return this.events(`externalRequestId=${encodeURIComponent(id)}`);
    },
    // Wait until the server's ingest answers as a (paused or live) workspace's would: a
    // pause or resume made with the CLI reaches a running server within 250 ms (its key
    // table), not at once. Probes with an empty batch, which stores nothing (400 live,
    // 402 paused).
    async waitIngestPaused(paused, timeoutMs = 3000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const res = await fetch(`${url}/v1/ingest/batch`, { method: "POST", headers: { "x-api-key": ingestKey, "content-type": "application/json" }, body: "[]" });
        await res.text();
        if ((res.status === 402) === paused) return;
        if (Date.now() > end) throw new Error(`ingest still answers ${res.status} ${timeoutMs} ms after the workspace was ${paused ? "paused" : "resumed"}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
