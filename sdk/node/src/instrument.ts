// Provider-agnostic machinery used by the OpenAI and Anthropic wrappers.
import { performance } from "node:perf_hooks";
import { attributionStorage, callStorage, type CallState } from "./context.js";
import type { CallContext, Operation, ServiceTier, Status, Usage, WrapOptions } from "./types.js";

/** What a finished call reports to Burnrate (see Burnrate._recordCall). */
export interface CallReport {
  provider: string;
  model: string;
  operation: Operation;
  serviceTier: ServiceTier;
  usage: Usage | null;
  status: Status;
  errorCode?: string;
  latencyMs: number;
  startedAtMs: number;
  attempts: number;
  wrap: WrapOptions;
  context: CallContext | undefined;
}

export interface CallSink {
  _recordCall(report: CallReport): void;
}

export interface CallConfig {
  provider: string;
  operation: Operation;
  wrap: WrapOptions;
}

// ---------------------------------------------------------------------------------------
// Attempt counting: every HTTP request the provider SDK makes goes through client.fetch;
// inside a wrapped call the AsyncLocalStorage holds that call's state, so each provider-SDK
// retry increments the same counter.

const MARK = Symbol.for("burnrate.instrumentedFetch");

export function instrumentClientFetch(client: any): void {
  try {
    if (!client || typeof client !== "object") return;
    const orig = client.fetch;
    if (typeof orig !== "function" || orig[MARK]) return;
    const wrapped = function (this: unknown, input: unknown, init?: unknown) {
      const st = callStorage.getStore();
      if (st === undefined) return orig.call(this, input, init);
      st.attempts++;
      const p = orig.call(this, input, init);
      if (p && typeof p.then === "function") {
        p.then(
          (r: any) => {
            st.lastStatus = typeof r?.status === "number" ? r.status : null;
          },
          () => {
            st.lastStatus = null;
          },
        );
      }
      return p;
    };
    Object.defineProperty(wrapped, MARK, { value: true });
    client.fetch = wrapped;
  } catch {
    // A client whose fetch cannot be replaced still works; attempts then count as 1.
  }
}

// ---------------------------------------------------------------------------------------

export function mapServiceTier(tier: unknown): ServiceTier {
  switch (tier) {
    case "flex":
      return "flex";
    case "priority":
      return "priority";
    case "batch":
      return "batch";
    default:
      return "standard";
  }
}

/** status + errorCode of a thrown provider error. */
export function classifyError(err: unknown, lastStatus: number | null = null): { status: Status; errorCode: string } {
  const e = (err !== null && typeof err === "object" ? err : null) as any;
  const ctor: string = (e && e.constructor && e.constructor !== Object && e.constructor.name) || "";
  const name: string = (e && typeof e.name === "string" && e.name) || ctor;
  const httpStatus: number | null = e && typeof e.status === "number" ? e.status : null;
  if (ctor === "APIUserAbortError" || name === "APIUserAbortError" || name === "AbortError") {
    return { status: "cancelled", errorCode: "cancelled" };
  }
  if (ctor === "APIConnectionTimeoutError" || name === "APIConnectionTimeoutError" || name === "TimeoutError") {
    return { status: "timeout", errorCode: "timeout" };
  }
  const st = httpStatus ?? (lastStatus && lastStatus >= 400 ? lastStatus : null);
  if (st === 429) return { status: "rate_limited", errorCode: "429" };
  if (st === 408 || st === 504) return { status: "timeout", errorCode: String(st) };
  if (st) return { status: "error", errorCode: String(st) };
  if (ctor === "APIConnectionError" || name === "APIConnectionError") return { status: "error", errorCode: "connection_error" };
  const type = e?.error?.error?.type ?? e?.error?.type ?? e?.error?.code ?? e?.code ?? e?.type;
  if (type === "rate_limit_error" || type === "rate_limit_exceeded") return { status: "rate_limited", errorCode: String(type) };
  if (typeof type === "string" && type) return { status: "error", errorCode: type.slice(0, 128) };
  return { status: "error", errorCode: (name || "error").slice(0, 128) };
}

/** One logical call: collects the outcome once, reports it once. Never throws. */
export class CallRecorder {
  readonly state: CallState = { attempts: 0, lastStatus: null };
  private readonly t0 = performance.now();
  private readonly startedAtMs = Date.now();
  private readonly context: CallContext | undefined = attributionStorage.getStore();
  private done = false;
  model: string;
  serviceTier: ServiceTier;

  constructor(
    private readonly sink: CallSink,
    private readonly cfg: CallConfig,
    requestBody: any,
  ) {
    this.model = typeof requestBody?.model === "string" ? requestBody.model : "";
    this.serviceTier = mapServiceTier(requestBody?.service_tier);
  }

  get finished(): boolean {
    return this.done;
  }

  finish(usage: Usage | null, status: Status = "success", errorCode?: string): void {
    if (this.done) return;
    this.done = true;
    try {
      this.sink._recordCall({
        provider: this.cfg.provider,
        model: this.model,
        operation: this.cfg.operation,
        serviceTier: this.serviceTier,
        usage,
        status,
        errorCode,
        latencyMs: Math.max(0, Math.round(performance.now() - this.t0)),
        startedAtMs: this.startedAtMs,
        attempts: this.state.attempts,
        wrap: this.cfg.wrap,
        context: this.context,
      });
    } catch {
      // never reaches the caller
    }
  }

  failure(err: unknown, usage: Usage | null = null): void {
    if (this.done) return;
    try {
      const { status, errorCode } = classifyError(err, this.state.lastStatus);
      this.finish(usage, status, errorCode);
    } catch {
      this.finish(null, "error", "error");
    }
  }

  /** Take model / service tier from a provider response or chunk when present. */
  observeMeta(obj: any): void {
    if (!obj || typeof obj !== "object") return;
    if (typeof obj.model === "string" && obj.model) this.model = obj.model;
    const tier = obj.service_tier ?? obj.usage?.service_tier;
    if (typeof tier === "string") this.serviceTier = mapServiceTier(tier);
  }
}

// ---------------------------------------------------------------------------------------
// Streams

export interface StreamObserver {
  /** Look at one item; return false to hide it from the caller. */
  onItem(item: any): boolean;
  usage(): Usage | null;
  /** A provider-reported failure seen in the stream (e.g. response.failed). */
  failureCode(): string | null;
}

function isAbortLike(e: any): boolean {
  return e && (e.name === "AbortError" || e.constructor?.name === "APIUserAbortError");
}

function endStream(rec: CallRecorder, obs: StreamObserver, how: "done" | "error" | "cancelled", err?: unknown, aborted = false): void {
  if (rec.finished) return;
  let usage: Usage | null = null;
  try {
    usage = obs.usage();
  } catch {
    usage = null;
  }
  if (how === "error") {
    if (isAbortLike(err)) rec.finish(usage, usage ? "success" : "cancelled", usage ? undefined : "cancelled");
    else rec.failure(err, usage);
    return;
  }
  const failed = obs.failureCode();
  if (failed) return rec.finish(usage, "error", failed);
  if (usage) return rec.finish(usage, "success");
  if (how === "cancelled" || aborted) return rec.finish(null, "cancelled", "cancelled");
  rec.finish(null, "success"); // stream ended without usage: usageMissing=true
}

function instrumentIterator(it: AsyncIterator<any>, obs: StreamObserver, rec: CallRecorder, stream: any): AsyncIterator<any> {
  const wrapped: AsyncIterator<any> & AsyncIterable<any> = {
    async next(...args: [] | [any]) {
      for (;;) {
        let r: IteratorResult<any>;
        try {
          r = await it.next(...args);
        } catch (e) {
          endStream(rec, obs, "error", e);
          throw e;
        }
        if (r.done) {
          endStream(rec, obs, "done", undefined, !!stream?.controller?.signal?.aborted);
          return r;
        }
        let keep = true;
        try {
          keep = obs.onItem(r.value) !== false;
        } catch {
          keep = true;
        }
        if (keep) return r;
      }
    },
    async return(value?: any) {
      endStream(rec, obs, "cancelled");
      return typeof it.return === "function" ? it.return(value) : { done: true, value };
    },
    async throw(e?: any) {
      endStream(rec, obs, "error", e);
      if (typeof it.throw === "function") return it.throw(e);
      throw e;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return wrapped;
}

/** Observe a provider SDK Stream (openai / anthropic core Stream) in place: same object returned. */
export function wrapStream(stream: any, obs: StreamObserver, rec: CallRecorder): any {
  try {
    if (typeof stream?.iterator === "function") {
      const orig = stream.iterator;
      stream.iterator = function (this: any, ...a: any[]) {
        return instrumentIterator(orig.apply(this, a), obs, rec, stream);
      };
    } else if (typeof stream?.[Symbol.asyncIterator] === "function") {
      const orig = stream[Symbol.asyncIterator];
      stream[Symbol.asyncIterator] = function (this: any) {
        return instrumentIterator(orig.call(this), obs, rec, stream);
      };
    } else {
      rec.finish(null, "success");
    }
  } catch {
    rec.finish(null, "success");
  }
  return stream;
}

/**
 * Observe an event-emitting stream helper (openai ChatCompletionStream / ResponseStream,
 * anthropic MessageStream) without adding 'error' listeners (which would change how the
 * helper reports unhandled errors): its _emit is hooked on the instance when present.
 */
export function observeEventStream(helper: any, itemEvent: string, obs: StreamObserver, rec: CallRecorder): void {
  try {
    let err: unknown = undefined;
    let aborted = false;
    const onEnd = () => {
      if (err !== undefined) endStream(rec, obs, aborted ? "cancelled" : "error", err);
      else if (helper?.errored) rec.failure(new Error("stream error"), safeUsage(obs));
      else endStream(rec, obs, helper?.aborted ? "cancelled" : "done");
    };
    if (typeof helper?._emit === "function") {
      const orig = helper._emit;
      helper._emit = function (this: any, event: string, ...args: any[]) {
        try {
          if (event === itemEvent) obs.onItem(args[0]);
          else if (event === "error") err = args[0];
          else if (event === "abort") {
            err = args[0];
            aborted = true;
          } else if (event === "end") onEnd();
        } catch {
          // ignore
        }
        return orig.call(this, event, ...args);
      };
    } else if (typeof helper?.on === "function") {
      helper.on(itemEvent, (item: any) => {
        try {
          obs.onItem(item);
        } catch {
          // ignore
        }
      });
      helper.on("end", onEnd);
    }
  } catch {
    // ignore: the helper works untouched
  }
}

function safeUsage(obs: StreamObserver): Usage | null {
  try {
    return obs.usage();
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Non-streaming and streaming API calls returning the SDKs' APIPromise.

export interface MethodConfig extends CallConfig {
  /** Usage of a non-stream result. */
  usageOf(data: any): Usage | null;
  /** For stream: true requests: may rewrite the request body, returns the observer. */
  prepareStream?(body: any, rec: CallRecorder): { body: any; observer: StreamObserver };
}

/**
 * Call `orig` as the provider SDK would, inside the call's AsyncLocalStorage context, and
 * observe its outcome. Returns the SDK's own return value (the same APIPromise object).
 */
export function callWrapped(sink: CallSink, cfg: MethodConfig, target: any, orig: (...a: any[]) => any, args: any[]): any {
  let rec: CallRecorder | null = null;
  let callArgs = args;
  let observer: StreamObserver | null = null;
  try {
    const body = args[0];
    rec = new CallRecorder(sink, cfg, body);
    if (body && body.stream === true && cfg.prepareStream) {
      const prep = cfg.prepareStream(body, rec);
      observer = prep.observer;
      if (prep.body !== body) callArgs = [prep.body, ...args.slice(1)];
    }
  } catch {
    rec = null;
    callArgs = args;
  }
  if (!rec) return orig.apply(target, args);
  const r = rec;
  let result: any;
  try {
    result = callStorage.run(r.state, () => orig.apply(target, callArgs));
  } catch (e) {
    r.failure(e);
    throw e;
  }
  try {
    return observeResult(result, r, cfg, observer);
  } catch {
    return result;
  }
}

function observeResult(p: any, rec: CallRecorder, cfg: MethodConfig, observer: StreamObserver | null): any {
  const onData = (data: any) => {
    try {
      if (observer && data && (typeof data.iterator === "function" || typeof data[Symbol.asyncIterator] === "function")) {
        wrapStream(data, observer, rec);
      } else {
        rec.observeMeta(data);
        rec.finish(cfg.usageOf(data), "success");
      }
    } catch {
      // ignore
    }
    return data;
  };
  if (!p || typeof p.then !== "function") {
    onData(p);
    return p;
  }
  if (typeof p.parseResponse === "function" && p.responsePromise && typeof p.responsePromise.then === "function") {
    // The SDKs' APIPromise: observe by hooking this instance's parse step, so the caller
    // gets back the very same object with .withResponse(), .asResponse(), ... intact.
    const origParseResponse = p.parseResponse;
    p.parseResponse = function (this: any, ...a: any[]) {
      let out: any;
      try {
        out = origParseResponse.apply(this, a);
      } catch (e) {
        rec.failure(e);
        throw e;
      }
      return Promise.resolve(out).then(onData, (e: unknown) => {
        rec.failure(e);
        throw e;
      });
    };
    // Failures (after the SDK's retries) reject responsePromise; observed without changing
    // what the caller sees (the caller's promise rejects with the same error object).
    p.responsePromise.then(undefined, (e: unknown) => rec.failure(e));
    const origParse = p.parse;
    const origAsResponse = p.asResponse;
    if (typeof origParse === "function" && typeof origAsResponse === "function") {
      let parseCalled = false;
      p.parse = function (this: any, ...a: any[]) {
        parseCalled = true;
        return origParse.apply(this, a);
      };
      p.asResponse = function (this: any, ...a: any[]) {
        const res = origAsResponse.apply(this, a);
        if (!parseCalled) {
          Promise.resolve(res).then(
            () => {
              // The caller reads the raw body itself: the call succeeded, usage unknown to us.
              if (!parseCalled) rec.finish(null, "success");
            },
            () => undefined,
          );
        }
        return res;
      };
    }
    return p;
  }
  // Any other thenable: a plain promise with the same value / rejection.
  return p.then(onData, (e: unknown) => {
    rec.failure(e);
    throw e;
  });
}

/** Wrap a stream-helper method (returns an event-emitting stream object synchronously). */
export function callStreamHelper(
  sink: CallSink,
  cfg: CallConfig,
  itemEvent: string,
  makeObserver: (rec: CallRecorder) => StreamObserver,
  target: any,
  orig: (...a: any[]) => any,
  args: any[],
): any {
  let rec: CallRecorder;
  try {
    rec = new CallRecorder(sink, cfg, args[0]);
  } catch {
    return orig.apply(target, args);
  }
  let helper: any;
  try {
    helper = callStorage.run(rec.state, () => orig.apply(target, args));
  } catch (e) {
    rec.failure(e);
    throw e;
  }
  try {
    observeEventStream(helper, itemEvent, makeObserver(rec), rec);
  } catch {
    // ignore
  }
  return helper;
}

// ---------------------------------------------------------------------------------------

type Spec = { [prop: string]: Spec | ((target: any, real: any) => any) };

/**
 * A Proxy that replaces the methods named in `spec` (recursively through resources) and
 * forwards everything else to the real object, methods bound to it (so #private fields work).
 */
const proxyTargets = new WeakMap<object, object>();

/** The real client behind a client returned by wrapOpenAI/wrapAnthropic (itself otherwise). */
export function unwrapClient<T extends object>(client: T): T {
  return (proxyTargets.get(client) as T | undefined) ?? client;
}

export function proxify<T extends object>(target: T, spec: Spec): T {
  const proxy = makeProxy(target, spec);
  proxyTargets.set(proxy, target);
  return proxy;
}

function makeProxy<T extends object>(target: T, spec: Spec): T {
  const replaced = new Map<string, any>();
  const bound = new WeakMap<Function, Function>();
  return new Proxy(target, {
    get(t: any, prop: string | symbol) {
      if (typeof prop === "string" && Object.prototype.hasOwnProperty.call(spec, prop)) {
        if (replaced.has(prop)) return replaced.get(prop);
        const real = Reflect.get(t, prop, t);
        const s = spec[prop];
        let v: any = real;
        try {
          if (typeof s === "function") v = typeof real === "function" ? s(t, real) : real;
          else if (real && typeof real === "object") v = makeProxy(real, s);
        } catch {
          v = real;
        }
        replaced.set(prop, v);
        return v;
      }
      const value = Reflect.get(t, prop, t);
      if (typeof value === "function" && !(typeof prop === "string" && /^[A-Z]/.test(prop))) {
        let b = bound.get(value);
        if (!b) {
          b = value.bind(t);
          bound.set(value, b!);
        }
        return b;
      }
      return value;
    },
  });
}

export function methodOf(sink: CallSink, cfg: MethodConfig) {
  return (target: any, real: (...a: any[]) => any) =>
    function (this: unknown, ...args: any[]) {
      return callWrapped(sink, cfg, target, real, args);
    };
}
