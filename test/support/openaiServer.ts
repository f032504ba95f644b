/**
 * A real OpenAI-compatible HTTP server on 127.0.0.1 (random port) for the Live layer's tests,
 * started and stopped as a scoped resource. The requested model picks the answer, so one
 * server covers every case; any other model gets a normal answer.
 */
import { Effect } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

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
  badRequest: "bad-request"
} as const

export interface OpenAiServerOptions {
  /** What `/v1/models` lists. */
  readonly models?: ReadonlyArray<string>
  /** The assistant's answer; by default `You said: <last user message>`. */
  readonly reply?: (lastUserMessage: string) => string
  /** When set, requests need `Authorization: Bearer <apiKey>` and get 401 otherwise. */
  readonly apiKey?: string
  /** How many `/health` probes answer 503 "Loading model" before 200. */
  readonly loadingHealthChecks?: number
  readonly slowMs?: number
  readonly flakyFailures?: number
}

export interface ReceivedRequest {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly body: unknown
}

export interface OpenAiServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string
  readonly port: number
  readonly received: () => ReadonlyArray<ReceivedRequest>
}

interface ChatBody {
  readonly model?: unknown
  readonly messages?: unknown
  readonly stream?: unknown
}

const words = (text: string): number => text.split(/\s+/).filter((word) => word !== "").length

const lastUserMessage = (messages: unknown): string => {
  if (!Array.isArray(messages)) return ""
  const users = messages.filter((m): m is { role: "user"; content: string } =>
    typeof m === "object" && m !== null && m.role === "user" && typeof m.content === "string"
  )
  return users.at(-1)?.content ?? ""
}

const promptTokens = (messages: unknown): number =>
  Array.isArray(messages)
    ? messages.reduce((sum: number, m: unknown) =>
      sum + (typeof m === "object" && m !== null && "content" in m && typeof m.content === "string" ? words(m.content) : 0), 0)
    : 0

const sendJson = (res: ServerResponse, status: number, value: unknown) => {
  const body = JSON.stringify(value)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
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

const streamAnswer = (res: ServerResponse, model: string, content: string, usage: object) => {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
  const chunk = (choices: ReadonlyArray<object>, extra: object = {}) =>
    res.write(`data: ${JSON.stringify({ id: "chatcmpl-test", object: "chat.completion.chunk", model, choices, ...extra })}\n\n`)
  chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }])
  for (const piece of content.match(/\s*\S+/g) ?? []) chunk([{ index: 0, delta: { content: piece }, finish_reason: null }])
  chunk([{ index: 0, delta: {}, finish_reason: "stop" }])
  chunk([], { usage })
  res.end("data: [DONE]\n\n")
}

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

/** Starts the server; it stops (dropping open connections) when the scope closes. */
export const openAiServer = (options: OpenAiServerOptions = {}) => {
  const models = options.models ?? ["test-model"]
  const reply = options.reply ?? ((message: string) => `You said: ${message}`)
  const received: Array<ReceivedRequest> = []
  let healthChecks = 0
  let flakyRequests = 0

  const chat = (req: IncomingMessage, res: ServerResponse, body: ChatBody) => {
    const model = typeof body.model === "string" ? body.model : models[0] ?? "test-model"
    const content = reply(lastUserMessage(body.messages))
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
      default:
        return body.stream === true ? streamAnswer(res, model, content, usage) : sendJson(res, 200, completion(model, content, usage))
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/"
    const body = parseJson(await readBody(req))
    received.push({ method: req.method ?? "GET", path, authorization: req.headers.authorization, body })
    if (path === "/health") {
      return ++healthChecks <= (options.loadingHealthChecks ?? 0)
        ? sendJson(res, 503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
        : sendJson(res, 200, { status: "ok" })
    }
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return sendJson(res, 401, { error: { code: 401, message: "Invalid API Key", type: "authentication_error" } })
    }
    if (req.method === "GET" && path === "/v1/models") {
      return sendJson(res, 200, { object: "list", data: models.map((id) => ({ id, object: "model", owned_by: "test" })) })
    }
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
        resume(Effect.succeed({ server, handle: { url: `http://127.0.0.1:${port}`, port, received: () => [...received] } }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ handle }) => handle))
}
