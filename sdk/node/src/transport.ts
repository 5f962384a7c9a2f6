import type { DeliveryStats, LlmEvent, Logger } from "./types.js";

export interface TransportConfig {
  url: string | null;
  apiKey: string | null;
  batchSize: number;
  flushIntervalMs: number;
  queueSize: number;
  timeoutMs: number;
  maxRetries: number;
  pauseOnPaymentRequiredMs: number;
  flushOnExit: boolean;
  fetch: typeof fetch | null;
  log: (key: string, message: string) => void;
}

const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 10_000;
const RETRY_AFTER_CAP_MS = 300_000;
const UNAUTHORIZED_PAUSE_MS = 60_000;

type Outcome = "ok" | "retry" | "dropped";

/** Full-jitter exponential backoff. */
export function backoffMs(failures: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
  return Math.floor(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Retry-After: delta-seconds or an HTTP date. Default 1 s, capped at 5 min. */
export function parseRetryAfter(value: string | null | undefined, nowMs = Date.now()): number {
  if (value) {
    const s = Number(value.trim());
    if (Number.isFinite(s) && s >= 0) return Math.min(RETRY_AFTER_CAP_MS, Math.ceil(s * 1000));
    const d = Date.parse(value);
    if (Number.isFinite(d)) return Math.min(RETRY_AFTER_CAP_MS, Math.max(0, d - nowMs));
  }
  return 1000;
}

// One beforeExit listener for all live transports.
const live = new Set<Transport>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled || typeof process === "undefined" || typeof process.on !== "function") return;
  exitHookInstalled = true;
  process.on("beforeExit", () => {
    for (const t of live) t.onBeforeExit();
  });
}

/**
 * Bounded in-memory queue + background worker delivering batches to POST /v1/ingest/batch.
 * Nothing here throws to the caller: enqueue() is O(1) and never blocks; all I/O happens on
 * an unref'd timer so it never keeps the process alive.
 */
export class Transport {
  private readonly cfg: TransportConfig;
  private readonly endpoint: string | null;
  private queue: LlmEvent[] = [];
  private sending: Promise<void> | null = null;
  private inFlight = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private kickPending = false;
  private pausedUntil = 0;
  private backoffUntil = 0;
  private failures = 0;
  private batchLimit: number;
  private closed = false;
  private exitFlushes = 0;
  private counters = {
    enqueued: 0,
    sent: 0,
    duplicates: 0,
    rejected: 0,
    queueFull: 0,
    sendFailed: 0,
    unauthorized: 0,
    disabled: 0,
    batchesSent: 0,
    sendErrors: 0,
    retries: 0,
  };
  private lastError: string | null = null;

  constructor(cfg: TransportConfig) {
    this.cfg = cfg;
    this.batchLimit = cfg.batchSize;
    this.endpoint = cfg.url ? cfg.url.replace(/\/+$/, "") + "/v1/ingest/batch" : null;
    if (this.endpoint) {
      this.timer = setInterval(() => this.tick(), cfg.flushIntervalMs);
      if (typeof this.timer.unref === "function") this.timer.unref();
      if (cfg.flushOnExit) {
        live.add(this);
        installExitHook();
      }
    }
  }

  get enabled(): boolean {
    return this.endpoint !== null && !this.closed;
  }

  /** Add one event. Never throws, never blocks. */
  enqueue(event: LlmEvent): void {
    if (!this.enabled) {
      this.counters.disabled++;
      if (!this.closed) this.cfg.log("disabled", "BURNRATE_URL is not set: LLM cost events are discarded");
      return;
    }
    if (this.queue.length >= this.cfg.queueSize) {
      this.counters.queueFull++;
      this.cfg.log("queueFull", `event queue full (${this.cfg.queueSize}): dropping new events`);
      return;
    }
    this.queue.push(event);
    this.counters.enqueued++;
    if (this.queue.length >= this.batchLimit) this.kick();
  }

  /** Schedule a send soon (outside the caller's stack). */
  private kick(): void {
    if (this.kickPending || this.sending) return;
    this.kickPending = true;
    const t = setTimeout(() => {
      this.kickPending = false;
      this.tick();
    }, 0);
    if (typeof t.unref === "function") t.unref();
  }

  private waitUntil(): number {
    return Math.max(this.pausedUntil, this.backoffUntil);
  }

  private tick(): void {
    if (this.sending || this.queue.length === 0 || !this.endpoint) return;
    if (Date.now() < this.waitUntil()) return;
    this.startSend();
  }

  private startSend(): Promise<void> {
    const p: Promise<void> = this.sendOnce()
      .then(
        () => undefined,
        (e) => {
          this.lastError = String(e);
        },
      )
      .finally(() => {
        this.sending = null;
        this.inFlight = 0;
        if (this.queue.length >= this.batchLimit && Date.now() >= this.waitUntil()) this.kick();
      });
    this.sending = p;
    return p;
  }

  private requeue(batch: LlmEvent[]): void {
    this.queue = batch.concat(this.queue);
  }

  private async sendOnce(): Promise<Outcome> {
    const batch = this.queue.splice(0, this.batchLimit);
    if (batch.length === 0) return "ok";
    this.inFlight = batch.length;
    const doFetch = this.cfg.fetch ?? globalThis.fetch;
    let res: Response;
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (this.cfg.apiKey) headers["x-api-key"] = this.cfg.apiKey;
      res = await doFetch(this.endpoint!, {
        method: "POST",
        headers,
        body: JSON.stringify(batch),
        signal: AbortSignal.timeout(this.cfg.timeoutMs),
      });
    } catch (e: any) {
      const what = e && (e.name === "TimeoutError" || e.name === "AbortError") ? "timeout" : "network error";
      return this.failed(batch, `${what}: ${e?.cause?.code ?? e?.message ?? e}`);
    }
    const status = res.status;
    let body: any = null;
    try {
      const text = await res.text();
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (status >= 200 && status < 300) {
      this.failures = 0;
      this.backoffUntil = 0;
      this.counters.batchesSent++;
      const rejected = Array.isArray(body?.rejected) ? body.rejected.length : 0;
      const accepted = typeof body?.accepted === "number" ? body.accepted : batch.length - rejected;
      const duplicates = typeof body?.duplicates === "number" ? body.duplicates : 0;
      // The server counts duplicates apart from accepted; both are delivered.
      this.counters.sent += Math.max(0, accepted) + Math.max(0, duplicates);
      this.counters.duplicates += Math.max(0, duplicates);
      if (rejected > 0) {
        this.counters.rejected += rejected;
        const first = body.rejected[0]?.errors?.[0];
        this.lastError = `server rejected ${rejected} event(s)` + (first ? `: ${first.field}: ${first.message}` : "");
        this.cfg.log("rejected", this.lastError);
      }
      return "ok";
    }
    this.lastError = `HTTP ${status}`;
    if (status === 429) {
      this.pausedUntil = Date.now() + parseRetryAfter(res.headers.get("retry-after"));
      this.requeue(batch);
      return "retry";
    }
    if (status === 402) {
      this.pausedUntil = Date.now() + this.cfg.pauseOnPaymentRequiredMs;
      this.cfg.log("paused", "burnrate answered 402 (workspace paused): sending paused, events are kept in the bounded queue");
      this.requeue(batch);
      return "retry";
    }
    if (status === 401 || status === 403) {
      this.counters.unauthorized += batch.length;
      this.pausedUntil = Date.now() + UNAUTHORIZED_PAUSE_MS;
      this.cfg.log("unauthorized", `burnrate answered ${status}: check BURNRATE_API_KEY (an ingest key); events are dropped`);
      return "dropped";
    }
    if (status === 413 && batch.length > 1) {
      this.batchLimit = Math.max(1, Math.floor(batch.length / 2));
      this.requeue(batch);
      return "retry";
    }
    if (status >= 500 || status === 408) {
      return this.failed(batch, `HTTP ${status}`);
    }
    // Other 4xx: the server will never take these events.
    this.counters.rejected += batch.length;
    this.cfg.log(`http${status}`, `burnrate answered ${status}: ${batch.length} event(s) dropped`);
    return "dropped";
  }

  private failed(batch: LlmEvent[], reason: string): Outcome {
    this.lastError = reason;
    this.counters.sendErrors++;
    this.failures++;
    this.backoffUntil = Date.now() + backoffMs(this.failures);
    if (this.failures > this.cfg.maxRetries) {
      this.counters.sendFailed += batch.length;
      this.failures = 0;
      this.cfg.log("sendFailed", `cannot reach burnrate (${reason}): dropping events after retries`);
      return "dropped";
    }
    this.counters.retries++;
    this.requeue(batch);
    return "retry";
  }

  /**
   * Send everything queued now. Resolves true when the queue is empty, false when it gave up
   * (deadline, server paused/unreachable). Never rejects.
   */
  async flush(timeoutMs = 5000): Promise<boolean> {
    try {
      if (!this.endpoint) return this.queue.length === 0;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (this.sending) await this.sending;
        if (this.queue.length === 0) return true;
        const now = Date.now();
        if (now >= deadline) return false;
        const wait = this.waitUntil() - now;
        if (wait > 0) {
          if (now + wait > deadline) return false;
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
        await this.startSend();
      }
    } catch {
      return false;
    }
  }

  onBeforeExit(): void {
    // beforeExit fires again after our async work; give up after a few rounds.
    if (this.closed || this.queue.length === 0 || this.sending || this.exitFlushes >= 3) return;
    this.exitFlushes++;
    void this.flush(2000);
  }

  /** Flush, then stop the worker. Later events are discarded (counted as disabled). */
  async close(timeoutMs = 5000): Promise<boolean> {
    const ok = await this.flush(timeoutMs);
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    live.delete(this);
    return ok;
  }

  stats(): DeliveryStats {
    const c = this.counters;
    return {
      queued: this.queue.length,
      inFlight: this.inFlight,
      enqueued: c.enqueued,
      sent: c.sent,
      duplicates: c.duplicates,
      rejected: c.rejected,
      dropped: { queueFull: c.queueFull, sendFailed: c.sendFailed, unauthorized: c.unauthorized, disabled: c.disabled },
      batchesSent: c.batchesSent,
      sendErrors: c.sendErrors,
      retries: c.retries,
      paused: Date.now() < this.pausedUntil,
      lastError: this.lastError,
    };
  }
}

export type { Logger };
