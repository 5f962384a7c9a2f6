// A local fake of the OpenAI and Anthropic HTTP APIs (node:http), answering with realistic
// bodies including usage, SSE streams, and programmable failures.
import http from "node:http";

export const OPENAI_CHAT_USAGE = {
  prompt_tokens: 1200,
  completion_tokens: 300,
  total_tokens: 1500,
  prompt_tokens_details: { cached_tokens: 1000, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 64, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};
export const OPENAI_RESPONSES_USAGE = {
  input_tokens: 2000,
  input_tokens_details: { cached_tokens: 500 },
  output_tokens: 400,
  output_tokens_details: { reasoning_tokens: 128 },
  total_tokens: 2400,
};
export const OPENAI_EMBEDDINGS_USAGE = { prompt_tokens: 8, total_tokens: 8 };
export const ANTHROPIC_USAGE = {
  input_tokens: 100,
  cache_creation_input_tokens: 200,
  cache_read_input_tokens: 1000,
  output_tokens: 50,
  service_tier: "standard",
};

const now = () => Math.floor(Date.now() / 1000);
let seq = 0;
const id = (p) => `${p}${(++seq).toString(36).padStart(8, "0")}`;

function sse(res, frames, { delayMs = 0, cutAfter = null } = {}) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "x-request-id": id("req_") });
  let i = 0;
  const next = () => {
    if (cutAfter !== null && i >= cutAfter) {
      res.destroy(); // connection cut mid-stream
      return;
    }
    if (i >= frames.length) {
      res.end();
      return;
    }
    const f = frames[i++];
    res.write((f.event ? `event: ${f.event}\n` : "") + `data: ${typeof f.data === "string" ? f.data : JSON.stringify(f.data)}\n\n`);
    if (delayMs) setTimeout(next, delayMs);
    else setImmediate(next);
  };
  next();
}

function json(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "x-request-id": id("req_"), ...headers });
  res.end(text);
}

function openaiChat(req, body, res, opts) {
  const model = opts.model ?? body.model;
  const usage = opts.chatUsage ?? OPENAI_CHAT_USAGE;
  const cid = id("chatcmpl-");
  if (!body.stream) {
    return json(res, 200, {
      id: cid,
      object: "chat.completion",
      created: now(),
      model,
      choices: [{ index: 0, message: { role: "assistant", content: "Hello! How can I help?", refusal: null, annotations: [] }, logprobs: null, finish_reason: "stop" }],
      usage,
      service_tier: body.service_tier === "flex" ? "flex" : "default",
      system_fingerprint: "fp_fake",
    });
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const base = { id: cid, object: "chat.completion.chunk", created: now(), model, service_tier: "default", system_fingerprint: "fp_fake" };
  const u = includeUsage ? { usage: null } : {};
  const frames = [
    { data: { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null }], ...u } },
    ...["Hello", "! How", " can I", " help?"].map((t) => ({ data: { ...base, choices: [{ index: 0, delta: { content: t }, logprobs: null, finish_reason: null }], ...u } })),
    { data: { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }], ...u } },
  ];
  if (includeUsage) frames.push({ data: { ...base, choices: [], usage } });
  frames.push({ data: "[DONE]" });
  sse(res, frames, opts.stream ?? {});
}

function openaiResponse(model, usage, status = "completed") {
  return {
    id: id("resp_"),
    object: "response",
    created_at: now(),
    status,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model,
    output: [
      { type: "message", id: id("msg_"), status: "completed", role: "assistant", content: [{ type: "output_text", text: "Hello!", annotations: [], logprobs: [] }] },
    ],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    service_tier: "default",
    store: true,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage,
    user: null,
    metadata: {},
  };
}

function openaiResponses(req, body, res, opts) {
  const model = opts.model ?? body.model;
  const usage = opts.responsesUsage ?? OPENAI_RESPONSES_USAGE;
  const full = openaiResponse(model, usage);
  if (!body.stream) return json(res, 200, full);
  const inProgress = { ...full, status: "in_progress", output: [], usage: null };
  const item = full.output[0];
  let n = 0;
  const ev = (type, extra) => ({ event: type, data: { type, sequence_number: n++, ...extra } });
  sse(
    res,
    [
      ev("response.created", { response: inProgress }),
      ev("response.in_progress", { response: inProgress }),
      ev("response.output_item.added", { output_index: 0, item: { ...item, status: "in_progress", content: [] } }),
      ev("response.content_part.added", { item_id: item.id, output_index: 0, content_index: 0, part: { type: "output_text", text: "", annotations: [], logprobs: [] } }),
      ev("response.output_text.delta", { item_id: item.id, output_index: 0, content_index: 0, delta: "Hello", logprobs: [] }),
      ev("response.output_text.delta", { item_id: item.id, output_index: 0, content_index: 0, delta: "!", logprobs: [] }),
      ev("response.output_text.done", { item_id: item.id, output_index: 0, content_index: 0, text: "Hello!", logprobs: [] }),
      ev("response.content_part.done", { item_id: item.id, output_index: 0, content_index: 0, part: item.content[0] }),
      ev("response.output_item.done", { output_index: 0, item }),
      ev("response.completed", { response: full }),
    ],
    opts.stream ?? {},
  );
}

function openaiEmbeddings(req, body, res, opts) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const vec = [0.0123, -0.0456, 0.0789, 0.1];
  const data = inputs.map((_, index) => ({
    object: "embedding",
    index,
    embedding: body.encoding_format === "base64" ? Buffer.from(new Float32Array(vec).buffer).toString("base64") : vec,
  }));
  json(res, 200, { object: "list", data, model: opts.model ?? body.model, usage: opts.embeddingsUsage ?? OPENAI_EMBEDDINGS_USAGE });
}

function anthropicMessages(req, body, res, opts) {
  const model = opts.model ?? body.model;
  const usage = opts.anthropicUsage ?? ANTHROPIC_USAGE;
  const mid = id("msg_01");
  const message = {
    id: mid,
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text: "Hello! How can I help?" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage,
  };
  if (!body.stream) return json(res, 200, message, { "request-id": id("req_") });
  const startUsage = { ...usage, output_tokens: 1 };
  sse(
    res,
    [
      { event: "message_start", data: { type: "message_start", message: { ...message, content: [], stop_reason: null, usage: startUsage } } },
      { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } },
      { event: "ping", data: { type: "ping" } },
      ...["Hello!", " How can", " I help?"].map((t) => ({ event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: t } } })),
      { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
      // Cumulative output usage: the last one wins.
      { event: "message_delta", data: { type: "message_delta", delta: { stop_reason: null, stop_sequence: null }, usage: { output_tokens: Math.floor(usage.output_tokens / 2) } } },
      { event: "message_delta", data: { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: usage.output_tokens } } },
      { event: "message_stop", data: { type: "message_stop" } },
    ],
    opts.stream ?? {},
  );
}

const ROUTES = {
  "/v1/chat/completions": openaiChat,
  "/v1/responses": openaiResponses,
  "/v1/embeddings": openaiEmbeddings,
  "/v1/messages": anthropicMessages,
};

function errorBody(path, status) {
  const anthropic = path === "/v1/messages";
  const types = { 429: ["rate_limit_error", "rate_limit_exceeded"], 500: ["api_error", "server_error"], 529: ["overloaded_error", "server_error"], 400: ["invalid_request_error", "invalid_request_error"] };
  const [at, ot] = types[status] ?? ["api_error", "server_error"];
  return anthropic
    ? { type: "error", error: { type: at, message: `fake ${status}` } }
    : { error: { message: `fake ${status}`, type: ot, param: null, code: ot } };
}

/**
 * Start the fake provider. Returns { url, requests, fail(path, statuses|specs), options, close }.
 * fail("/v1/chat/completions", [429]) makes the next request answer 429 (with retry-after-ms
 * so the SDK retries quickly), then normal answers resume.
 */
export async function startFakeProvider(options = {}) {
  const failures = new Map();
  const requests = [];
  const state = { options: { ...options } };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const path = req.url.split("?")[0];
      let body = {};
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : {};
      } catch {
        body = {};
      }
      requests.push({ path, body, headers: req.headers, at: Date.now() });
      const queue = failures.get(path);
      if (queue && queue.length) {
        const f = queue.shift();
        const spec = typeof f === "number" ? { status: f } : f;
        if (spec.status === "hang") return; // never answers
        return json(res, spec.status, spec.body ?? errorBody(path, spec.status), { "retry-after-ms": "5", ...(spec.headers ?? {}) });
      }
      const route = ROUTES[path];
      if (!route) return json(res, 404, { error: { message: "not found", type: "invalid_request_error" } });
      route(req, body, res, state.options);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get options() {
      return state.options;
    },
    set options(o) {
      state.options = o;
    },
    fail(path, list) {
      failures.set(path, [...(failures.get(path) ?? []), ...list]);
    },
    clear() {
      failures.clear();
      requests.length = 0;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}
