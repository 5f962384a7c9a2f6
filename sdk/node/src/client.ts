import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { wrapAnthropicClient } from "./anthropic.js";
import { attributionStorage } from "./context.js";
import { BudgetExceededError } from "./errors.js";
import { classifyError, type CallReport, type CallSink } from "./instrument.js";
import { wrapOpenAIClient } from "./openai.js";
import { Transport } from "./transport.js";
import { roundUsd } from "./usage.js";
import type {
  Attribution,
  BurnrateOptions,
  CallContext,
  DataMode,
  DeliveryStats,
  Environment,
  GuardDecision,
  GuardRequest,
  LlmEvent,
  Operation,
  ServiceTier,
  Status,
  Usage,
  WrapOptions,
} from "./types.js";

const STATUSES: ReadonlySet<string> = new Set(["success", "error", "timeout", "rate_limited", "cancelled"]);
const OPERATIONS: ReadonlySet<string> = new Set(["chat", "responses", "embeddings", "image", "audio"]);
const TIERS: ReadonlySet<string> = new Set(["standard", "batch", "flex", "priority"]);
const ENVIRONMENTS: ReadonlySet<string> = new Set(["prod", "staging", "dev"]);
const DATA_MODES: ReadonlySet<string> = new Set(["real", "test", "demo"]);
const MAX_STR = 128;
const MAX_TAGS = 10;
const MAX_TAG_KEY = 64;
/** The server accepts tag keys of these characters only (and rejects the whole event otherwise). */
const TAG_KEY_OUTSIDE = /[^A-Za-z0-9_.-]/g;

/** What track() accepts: a call to any provider, with the usage the caller read from it. */
export interface TrackInput extends CallContext {
  provider: string;
  model: string;
  /** Normalised usage (use one of the usageFrom* functions); null/undefined = provider returned none. */
  usage?: Usage | null;
  latencyMs?: number;
  status?: Status;
  errorCode?: string;
  operation?: Operation;
  serviceTier?: ServiceTier;
  /** When the call started (default: now). */
  timestamp?: Date | string | number;
  /** Exact cost reported by the provider (else usage.costUsd; else the server prices it). */
  costUsd?: number;
}

/** trackCall(): like track(), but times `fn` and records its outcome. */
export interface TrackCallInput<R> extends Omit<TrackInput, "usage" | "latencyMs" | "status" | "errorCode" | "timestamp"> {
  /** Read the usage from fn's result, e.g. (r) => usageFromGemini(r.usageMetadata). */
  usageFrom?: (result: R) => Usage | null;
}

export { BudgetExceededError };

function str(x: unknown): string | undefined {
  if (x === undefined || x === null) return undefined;
  const s = typeof x === "string" ? x : String(x);
  return s.length > MAX_STR ? s.slice(0, MAX_STR) : s;
}

function int(x: unknown, def: number, min = 0): number {
  return typeof x === "number" && Number.isFinite(x) && x >= min ? Math.floor(x) : def;
}

function mergeTags(...sources: Array<Record<string, string> | undefined>): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const src of sources) {
    if (!src || typeof src !== "object") continue;
    for (const k of Object.keys(src)) {
      const v = (src as any)[k];
      if (v === undefined || v === null) continue;
      out = out ?? {};
      const key = k.trim().slice(0, MAX_TAG_KEY).replace(TAG_KEY_OUTSIDE, "_");
      if (!key) continue;
      if (!(key in out) && Object.keys(out).length >= MAX_TAGS) continue;
      out[key] = String(v).slice(0, MAX_STR);
    }
  }
  return out;
}

/** HMAC-SHA256 of `id` with `secret`, hex, prefixed "ps_": a stable pseudonymous user id. */
export function pseudonymize(id: string, secret: string): string {
  return "ps_" + createHmac("sha256", secret).update(String(id), "utf8").digest("hex");
}

function num(x: unknown): number | null {
  if (typeof x === "number" && Number.isFinite(x)) return x;
  if (typeof x === "string" && x.trim() !== "" && Number.isFinite(Number(x))) return Number(x);
  return null;
}

/**
 * Parse the JSON answer of POST /v1/guard. Returns null when it carries no boolean
 * `allow` (or `allowed`), i.e. when it is not a guard decision.
 */
export function parseGuardResponse(body: unknown): GuardDecision | null {
  if (!body || typeof body !== "object" || Array.isArray(body)) return null;
  const b = body as Record<string, any>;
  const allow = typeof b.allow === "boolean" ? b.allow : typeof b.allowed === "boolean" ? b.allowed : null;
  if (allow === null) return null;
  const s = (x: unknown) => (typeof x === "string" && x ? x : null);
  // Ids are integers on the server; keep them as strings here so callers compare one type.
  const id = (x: unknown) => s(x) ?? (typeof x === "number" && Number.isFinite(x) ? String(x) : null);
  // The server answers `budgets: [{id, remaining, state}]`: the budget that decided is the
  // first exceeded one (a denial), else the one with the least left.
  const listed: Record<string, any>[] = Array.isArray(b.budgets)
    ? b.budgets.filter((x: unknown) => x && typeof x === "object")
    : [];
  const deciding =
    listed.find((x) => x.state === "exceeded") ??
    [...listed].sort((x, y) => (num(x.remaining) ?? Infinity) - (num(y.remaining) ?? Infinity))[0];
  const budget = b.budget && typeof b.budget === "object" ? b.budget : deciding ?? {};
  return {
    allow,
    reason: s(b.reason) ?? s(b.message) ?? null,
    budgetId: id(b.budgetId) ?? id(budget.id) ?? null,
    limitUsd: num(b.limitUsd ?? budget.limitUsd),
    spentUsd: num(b.spentUsd ?? budget.spentUsd),
    remainingUsd: num(b.remainingUsd ?? budget.remainingUsd ?? budget.remaining),
    retryAfterSeconds: num(b.retryAfterSeconds ?? b.retryAfter),
    degraded: false,
    raw: body,
  };
}

function degradedDecision(reason: string): GuardDecision {
  return {
    allow: true,
    reason,
    budgetId: null,
    limitUsd: null,
    spentUsd: null,
    remainingUsd: null,
    retryAfterSeconds: null,
    degraded: true,
    raw: null,
  };
}

export class Burnrate implements CallSink {
  readonly environment: Environment;
  readonly dataMode: DataMode;
  private readonly url: string | null;
  private readonly apiKey: string | null;
  private readonly timeoutMs: number;
  private readonly defaults: Attribution;
  private readonly secret: string | null;
  private readonly fetchImpl: typeof fetch | null;
  private readonly logger: (m: string) => void;
  private readonly logged = new Set<string>();
  private readonly transport: Transport;
  private processSecret: string | null = null;

  constructor(options: BurnrateOptions = {}) {
    const env = (typeof process !== "undefined" && process.env) || {};
    const o = options && typeof options === "object" ? options : {};
    this.logger =
      typeof o.logger === "function"
        ? o.logger
        : (m: string) => {
            try {
              console.warn(`[burnrate] ${m}`);
            } catch {
              // ignore
            }
          };
    const url = (o.url ?? env.BURNRATE_URL ?? "").trim();
    this.url = url ? url.replace(/\/+$/, "") : null;
    this.apiKey = (o.apiKey ?? this.envApiKey(env)).trim() || null;
    const environment = o.environment ?? env.BURNRATE_ENVIRONMENT ?? "prod";
    this.environment = ENVIRONMENTS.has(environment) ? (environment as Environment) : "prod";
    if (environment !== this.environment) this.log("environment", `unknown environment ${JSON.stringify(environment)}: using "prod"`);
    const dataMode = o.dataMode ?? env.BURNRATE_DATA_MODE ?? "real";
    this.dataMode = DATA_MODES.has(dataMode) ? (dataMode as DataMode) : "real";
    if (dataMode !== this.dataMode) this.log("dataMode", `unknown dataMode ${JSON.stringify(dataMode)}: using "real"`);
    this.timeoutMs = int(o.timeoutMs, 600, 1);
    this.defaults = o.defaults && typeof o.defaults === "object" ? { ...o.defaults } : {};
    this.secret = o.pseudonymizeSecret ?? env.BURNRATE_PSEUDONYMIZE_SECRET ?? null;
    this.fetchImpl = typeof o.fetch === "function" ? o.fetch : null;
    this.transport = new Transport({
      url: this.url,
      apiKey: this.apiKey,
      batchSize: Math.min(10_000, int(o.batchSize, 100, 1)),
      flushIntervalMs: int(o.flushIntervalMs, 1000, 1),
      queueSize: int(o.queueSize, 10_000, 1),
      timeoutMs: this.timeoutMs,
      maxRetries: int(o.maxRetries, 3, 0),
      pauseOnPaymentRequiredMs: int(o.pauseOnPaymentRequiredMs, 30_000, 0),
      flushOnExit: o.flushOnExit !== false,
      fetch: this.fetchImpl,
      log: (key, message) => this.log(key, message),
    });
  }

  /** BURNRATE_API_KEY, else the deprecated BURNRATE_KEY (the CLI's old name) with a note. */
  private envApiKey(env: Record<string, string | undefined>): string {
    const key = (env.BURNRATE_API_KEY ?? "").trim();
    if (key) return key;
    const old = (env.BURNRATE_KEY ?? "").trim();
    if (old) this.log("BURNRATE_KEY", "BURNRATE_KEY is deprecated; set BURNRATE_API_KEY instead");
    return old;
  }

  /** Log a message once per key (the SDK never repeats itself, never logs keys or raw user ids). */
  private log(key: string, message: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    try {
      this.logger(message);
    } catch {
      // ignore
    }
  }

  /**
   * Instrument an OpenAI client (openai npm package, also AzureOpenAI and OpenAI-compatible
   * providers such as OpenRouter or xAI through baseURL). Returns a drop-in client.
   */
  wrapOpenAI<T extends object>(client: T, opts: WrapOptions = {}): T {
    try {
      return wrapOpenAIClient(this, client, opts ?? {});
    } catch {
      return client;
    }
  }

  /** Instrument an Anthropic client (@anthropic-ai/sdk). Returns a drop-in client. */
  wrapAnthropic<T extends object>(client: T, opts: WrapOptions = {}): T {
    try {
      return wrapAnthropicClient(this, client, opts ?? {});
    } catch {
      return client;
    }
  }

  /**
   * Run `fn` with attribution (tenantId, userId, endpointTag, promptVersion, tags) and
   * optionally the logical call's identity (externalRequestId, attempt) for every call made
   * inside it, across awaits. Nested contexts inherit and override. Returns fn's result.
   */
  withContext<R>(context: CallContext, fn: () => R): R {
    let merged: CallContext | null = null;
    try {
      const outer = attributionStorage.getStore();
      const ctx: CallContext = {};
      for (const [k, v] of Object.entries(context ?? {})) if (v !== undefined) (ctx as any)[k] = v;
      merged = { ...outer, ...ctx };
      const tags = mergeTags(outer?.tags, context?.tags);
      if (tags) merged.tags = tags;
    } catch {
      merged = null;
    }
    if (!merged) return fn();
    return attributionStorage.run(merged, fn);
  }

  /** The attribution context in force here (empty object outside withContext). */
  currentContext(): CallContext {
    return { ...(attributionStorage.getStore() ?? {}) };
  }

  /**
   * Record a call to any provider whose usage you read yourself (see the usageFrom*
   * functions). Returns the event's externalRequestId. Never throws.
   */
  track(input: TrackInput): string {
    try {
      const ctx = attributionStorage.getStore();
      const explicit: CallContext = {};
      for (const k of ["endpointTag", "promptVersion", "tenantId", "userId", "tags", "externalRequestId", "attempt"] as const) {
        if (input[k] !== undefined) (explicit as any)[k] = input[k];
      }
      const context: CallContext = { ...ctx, ...explicit };
      const tags = mergeTags(ctx?.tags, input.tags);
      if (tags) context.tags = tags;
      const ts = input.timestamp === undefined ? Date.now() : new Date(input.timestamp as any).getTime();
      const event = this.buildEvent({
        provider: input.provider,
        model: input.model,
        operation: input.operation ?? "chat",
        serviceTier: input.serviceTier ?? "standard",
        usage: input.usage ?? null,
        status: input.status ?? "success",
        errorCode: input.errorCode,
        latencyMs: int(input.latencyMs, 0),
        startedAtMs: Number.isFinite(ts) ? ts : Date.now(),
        attempts: 1,
        wrap: {},
        context,
      });
      if (typeof input.costUsd === "number" && Number.isFinite(input.costUsd) && input.costUsd >= 0) event.costUsd = roundUsd(input.costUsd);
      this.transport.enqueue(event);
      return event.externalRequestId;
    } catch {
      return "";
    }
  }

  /**
   * Time `fn` (a call to any provider) and record it: success with the usage read by
   * `usageFrom`, or the thrown error (rethrown unchanged). Returns fn's result.
   */
  async trackCall<R>(input: TrackCallInput<R>, fn: () => R | Promise<R>): Promise<R> {
    const started = Date.now();
    const t0 = performance.now();
    let result: R;
    try {
      result = await fn();
    } catch (e) {
      try {
        const { status, errorCode } = classifyError(e);
        this.track({ ...input, usage: null, status, errorCode, timestamp: started, latencyMs: Math.round(performance.now() - t0) });
      } catch {
        // ignore
      }
      throw e;
    }
    try {
      let usage: Usage | null = null;
      try {
        usage = input.usageFrom ? input.usageFrom(result) : null;
      } catch {
        usage = null;
      }
      this.track({ ...input, usage, status: "success", timestamp: started, latencyMs: Math.round(performance.now() - t0) });
    } catch {
      // ignore
    }
    return result;
  }

  /** @internal Called by the wrappers once per logical call. */
  _recordCall(report: CallReport): void {
    try {
      this.transport.enqueue(this.buildEvent(report));
    } catch {
      // never reaches the caller
    }
  }

  private buildEvent(r: CallReport): LlmEvent {
    const d = this.defaults;
    const w = r.wrap ?? {};
    const c = r.context ?? {};
    const pick = <K extends keyof Attribution>(k: K) => str(c[k] ?? w[k] ?? d[k]);
    let endpointTag = pick("endpointTag");
    if (!endpointTag) {
      endpointTag = "untagged";
      this.log("endpointTag", 'an LLM call has no endpointTag (set it in wrapOpenAI/wrapAnthropic options or withContext): recorded as "untagged"');
    }
    const u = r.usage;
    const attemptBase = int(c.attempt, 1, 1);
    const attempt = Math.min(64, Math.max(1, attemptBase + Math.max(1, r.attempts) - 1));
    const event: LlmEvent = {
      externalRequestId: str(c.externalRequestId) || randomUUID(),
      attempt,
      timestamp: new Date(r.startedAtMs).toISOString(),
      provider: str(r.provider)?.toLowerCase() || "unknown",
      model: str(r.model) || "unknown",
      endpointTag,
      inputTokens: u ? u.inputTokens : 0,
      cachedTokens: u ? u.cachedTokens : 0,
      cacheWriteTokens: u ? u.cacheWriteTokens : 0,
      outputTokens: u ? u.outputTokens : 0,
      reasoningTokens: u ? u.reasoningTokens : 0,
      latencyMs: int(r.latencyMs, 0),
      status: STATUSES.has(r.status) ? r.status : "error",
      dataMode: this.dataMode,
      environment: this.environment,
      operation: OPERATIONS.has(r.operation) ? r.operation : "chat",
      serviceTier: TIERS.has(r.serviceTier) ? r.serviceTier : "standard",
      usageMissing: !u,
    };
    if (u) event.totalTokens = u.inputTokens + u.outputTokens;
    const promptVersion = pick("promptVersion");
    if (promptVersion) event.promptVersion = promptVersion;
    const tenantId = pick("tenantId");
    if (tenantId) event.tenantId = tenantId;
    const userId = pick("userId");
    if (userId) event.userId = userId;
    const errorCode = str(r.errorCode);
    if (errorCode && event.status !== "success") event.errorCode = errorCode;
    if (u && typeof u.costUsd === "number" && Number.isFinite(u.costUsd) && u.costUsd >= 0) event.costUsd = roundUsd(u.costUsd);
    const tags = mergeTags(d.tags, w.tags, c.tags);
    if (tags) event.tags = tags;
    return event;
  }

  /**
   * Pre-call budget check (POST /v1/guard). Resolves with the decision when allowed; throws
   * BudgetExceededError when burnrate answers allow=false. Fails open: when burnrate is
   * unreachable, slow (timeoutMs) or has no guard endpoint, resolves allow=true, degraded=true.
   */
  async guard(request: GuardRequest = {}): Promise<GuardDecision> {
    let decision: GuardDecision;
    try {
      decision = await this.askGuard(request ?? {});
    } catch {
      decision = degradedDecision("guard_error");
    }
    if (!decision.allow) throw new BudgetExceededError(decision);
    return decision;
  }

  private async askGuard(req: GuardRequest): Promise<GuardDecision> {
    if (!this.url) return degradedDecision("burnrate_not_configured");
    const ctx = attributionStorage.getStore() ?? {};
    const body: Record<string, unknown> = {
      endpointTag: str(req.endpointTag ?? ctx.endpointTag ?? this.defaults.endpointTag),
      tenantId: str(req.tenantId ?? ctx.tenantId ?? this.defaults.tenantId),
      userId: str(req.userId ?? ctx.userId ?? this.defaults.userId),
      provider: str(req.provider),
      model: str(req.model),
      estimatedInputTokens: req.estimatedInputTokens,
      estimatedOutputTokens: req.estimatedOutputTokens,
      estimatedCostUsd: req.estimatedCostUsd,
      tags: mergeTags(this.defaults.tags, ctx.tags, req.tags),
      environment: this.environment,
      dataMode: this.dataMode,
    };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.apiKey) headers["x-api-key"] = this.apiKey;
    let res: Response;
    try {
      res = await (this.fetchImpl ?? globalThis.fetch)(this.url + "/v1/guard", {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch {
      return degradedDecision("guard_unreachable");
    }
    let json: unknown = null;
    try {
      json = await res.json();
    } catch {
      json = null;
    }
    const parsed = parseGuardResponse(json);
    if (parsed) {
      if (parsed.retryAfterSeconds === null && res.headers.get("retry-after")) {
        parsed.retryAfterSeconds = num(res.headers.get("retry-after"));
      }
      return parsed;
    }
    return degradedDecision(`guard_http_${res.status}`);
  }

  /**
   * Pseudonymous id for a raw user id: "ps_" + hex HMAC-SHA256 with pseudonymizeSecret
   * (or BURNRATE_PSEUDONYMIZE_SECRET). Without a secret a random per-process secret is used
   * (ids are then stable only within this process) and a warning is logged once.
   */
  pseudonymize(id: string): string {
    let secret = this.secret;
    if (!secret) {
      if (!this.processSecret) {
        this.processSecret = randomBytes(32).toString("hex");
        this.log("secret", "pseudonymize() without pseudonymizeSecret: using a random per-process secret");
      }
      secret = this.processSecret;
    }
    return pseudonymize(id, secret);
  }

  /** Send everything queued now. Resolves true when delivered, false otherwise. Never rejects. */
  flush(timeoutMs = 5000): Promise<boolean> {
    return this.transport.flush(timeoutMs);
  }

  /** Flush, then stop the background worker. */
  close(timeoutMs = 5000): Promise<boolean> {
    return this.transport.close(timeoutMs);
  }

  /** Delivery counters: queued, sent, dropped (by reason), retries, paused, last error. */
  stats(): DeliveryStats {
    return this.transport.stats();
  }
}
