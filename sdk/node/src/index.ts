export { Burnrate, pseudonymize, parseGuardResponse } from "./client.js";
export type { TrackInput, TrackCallInput } from "./client.js";
export { BudgetExceededError } from "./errors.js";
export {
  usageFromOpenAIChat,
  usageFromOpenAIChatStream,
  usageFromOpenAIResponses,
  usageFromOpenAIEmbeddings,
  usageFromAnthropic,
  usageFromAnthropicStream,
  usageFromGemini,
  usageFromBedrock,
  usageFromOpenRouter,
  usageFromXAI,
  usageFromShape,
  USAGE_SHAPES,
} from "./usage.js";
export { classifyError } from "./instrument.js";
export { detectOpenAIProvider } from "./openai.js";
export type {
  Attribution,
  BurnrateOptions,
  CallContext,
  DataMode,
  DeliveryStats,
  Environment,
  GuardDecision,
  GuardRequest,
  LlmEvent,
  Logger,
  Operation,
  ServiceTier,
  Status,
  Usage,
  WrapOptions,
} from "./types.js";
export { roundUsd } from "./usage.js";
