// Type-checked by test/build.test.mjs against the shipped .d.ts (CommonJS resolution).
import sdk = require("burnrate-sdk");
const br = new sdk.Burnrate({ flushOnExit: false });
const id: string = br.track({ provider: "xai", model: "grok-4", endpointTag: "t", usage: sdk.usageFromXAI({ prompt_tokens: 1 }) });
void id;
