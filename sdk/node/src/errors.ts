import type { GuardDecision } from "./types.js";

/** Thrown by Burnrate.guard() when burnrate answers allow=false. */
export class BudgetExceededError extends Error {
  readonly decision: GuardDecision;
  readonly reason: string | null;
  readonly budgetId: string | null;
  readonly retryAfterSeconds: number | null;

  constructor(decision: GuardDecision) {
    super(`burnrate: budget exceeded${decision.reason ? `: ${decision.reason}` : ""}`);
    this.name = "BudgetExceededError";
    this.decision = decision;
    this.reason = decision.reason;
    this.budgetId = decision.budgetId;
    this.retryAfterSeconds = decision.retryAfterSeconds;
  }
}
