import { Burnrate } from "../../dist/esm/index.js";
import { startFakeBurnrate } from "./fake-burnrate.mjs";

/** A Burnrate client delivering to a recording fake burnrate. */
export async function capturing(opts = {}) {
  const sink = await startFakeBurnrate();
  const logs = [];
  const br = new Burnrate({ url: sink.url, apiKey: "test-key", flushOnExit: false, logger: (m) => logs.push(m), ...opts });
  return {
    br,
    sink,
    logs,
    /** Flush and return every event received so far. */
    async events() {
      await br.flush();
      return sink.events();
    },
    async close() {
      await br.close(1000);
      await sink.close();
    },
  };
}

export const quiet = { logger: () => {} };

/** Wait until fn() is truthy (polling), or throw after ms. */
export async function waitFor(fn, ms = 3000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
