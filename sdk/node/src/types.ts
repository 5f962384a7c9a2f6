/** Status of one logical LLM call. */
export type Status = "success" | "error" | "timeout" | "rate_limited" | "cancelled";
export type DataMode = "real" | "test" | "demo";
export type Environment = "prod" | "staging" | "dev";
export type Operation = "chat" | "responses" | "embeddings" | "image" | "audio";
export type ServiceTier = "standard" | "batch" | "flex" | "priority";

/**
 * One event per logical LLM call, exactly as sent to POST /v1/ingest/batch
 * (see docs/event-contract.md).
 */
export interface LlmEvent {
  externalRequestId: string;
  attempt: number;
  timestamp: string;
  provider: string;
  model: string;
  endpointTag: string;
  promptVersion?: string;
  tenantId?: string;
  userId?: string;
  inputTokens: number;
  cachedTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  totalTokens?: number;
  latencyMs: number;
  status: Status;
  errorCode?: string;
  dataMode: DataMode;
  environment: Environment;
  operation: Operation;
  serviceTier: ServiceTier;
  usageMissing: boolean;
  costUsd?: number;
  tags?: Record<string, string>;
}

/**
 * Token usage normalised to the burnrate contract.
 * inputTokens includes cached and cache-write tokens; outputTokens includes reasoning tokens.
 * costUsd is only set when the provider reports the exact cost (OpenRouter, xAI), else null.
 */
export interface Usage {
  inputTokens: number;
  cachedTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  costUsd: number | null;
}

/** Attribution that can be set per client (wrap options) or per request (withContext). */
export interface Attribution {
  endpointTag?: string;
  promptVersion?: string;
  tenantId?: string;
  userId?: string;
  tags?: Record<string, string>;
}

/** What `withContext` accepts: attribution plus per-logical-call identity. */
export interface CallContext extends Attribution {
  /** Use your own id for the logical call (e.g. to join app-level retries). Applies to every call made inside. */
  externalRequestId?: string;
  /** Your app-level retry number of the logical call (1 = first try). Provider-SDK retries add to it. */
  attempt?: number;
}

export interface WrapOptions extends Attribution {
  /** Override the provider name (default: detected from the client's baseURL, e.g. openai, azure, openrouter, xai). */
  provider?: string;
}

export type Logger = (message: string) => void;

export interface BurnrateOptions {
  /** burnrate server URL, e.g. http://127.0.0.1:8080. Default: env BURNRATE_URL. Without a URL the SDK is a no-op. */
  url?: string;
  /** Ingest key. Default: env BURNRATE_API_KEY. */
  apiKey?: string;
  /** prod | staging | dev. Default: env BURNRATE_ENVIRONMENT or "prod". */
  environment?: Environment;
  /** real | test | demo. Default: env BURNRATE_DATA_MODE or "real". */
  dataMode?: DataMode;
  /** Max events per POST. Default 100. */
  batchSize?: number;
  /** Worker period. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Max events held in memory; when full the newest event is dropped and counted. Default 10000. */
  queueSize?: number;
  /** Timeout of one POST to burnrate. Default 600 ms. */
  timeoutMs?: number;
  /** Send attempts of one batch on network errors / 5xx before it is dropped and counted. Default 3 retries. */
  maxRetries?: number;
  /** Secret for pseudonymize(). Default: env BURNRATE_PSEUDONYMIZE_SECRET. */
  pseudonymizeSecret?: string;
  /** Default attribution for every event (overridden by wrap options and withContext). */
  defaults?: Attribution;
  /** Where the SDK logs its few warnings (default: console.warn). Never receives keys or raw user ids. */
  logger?: Logger;
  /** Flush the queue when the process is about to exit (beforeExit). Default true. */
  flushOnExit?: boolean;
  /** Pause after a 402 (workspace paused) before probing again. Default 30000 ms. */
  pauseOnPaymentRequiredMs?: number;
  /** fetch implementation used to talk to burnrate (default: global fetch). */
  fetch?: typeof fetch;
}

export interface DeliveryStats {
  /** Events currently waiting in memory. */
  queued: number;
  /** Events in the batch currently being sent. */
  inFlight: number;
  /** Events handed to the queue. */
  enqueued: number;
  /** Events the server accepted (incl. duplicates). */
  sent: number;
  /** Of `sent`, events the server already had (same externalRequestId + attempt). */
  duplicates: number;
  /** Events the server refused as invalid (202 with rejected[] or a 4xx). */
  rejected: number;
  dropped: {
    /** Queue full: the newest event was dropped. */
    queueFull: number;
    /** Network errors / timeouts / 5xx after all retries. */
    sendFailed: number;
    /** 401/403 from burnrate (bad key). */
    unauthorized: number;
    /** No BURNRATE_URL, or the client was closed. */
    disabled: number;
  };
  batchesSent: number;
  sendErrors: number;
  retries: number;
  /** True while sending is paused (402 workspace paused, 429 Retry-After, 401). */
  paused: boolean;
  lastError: string | null;
}

export interface GuardRequest {
  endpointTag?: string;
  tenantId?: string;
  userId?: string;
  provider?: string;
  model?: string;
  estimatedInputTokens?: number;
  estimatedOutputTokens?: number;
  estimatedCostUsd?: number;
  tags?: Record<string, string>;
}

export interface GuardDecision {
  allow: boolean;
  reason: string | null;
  /** Budget the decision is about, when the server names one. */
  budgetId: string | null;
  limitUsd: number | null;
  spentUsd: number | null;
  remainingUsd: number | null;
  retryAfterSeconds: number | null;
  /** True when burnrate could not be asked (down, slow, no guard endpoint): the call is allowed (fail open). */
  degraded: boolean;
  /** The server's JSON answer as received. */
  raw: unknown;
}
