// Type-checked by test/build.test.mjs against the shipped .d.ts (ESM resolution).
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { Burnrate, BudgetExceededError, usageFromGemini, type LlmEvent, type Usage, type DeliveryStats } from "burnrate-sdk";

const br = new Burnrate({ url: "http://127.0.0.1:1", apiKey: "k", environment: "dev", dataMode: "test", timeoutMs: 600 });
const client: OpenAI = br.wrapOpenAI(new OpenAI({ apiKey: "k" }), { endpointTag: "support.reply", promptVersion: "support_v9" });
const claude: Anthropic = br.wrapAnthropic(new Anthropic({ apiKey: "k" }), { endpointTag: "x" });
void claude;
async function main(): Promise<string | null> {
  const r = await br.withContext({ tenantId: "acme", userId: br.pseudonymize("u") }, () =>
    client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
  );
  const u: Usage | null = usageFromGemini({ promptTokenCount: 1 });
  br.track({ provider: "google", model: "gemini-2.5-flash", endpointTag: "t", usage: u });
  try {
    await br.guard({ endpointTag: "t" });
  } catch (e) {
    if (e instanceof BudgetExceededError) return e.reason;
  }
  const s: DeliveryStats = br.stats();
  const ev: Partial<LlmEvent> = { status: "success" };
  void s;
  void ev;
  return r.choices[0]?.message.content ?? null;
}
void main;
