import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { writeFileSync } from "node:fs"
import type { AgentConfig } from "../../src/core/config.ts"
import type { CompletionRequest, StreamPart } from "../../src/layers/Llm.ts"
import { configFor, liveLlm } from "../support/liveLlm.ts"
import { Behaviour, openAiServer } from "../support/openaiServer.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

/** An Llm talking to a fresh loopback server at `base` (as a function of its URL). */
const setup = (
  base: (url: string) => string = (url) => url,
  options: Parameters<typeof openAiServer>[0] = {},
  llm: Partial<AgentConfig["llm"]> = {}
) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const server = yield* openAiServer(options)
    const client = yield* liveLlm(configFor(dir, { base_url: base(server.url), ...llm }))
    return { server, llm: client }
  })

const ask = (model: string, text = "hello there"): CompletionRequest => ({
  model,
  messages: [{ role: "system", content: "Be brief." }, { role: "user", content: text }],
  temperature: 0.2
})

const chatRequests = (server: { chats: () => ReadonlyArray<unknown> }) => server.chats().length

describe("Llm Live over HTTP", () => {
  it.scopedLive("returns the answer with the model, token usage and latency", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup()
      const result = yield* llm.complete(ask("test-model"))
      expect(result.content).toBe("You said: hello there")
      expect(result.model).toBe("test-model")
      expect(result.usage).toEqual({ prompt_tokens: 4, completion_tokens: 4 })
      expect(result.latency_ms).toBeGreaterThanOrEqual(0)
      expect(result.notes).toEqual([])
      expect(server.chats().map((r) => r.body)).toEqual([
        { ...ask("test-model"), stream: true, stream_options: { include_usage: true } }
      ])
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("accepts the base URL as http://host:port/v1 and with a trailing slash", () =>
    Effect.gen(function*() {
      for (const form of [(url: string) => `${url}/v1`, (url: string) => `${url}/v1/`, (url: string) => `${url}/`]) {
        const { llm } = yield* setup(form)
        expect((yield* llm.complete(ask("test-model"))).content).toBe("You said: hello there")
      }
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("sends llm.api_key as a bearer token", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup(undefined, { apiKey: "sk-local" }, { api_key: "sk-local" })
      yield* llm.complete(ask("test-model"))
      expect(server.chats()[0]?.authorization).toBe("Bearer sk-local")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails a 401 with LlmHttpError pointing at llm.api_key, without retrying", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup(undefined, { apiKey: "sk-local" })
      const error = yield* Effect.flip(llm.complete(ask("test-model")))
      expect(error._tag).toBe("LlmHttpError")
      expect(error.message).toBe(
        `The LLM at ${server.url}/v1/chat/completions answered HTTP 401: {"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}\nCheck llm.api_key (LUALLM_AGENT_LLM_API_KEY).`
      )
      expect(chatRequests(server)).toBe(1)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails a 400 at once with the server's reason", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup()
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.badRequest)))
      expect(error._tag).toBe("LlmHttpError")
      expect(error.message).toContain("answered HTTP 400")
      expect(error.message).toContain("the request exceeds the available context size")
      expect(chatRequests(server)).toBe(1)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("retries 500s and returns the answer that follows", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup(undefined, { flakyFailures: 2 })
      expect((yield* llm.complete(ask(Behaviour.flaky))).content).toBe("You said: hello there")
      expect(chatRequests(server)).toBe(3)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("gives up on a server that keeps failing with LlmHttpError 500 and its body", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup()
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.broken)))
      expect(error._tag).toBe("LlmHttpError")
      expect(error._tag === "LlmHttpError" && error.status).toBe(500)
      expect(error.message).toContain("internal server error")
      expect(error.message).toContain("answered HTTP 500 (4 attempts)")
      expect(chatRequests(server)).toBe(4)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails with LlmTimeout, naming the limit and the URL, when the model is slower than llm_timeout_seconds", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup(undefined, { slowMs: 5_000 })
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.slow)))
      expect(error._tag).toBe("LlmTimeout")
      expect(error.message).toContain(`The LLM at ${server.url}/v1/chat/completions sent nothing for 1s (limits.llm_timeout_seconds, the longest silence allowed).`)
      expect(chatRequests(server)).toBe(1)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails with LlmUnreachable, naming the URL and the start command, when nothing listens", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const closed = yield* Effect.scoped(openAiServer())
      const llm = yield* liveLlm(configFor(dir, { base_url: closed.url }))
      const error = yield* Effect.flip(llm.complete(ask("qwen")))
      expect(error._tag).toBe("LlmUnreachable")
      expect(error.message).toContain(`Could not reach the LLM at ${closed.url}/v1/chat/completions: connect ECONNREFUSED`)
      expect(error.message).toContain("(4 attempts)")
      expect(error.message).toContain(`Start the model with \`${dir}/no-luallm start qwen\`, or check llm.base_url`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails a body cut off mid-way with LlmBadResponse", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup()
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.truncated)))
      expect(error._tag).toBe("LlmBadResponse")
      expect(error.message).toContain("answered, but its body broke off before the end (aborted)")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails a body that is not JSON with LlmBadResponse quoting its start", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup()
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.notJson)))
      expect(error._tag).toBe("LlmBadResponse")
      expect(error.message).toBe(
        `The LLM at ${server.url}/v1/chat/completions answered, but its body is not JSON. It began: "<html><body>502 Bad Gateway</body></html>". Check that llm.base_url points at an OpenAI-compatible server (llama-server, Ollama, vLLM, LM Studio) and try again.`
      )
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("counts missing usage as zero tokens and says so in a note", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup()
      const result = yield* llm.complete(ask(Behaviour.noUsage))
      expect(result.content).toBe("You said: hello there")
      expect(result.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0 })
      expect(result.notes).toEqual(["the server reported no token usage; counted as 0"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails a null message content with LlmBadResponse", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup()
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.nullContent)))
      expect(error._tag).toBe("LlmBadResponse")
      expect(error.message).toContain("answered, but its message has no content (content is null)")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails a JSON body of the wrong shape with LlmBadResponse naming the field", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup()
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.wrongShape)))
      expect(error._tag).toBe("LlmBadResponse")
      expect(error.message).toContain("answered, but its body is not a chat completion (choices[0]: is missing)")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("streams the answer as deltas, then the same result with usage", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup()
      const parts = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("test-model"))))
      const deltas = parts.flatMap((part: StreamPart) => (part._tag === "Delta" ? [part.text] : []))
      expect(deltas.length).toBeGreaterThan(1)
      expect(deltas.join("")).toBe("You said: hello there")
      const done = parts.at(-1)
      expect(done?._tag === "Done" && { ...done.completion, latency_ms: 0 }).toEqual({
        content: "You said: hello there",
        model: "test-model",
        usage: { prompt_tokens: 4, completion_tokens: 4 },
        latency_ms: 0,
        notes: [],
        timings: null,
        constrained: false,
        endpoint: server.url
      })
      expect(server.chats()[0]?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } })
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails a stream the server refuses with the same tagged error", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup()
      const error = yield* Effect.flip(Stream.runDrain(llm.stream(ask(Behaviour.badRequest))))
      expect(error._tag).toBe("LlmHttpError")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("stops a stream at the time limit with LlmTimeout", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup(undefined, { slowMs: 5_000 })
      const error = yield* Effect.flip(Stream.runDrain(llm.stream(ask(Behaviour.slow))))
      expect(error._tag).toBe("LlmTimeout")
    }).pipe(Effect.provide(TestPlatform)))
})

describe("Llm Live endpoints and models", () => {
  it.scopedLive("lists the server's models", () =>
    Effect.gen(function*() {
      const { server, llm } = yield* setup(undefined, { models: ["qwen", "llama"] })
      expect(yield* llm.listModels).toEqual({ source: server.url, models: ["qwen", "llama"] })
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("with llm.base_url, resolves to the configured model, else the first one the server lists", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup(undefined, { models: ["qwen", "llama"] })
      expect(yield* llm.resolveModel("code")).toBe("qwen")
      const dir = yield* tempDir
      const server = yield* openAiServer()
      const configured = yield* liveLlm(
        configFor(dir, { base_url: server.url }, (c) => ({ ...c, model_policy: { ...c.model_policy, code: "coder" } }))
      )
      expect(yield* configured.resolveModel("code")).toBe("coder")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("without llm.base_url, sends each model's requests to the port luallm reports for it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const server = yield* openAiServer({ reply: () => "from the discovered server" })
      const config = configFor(dir, {})
      writeFileSync(
        config.luallm.state_file,
        JSON.stringify({ version: "1.0", last_used: "qwen", servers: [{ model: "qwen", port: server.port, pid: 1, state: "running" }] })
      )
      const llm = yield* liveLlm(config)
      expect(yield* llm.resolveModel("default")).toBe("qwen")
      expect((yield* llm.complete(ask("qwen"))).content).toBe("from the discovered server")
      const error = yield* Effect.flip(llm.complete(ask("llama")))
      expect(error._tag).toBe("ModelNotRunning")
      expect(error.message).toContain(`Start it with \`${dir}/no-luallm start llama\``)
    }).pipe(Effect.provide(TestPlatform)))
})
