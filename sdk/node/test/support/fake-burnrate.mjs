// A tiny burnrate stand-in: records batches, or misbehaves on demand
// (mode: ok | slow | 429 | 402 | 500 | 401 | hang).
import http from "node:http";

export async function startFakeBurnrate({ mode = "ok", slowMs = 2000, retryAfter = "1" } = {}) {
  const batches = [];
  const hits = [];
  const state = { mode };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      hits.push({ path: req.url, at: Date.now(), headers: req.headers, mode: state.mode, body: text });
      const reply = (status, body, headers = {}) => {
        if (res.destroyed) return;
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(JSON.stringify(body));
      };
      if (req.url === "/v1/guard" && state.guard) {
        const g = state.guard;
        const send = () => reply(g.status ?? 200, g.body);
        return g.delayMs ? setTimeout(send, g.delayMs) : send();
      }
      if (state.handler && req.url === "/v1/ingest/batch") {
        let events = null;
        try {
          events = JSON.parse(text);
        } catch {
          events = null;
        }
        const r = state.handler(events, req);
        if (r) {
          if (r.status === 202 && Array.isArray(events)) batches.push(events.filter((_, i) => !(r.body?.rejected ?? []).some((x) => x.index === i)));
          return reply(r.status, r.body ?? {}, r.headers ?? {});
        }
      }
      switch (state.mode) {
        case "hang":
          return;
        case "slow":
          return setTimeout(() => reply(202, { accepted: 0, duplicates: 0, rejected: [] }), slowMs);
        case "429":
          return reply(429, { error: "rate limited" }, { "retry-after": retryAfter });
        case "402":
          return reply(402, { error: "workspace paused" });
        case "500":
          return reply(500, { error: "boom" });
        case "401":
          return reply(401, { error: "bad key" });
        default: {
          let events = [];
          try {
            events = JSON.parse(text);
          } catch {
            return reply(400, { error: "bad json" });
          }
          batches.push(events);
          return reply(202, { accepted: events.length, duplicates: 0, rejected: [] });
        }
      }
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    batches,
    hits,
    events: () => batches.flat(),
    setMode(m) {
      state.mode = m;
    },
    setHandler(h) {
      state.handler = h;
    },
    setGuard(g) {
      state.guard = g;
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A URL where nothing listens (burnrate down). */
export async function deadUrl() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}
