import { AsyncLocalStorage } from "node:async_hooks";
import type { CallContext } from "./types.js";

/** Per-request attribution set by Burnrate.withContext (shared by every Burnrate instance). */
export const attributionStorage = new AsyncLocalStorage<CallContext>();

/**
 * State of one logical wrapped call. The wrapper runs the provider SDK method inside
 * callStorage.run(state, ...); the provider SDK's internal retries all happen inside that
 * async context, so the client's (wrapped) fetch sees the same state for every HTTP attempt.
 */
export interface CallState {
  attempts: number;
  lastStatus: number | null;
}

export const callStorage = new AsyncLocalStorage<CallState>();
