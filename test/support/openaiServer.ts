/**
 * A real OpenAI-compatible HTTP server on 127.0.0.1 (random port) for the Live layer's tests,
 * started and stopped as a scoped resource. The requested model picks a special behaviour
 * (errors, slow or stalled streams); `kind` makes it answer the probes of llama-server, Ollama,
 * vLLM or LM Studio; `slots` makes it run that many answers at once and queue the rest, like
 * llama-server's `--parallel`; `smallModel` makes it answer like a small model that fumbles
 * the format when no schema constrains it.
 */
import { Effect } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { sseAnswer, streamPieces } from "../../src/layers/llm/protocol.ts"

/** Models with a special behaviour. */
export const Behaviour = {
  /** Answers after `slowMs`. */
  slow: "slow",
  /** 500 for the first `flakyFailures` requests, then a normal answer. */
  flaky: "flaky",
  /** Always 500. */
  broken: "broken",
  /** Announces a longer body than it sends, then drops the connection. */
  truncated: "truncated",
  /** 200 with an HTML page. */
  notJson: "not-json",
  /** A normal answer without `usage`. */
  noUsage: "no-usage",
  /** `message.content: null`. */
  nullContent: "null-content",
  /** 200 with JSON that is not a chat completion (no choices). */
  wrongShape: "wrong-shape",
  /** Answers 400 with an OpenAI error body. */
  badRequest: "bad-request",
  /** 429 with `Retry-After` for the first `busyAnswers` requests (for every request when it is negative). */
  rateLimited: "rate-limited",
  /** 503 "Loading model" with `Retry-After` for the first `busyAnswers` requests. */
  loading: "loading",
  /** 503 for the first request, then 400. */
  failThenRefuse: "fail-then-refuse",
  /** Streams its answer one piece every `pieceDelayMs`: slow, but never silent for long. */
  trickle: "trickle",
  /** Streams two pieces, then stays silent with the connection open. */
  stall: "stall"
} as const

export type ServerKindOption = "llama-server" | "ollama" | "vllm" | "lmstudio" | "generic"

export interface OpenAiServerOptions {
  /** What `/v1/models` lists. */
  readonly models?: ReadonlyArray<string>
  /** The assistant's answer; by default `You said: <last user message>`. */
  readonly reply?: (lastUserMessage: string, body: ChatBody) => string
  /** When set, requests need `Authorization: Bearer <apiKey>` and get 401 otherwise. */
  readonly apiKey?: string
  /** How many `/health` probes answer 503 "Loading model" before 200. */
  readonly loadingHealthChecks?: number
  readonly slowMs?: number
  readonly flakyFailures?: number
  /** Which server the probes describe (`generic`: none of the known ones). */
  readonly kind?: ServerKindOption
  /** llama-server's `n_ctx` per slot in `/props`; vLLM's `max_model_len`. */
  readonly contextTokens?: number
  /** Answers generated at once; more requests wait in a queue. Unlimited when absent. */
  readonly slots?: number
  /** How long generating one answer takes (before its first byte). */
  readonly generationMs?: number
  readonly pieceDelayMs?: number
  /** `Retry-After` of the 429/503 behaviours: seconds, or `"date"` for an HTTP date 1 s ahead. */
  readonly retryAfter?: number | "date"
  readonly busyAnswers?: number
  /** Ollama's version in `/api/version`. */
  readonly version?: string
  /** Answers with small-model mistakes, `mistakeRate` of the time (seeded), unless a schema is requested. */
  readonly smallModel?: { readonly seed: number; readonly mistakeRate: number }
}

export interface ReceivedRequest {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly body: unknown
  /** When it arrived (ms since the epoch). */
  readonly at: number
}

/**
 * How a server that is down behaves: `refused` stops listening (a connection is refused);
 * `unavailable` answers chat requests 503 "Loading model"; `silent` accepts them and never answers.
 */
export type Outage = "refused" | "unavailable" | "silent"

export interface OpenAiServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string
  readonly port: number
  /**
   * Takes the server down (`null`: up again, on the same port). `when` limits `unavailable` and
   * `silent` to the chat requests whose last user message it accepts.
   */
  readonly setOutage: (outage: Outage | null, when?: (lastUserMessage: string) => boolean) => Effect.Effect<void>
  readonly received: () => ReadonlyArray<ReceivedRequest>
  /** The chat requests only. */
  readonly chats: () => ReadonlyArray<ReceivedRequest>
  /** Which mistakes the small model made, by name, in order. */
  readonly mistakes: () => ReadonlyArray<string>
}

export interface ChatBody {
  readonly model?: unknown
  readonly messages?: unknown
  readonly stream?: unknown
  readonly response_format?: unknown
  readonly id_slot?: unknown
}

const words = (text: string): number => text.split(/\s+/).filter((word) => word !== "").length

const contents = (messages: unknown): ReadonlyArray<{ role: string; content: string }> =>
  Array.isArray(messages)
    ? messages.filter((m): m is { role: string; content: string } =>
      typeof m === "object" && m !== null && typeof m.role === "string" && typeof m.content === "string"
    )
    : []

const lastUserMessage = (messages: unknown): string => contents(messages).filter((m) => m.role === "user").at(-1)?.content ?? ""

const promptTokens = (messages: unknown): number => contents(messages).reduce((sum, m) => sum + words(m.content), 0)

const sendJson = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) => {
  const body = JSON.stringify(value)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers })
  res.end(body)
}

const completion = (model: string, content: string | null, usage: object | undefined) => ({
  id: "chatcmpl-test",
  object: "chat.completion",
  created: 1_700_000_000,
  model,
  system_fingerprint: "test-server",
  choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
  ...(usage === undefined ? {} : { usage })
})

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** Mulberry32: small, seeded, reproducible. */
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The format mistakes small models make with JSON answers when nothing constrains them. */
export const smallModelMistakes: ReadonlyArray<{ readonly name: string; readonly apply: (json: string) => string }> = [
  { name: "fences", apply: (json) => "```json\n" + json + "\n```" },
  { name: "prose", apply: (json) => `Sure! Here is what you asked for:\n${json}\nLet me know if you need anything else.` },
  { name: "trailing commas", apply: (json) => json.replace(/\}(\s*)\]/g, "},$1]") },
  { name: "truncated", apply: (json) => json.slice(0, Math.floor(json.length * 0.6)) },
  {
    name: "wrong field names",
    apply: (json) => json.replaceAll("\"nodes\"", "\"steps\"").replaceAll("\"depends_on\"", "\"dependsOn\"").replaceAll("\"code\"", "\"source\"")
  }
]

const kindOwner: Record<ServerKindOption, string> = {
  "llama-server": "llamacpp",
  ollama: "library",
  vllm: "vllm",
  lmstudio: "organization_owner",
  generic: "test"
}

/** Starts the server; it stops (dropping open connections) when the scope closes. */
export const openAiServer = (options: OpenAiServerOptions = {}) => {
  const models = options.models ?? ["test-model"]
  const reply = options.reply ?? ((message: string) => `You said: ${message}`)
  const kind = options.kind ?? "generic"
  const received: Array<ReceivedRequest> = []
  const mistakes: Array<string> = []
  const random = seeded(options.smallModel?.seed ?? 1)
  const cachedPrompt = new Map<number, string>()
  let healthChecks = 0
  let flakyRequests = 0
  let busyRequests = 0
  let sequenceRequests = 0
  // llama-server's slots: at most `slots` answers are generated at once; the others wait.
  let running = 0
  const waiting: Array<() => void> = []
  const acquireSlot = (): Promise<void> =>
    options.slots === undefined || running < options.slots
      ? (running++, Promise.resolve())
      : new Promise((resolve) => waiting.push(() => (running++, resolve())))
  const releaseSlot = () => {
    running--
    waiting.shift()?.()
  }
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  const retryAfter = (): Record<string, string> =>
    options.retryAfter === undefined
      ? {}
      : { "retry-after": options.retryAfter === "date" ? new Date(Date.now() + 1000).toUTCString() : String(options.retryAfter) }

  /** What a small model writes: the right answer, or (unconstrained, now and then) a fumbled one. */
  const answerFor = (body: ChatBody): string => {
    const right = reply(lastUserMessage(body.messages), body)
    if (options.smallModel === undefined || body.response_format !== undefined) return right
    if (random() >= options.smallModel.mistakeRate) return right
    const mistake = smallModelMistakes[Math.floor(random() * smallModelMistakes.length)] ?? smallModelMistakes[0]
    if (mistake === undefined) return right
    mistakes.push(mistake.name)
    return mistake.apply(right)
  }

  /** llama-server's timings: the prompt's prefix the slot still holds counts as cached. */
  const timingsFor = (body: ChatBody, completionTokens: number) => {
    const prompt = contents(body.messages).map((m) => `${m.role}:${m.content}`).join("\n")
    const slot = typeof body.id_slot === "number" ? body.id_slot : 0
    const before = cachedPrompt.get(slot) ?? ""
    cachedPrompt.set(slot, prompt)
    let same = 0
    while (same < before.length && same < prompt.length && before[same] === prompt[same]) same++
    const total = promptTokens(body.messages)
    const cache = Math.floor(total * same / Math.max(1, prompt.length))
    return { cache_n: cache, prompt_n: total - cache, prompt_ms: 10, predicted_n: completionTokens, predicted_ms: 100, predicted_per_second: completionTokens * 10 }
  }

  const stream = async (req: IncomingMessage, res: ServerResponse, model: string, content: string, usage: object, timings?: object) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
    const events = sseAnswer({
      model,
      pieces: streamPieces(content),
      usage: usage as { prompt_tokens: number; completion_tokens: number },
      ...(timings === undefined ? {} : { timings })
    })
    let closed = false
    req.socket.on("close", () => (closed = true))
    for (const event of events) {
      if (closed) return
      res.write(event)
      if (options.pieceDelayMs !== undefined && model === Behaviour.trickle) await sleep(options.pieceDelayMs)
    }
    res.end()
  }

  let outage: { readonly kind: Outage; readonly when: (lastUserMessage: string) => boolean } | null = null

  const chat = async (req: IncomingMessage, res: ServerResponse, body: ChatBody) => {
    const model = typeof body.model === "string" ? body.model : models[0] ?? "test-model"
    if (outage !== null && outage.when(lastUserMessage(body.messages))) {
      // Silent: the connection stays open, unanswered, until the client gives up.
      if (outage.kind === "silent") return
      return sendJson(res, 503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
    }
    const content = answerFor(body)
    const prompt = promptTokens(body.messages)
    const usage = { prompt_tokens: prompt, completion_tokens: words(content), total_tokens: prompt + words(content) }
    switch (model) {
      case Behaviour.slow: {
        const timer = setTimeout(() => sendJson(res, 200, completion(model, content, usage)), options.slowMs ?? 5_000)
        req.socket.on("close", () => clearTimeout(timer))
        return
      }
      case Behaviour.broken:
        return sendJson(res, 500, { error: { code: 500, message: "internal server error", type: "server_error" } })
      case Behaviour.flaky:
        if (++flakyRequests <= (options.flakyFailures ?? 2)) {
          return sendJson(res, 500, { error: { code: 500, message: `failure ${flakyRequests}`, type: "server_error" } })
        }
        return sendJson(res, 200, completion(model, content, usage))
      case Behaviour.rateLimited:
        if (options.busyAnswers === undefined || options.busyAnswers < 0 || ++busyRequests <= options.busyAnswers) {
          return sendJson(res, 429, { error: { code: 429, message: "too many requests", type: "rate_limit_error" } }, retryAfter())
        }
        return stream(req, res, model, content, usage)
      case Behaviour.loading:
        if (++busyRequests <= (options.busyAnswers ?? 1)) {
          return sendJson(res, 503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } }, retryAfter())
        }
        return stream(req, res, model, content, usage)
      case Behaviour.failThenRefuse:
        return ++sequenceRequests === 1
          ? sendJson(res, 503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
          : sendJson(res, 400, { error: { code: 400, message: "the request exceeds the available context size", type: "invalid_request_error" } })
      case Behaviour.truncated: {
        const full = JSON.stringify(completion(model, content, usage))
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(full) })
        res.write(full.slice(0, Math.floor(full.length / 2)), () => res.destroy())
        return
      }
      case Behaviour.notJson:
        res.writeHead(200, { "content-type": "text/html" })
        return res.end("<html><body>502 Bad Gateway</body></html>")
      case Behaviour.noUsage:
        return sendJson(res, 200, completion(model, content, undefined))
      case Behaviour.nullContent:
        return sendJson(res, 200, completion(model, null, usage))
      case Behaviour.wrongShape:
        return sendJson(res, 200, { id: "chatcmpl-test", object: "chat.completion", choices: [] })
      case Behaviour.badRequest:
        return sendJson(res, 400, { error: { code: 400, message: "the request exceeds the available context size", type: "invalid_request_error" } })
      case Behaviour.stall:
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
        for (const event of sseAnswer({ model, pieces: streamPieces(content), usage }).slice(0, 3)) res.write(event)
        return
      default: {
        await acquireSlot()
        try {
          if (options.generationMs !== undefined) await sleep(options.generationMs)
          const timings = kind === "llama-server" ? timingsFor(body, words(content)) : undefined
          if (body.stream === true) await stream(req, res, model, content, usage, timings)
          else sendJson(res, 200, { ...completion(model, content, usage), ...(timings === undefined ? {} : { timings }) })
        } finally {
          releaseSlot()
        }
      }
    }
  }

  const probe = (req: IncomingMessage, res: ServerResponse, path: string, body: unknown): boolean => {
    if (req.method === "GET" && path === "/props" && kind === "llama-server") {
      sendJson(res, 200, { default_generation_settings: { n_ctx: options.contextTokens ?? 4096 }, total_slots: options.slots ?? 1 })
      return true
    }
    if (req.method === "GET" && path === "/api/version" && kind === "ollama") {
      sendJson(res, 200, { version: options.version ?? "0.6.2" })
      return true
    }
    if (req.method === "POST" && path === "/tokenize" && kind === "llama-server") {
      const content = typeof body === "object" && body !== null && "content" in body && typeof body.content === "string" ? body.content : ""
      sendJson(res, 200, { tokens: Array.from({ length: words(content) }, (_, i) => i) })
      return true
    }
    if (req.method === "GET" && path === "/v1/models") {
      sendJson(res, 200, {
        object: "list",
        data: models.map((id) => ({
          id,
          object: "model",
          owned_by: kindOwner[kind],
          ...(kind === "vllm" && options.contextTokens !== undefined ? { max_model_len: options.contextTokens } : {})
        }))
      })
      return true
    }
    return false
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/"
    const body = parseJson(await readBody(req))
    received.push({ method: req.method ?? "GET", path, authorization: req.headers.authorization, body, at: Date.now() })
    if (path === "/health") {
      return ++healthChecks <= (options.loadingHealthChecks ?? 0)
        ? sendJson(res, 503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
        : sendJson(res, 200, { status: "ok" })
    }
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return sendJson(res, 401, { error: { code: 401, message: "Invalid API Key", type: "authentication_error" } })
    }
    if (probe(req, res, path, body)) return
    if (req.method === "POST" && path === "/v1/chat/completions" && typeof body === "object" && body !== null) {
      return chat(req, res, body)
    }
    sendJson(res, 404, { error: { code: 404, message: "File Not Found", type: "not_found_error" } })
  }

  return Effect.acquireRelease(
    Effect.async<{ readonly server: ReturnType<typeof createServer>; readonly handle: OpenAiServer }>((resume) => {
      const server = createServer((req, res) => {
        handle(req, res).catch((error: unknown) => sendJson(res, 500, { error: { message: String(error) } }))
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        const listening = (up: boolean) =>
          Effect.async<void>((done) => {
            if (up === server.listening) return done(Effect.void)
            if (up) server.listen(port, "127.0.0.1", () => done(Effect.void))
            else {
              server.closeAllConnections()
              server.close(() => done(Effect.void))
            }
          })
        resume(Effect.succeed({
          server,
          handle: {
            url: `http://127.0.0.1:${port}`,
            port,
            setOutage: (kind, when = () => true) =>
              Effect.suspend(() => {
                outage = kind === null || kind === "refused" ? null : { kind, when }
                return listening(kind !== "refused")
              }),
            received: () => [...received],
            chats: () => received.filter((r) => r.path === "/v1/chat/completions"),
            mistakes: () => [...mistakes]
          }
        }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        if (!server.listening) return resume(Effect.void)
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ handle }) => handle))
}
