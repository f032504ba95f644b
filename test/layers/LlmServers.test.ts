/**
 * The Live layer against the loopback server dressed as each kind of server: the exact request
 * bodies (schema, prompt cache, slot, max_tokens), retries of 429/503 as Retry-After says and no
 * retry of 400/401, idle versus total timeouts, failover and spreading across endpoints.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import type { AgentConfig } from "../../src/core/config.ts"
import type { CompletionRequest, StreamPart } from "../../src/layers/Llm.ts"
import { configFor, liveLlm } from "../support/liveLlm.ts"
import { Behaviour, openAiServer, type OpenAiServerOptions } from "../support/openaiServer.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const schema = { type: "object", properties: { n: { type: "integer" } }, required: ["n"], additionalProperties: false }

const ask = (model = "test-model", affinity = "task-1"): CompletionRequest => ({
  model,
  messages: [{ role: "system", content: "You count." }, { role: "user", content: "How many?" }],
  temperature: 0,
  max_tokens: 64,
  output: { name: "answer", schema },
  affinity
})

const streamedBody = (request: CompletionRequest) => ({
  model: request.model,
  messages: request.messages,
  temperature: 0,
  max_tokens: 64,
  stream: true,
  stream_options: { include_usage: true }
})

const setup = (options: OpenAiServerOptions, llm: Partial<AgentConfig["llm"]> = {}, change?: (c: AgentConfig) => AgentConfig) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const server = yield* openAiServer({ reply: () => "{\"n\": 3}", ...options })
    const client = yield* liveLlm(configFor(dir, { base_url: server.url, ...llm }, change))
    return { server, llm: client, dir }
  })

const nested = { type: "json_schema", json_schema: { name: "answer", schema } }

describe("request bodies per server kind", () => {
  it.scopedLive("llama-server: the schema nested in response_format, cache_prompt, id_slot and max_tokens", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ kind: "llama-server", slots: 2 })
      const result = yield* llm.complete(ask())
      expect(server.chats().map((r) => r.body)).toEqual([
        { ...streamedBody(ask()), cache_prompt: true, id_slot: 0, response_format: nested }
      ])
      expect(result).toMatchObject({ content: "{\"n\": 3}", constrained: true, endpoint: server.url })
      expect(result.timings).toMatchObject({ prompt_n: expect.any(Number), predicted_n: 2 })
      expect(server.received().map((r) => `${r.method} ${r.path}`)).toEqual(["GET /props", "GET /v1/models", "POST /v1/chat/completions"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("llama-server with one slot: no id_slot; llm.constrained off: no schema", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ kind: "llama-server", slots: 1 }, { constrained: "off" })
      expect((yield* llm.complete(ask())).constrained).toBe(false)
      expect(server.chats()[0]?.body).toEqual({ ...streamedBody(ask()), cache_prompt: true })
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("vLLM and LM Studio: OpenAI's form with strict for a strict-compatible schema, no llama-server fields", () =>
    Effect.gen(function*() {
      for (const kind of ["vllm", "lmstudio"] as const) {
        const { llm, server } = yield* setup({ kind })
        yield* llm.complete(ask())
        expect(server.chats()[0]?.body, kind).toEqual({
          ...streamedBody(ask()),
          response_format: { type: "json_schema", json_schema: { name: "answer", schema, strict: true } }
        })
      }
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("Ollama from 0.5: the nested form its /v1 endpoint copies into format; older: lenient parsing, no schema", () =>
    Effect.gen(function*() {
      const recent = yield* setup({ kind: "ollama", version: "0.6.2" })
      expect((yield* recent.llm.complete(ask())).constrained).toBe(true)
      expect(recent.server.chats()[0]?.body).toEqual({ ...streamedBody(ask()), response_format: nested })
      const old = yield* setup({ kind: "ollama", version: "0.4.7" })
      expect((yield* old.llm.complete(ask())).constrained).toBe(false)
      expect(old.server.chats()[0]?.body).toEqual(streamedBody(ask()))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("an unknown server gets no schema under auto, the OpenAI form under on", () =>
    Effect.gen(function*() {
      const auto = yield* setup({})
      yield* auto.llm.complete(ask())
      expect(auto.server.chats()[0]?.body).toEqual(streamedBody(ask()))
      const on = yield* setup({}, { constrained: "on" })
      yield* on.llm.complete(ask())
      expect(on.server.chats()[0]?.body).toEqual({ ...streamedBody(ask()), response_format: nested })
    }).pipe(Effect.provide(TestPlatform)))
})

describe("retries", () => {
  it.scopedLive("retries 429 after the Retry-After seconds, and succeeds", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ busyAnswers: 2, retryAfter: 1 })
      expect((yield* llm.complete(ask(Behaviour.rateLimited))).content).toBe("{\"n\": 3}")
      const times = server.chats().map((r) => r.at)
      expect(times).toHaveLength(3)
      expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(900)
      expect((times[2] ?? 0) - (times[1] ?? 0)).toBeGreaterThanOrEqual(900)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("reads Retry-After as an HTTP date too", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ busyAnswers: 1, retryAfter: "date" })
      yield* llm.complete(ask(Behaviour.rateLimited))
      const [first, second] = server.chats().map((r) => r.at)
      expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(300)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("gives up on a 429 after llm.max_retries with a message about a busy server, not the context", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ busyAnswers: -1, retryAfter: 0 }, { max_retries: 2 })
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.rateLimited)))
      expect(error._tag).toBe("LlmHttpError")
      expect(error.message).toContain("answered HTTP 429 (3 attempts)")
      expect(error.message).toContain("busy or rate-limiting")
      expect(error.message).not.toContain("context")
      expect(server.chats()).toHaveLength(3)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("waits out a 503 while the model loads", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ busyAnswers: 1, retryAfter: 1 })
      expect((yield* llm.complete(ask(Behaviour.loading))).content).toBe("{\"n\": 3}")
      expect(server.chats()).toHaveLength(2)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("does not retry a 400, and counts the attempts when a 503 came before it", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({})
      const error = yield* Effect.flip(llm.complete(ask(Behaviour.failThenRefuse)))
      expect(error._tag === "LlmHttpError" && error.status).toBe(400)
      expect(error.message).toContain("answered HTTP 400 (2 attempts)")
      expect(error.message).toContain("longer than the model's context")
      expect(server.chats()).toHaveLength(2)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("caps a long Retry-After at llm.retry_max_seconds", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ busyAnswers: 1, retryAfter: 3600 }, { retry_max_seconds: 1 })
      yield* llm.complete(ask(Behaviour.rateLimited))
      const [first, second] = server.chats().map((r) => r.at)
      expect((second ?? 0) - (first ?? 0)).toBeLessThan(5_000)
    }).pipe(Effect.provide(TestPlatform)))
})

const collect = (stream: Stream.Stream<StreamPart, unknown>) =>
  Effect.map(Stream.runCollect(stream), (parts) => Chunk.toReadonlyArray(parts))

describe("timeouts", () => {
  const idle = (seconds: number, total = 1800) => (c: AgentConfig) => ({
    ...c,
    limits: { ...c.limits, llm_timeout_seconds: seconds, llm_call_max_seconds: total }
  })
  const words = "one two three four five six seven eight"

  it.scopedLive("a slow but live stream is not cut: each piece comes well inside the idle limit, the whole takes longer", () =>
    Effect.gen(function*() {
      const { llm } = yield* setup({ reply: () => words, pieceDelayMs: 300 }, {}, idle(2))
      const started = Date.now()
      const result = yield* llm.complete({ ...ask(Behaviour.trickle), output: undefined })
      expect(result.content).toBe(words)
      expect(Date.now() - started).toBeGreaterThan(2_000)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("a stream that goes silent ends with LlmTimeout (idle) after the text that came", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ reply: () => words }, {}, idle(1))
      const seen: Array<string> = []
      const error = yield* Effect.flip(
        Stream.runForEach(llm.stream({ ...ask(Behaviour.stall), output: undefined }), (part) =>
          Effect.sync(() => {
            if (part._tag === "Delta") seen.push(part.text)
          }))
      )
      expect(seen.join("")).toBe("one two")
      expect(error._tag).toBe("LlmTimeout")
      expect(error.message).toContain(`The LLM at ${server.url}/v1/chat/completions sent nothing for 1s`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("a live stream longer than limits.llm_call_max_seconds ends with LlmTimeout (total)", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ reply: () => words, pieceDelayMs: 300 }, {}, idle(2, 1))
      const error = yield* Effect.flip(collect(llm.stream({ ...ask(Behaviour.trickle), output: undefined })))
      expect(error).toMatchObject({ _tag: "LlmTimeout", limit: "total", seconds: 1, url: `${server.url}/v1/chat/completions` })
      expect(String(error)).toContain("limits.llm_call_max_seconds")
    }).pipe(Effect.provide(TestPlatform)))
})

describe("several endpoints", () => {
  it.scopedLive("fails over from an endpoint that refuses connections", () =>
    Effect.gen(function*() {
      const closed = yield* Effect.scoped(openAiServer())
      const server = yield* openAiServer({ reply: () => "up" })
      const dir = yield* tempDir
      const llm = yield* liveLlm(configFor(dir, { endpoints: [closed.url, server.url] }))
      expect(yield* llm.complete({ ...ask(), output: undefined })).toMatchObject({ content: "up", endpoint: server.url })
      expect(server.chats()).toHaveLength(1)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails over at once from an endpoint answering 503 with a long Retry-After", () =>
    Effect.gen(function*() {
      const loading = yield* openAiServer({ busyAnswers: 100, retryAfter: 30 })
      const ready = yield* openAiServer({ busyAnswers: 0, reply: () => "ready" })
      const dir = yield* tempDir
      const llm = yield* liveLlm(configFor(dir, { endpoints: [loading.url, ready.url] }))
      const started = Date.now()
      const result = yield* llm.complete({ ...ask(Behaviour.loading), output: undefined })
      expect(result).toMatchObject({ content: "ready", endpoint: ready.url })
      expect(Date.now() - started).toBeLessThan(10_000)
      // The loading endpoint rests for its Retry-After: the next call goes straight to the other.
      yield* llm.complete({ ...ask(Behaviour.loading), output: undefined })
      expect(loading.chats()).toHaveLength(1)
      expect(ready.chats()).toHaveLength(2)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("spreads parallel calls over two one-slot endpoints", () =>
    Effect.gen(function*() {
      const a = yield* openAiServer({ kind: "llama-server", slots: 1, generationMs: 150 })
      const b = yield* openAiServer({ kind: "llama-server", slots: 1, generationMs: 150 })
      const dir = yield* tempDir
      const llm = yield* liveLlm(configFor(dir, { endpoints: [a.url, b.url] }))
      const results = yield* Effect.all(Array.from({ length: 8 }, () => llm.complete(ask())), { concurrency: 8 })
      expect(results.filter((r) => r.endpoint === a.url)).toHaveLength(4)
      expect(a.chats()).toHaveLength(4)
      expect(b.chats()).toHaveLength(4)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("routes a model to the endpoint that lists it", () =>
    Effect.gen(function*() {
      const qwen = yield* openAiServer({ models: ["qwen2.5-7b"] })
      const llama = yield* openAiServer({ models: ["llama-3.2-3b"] })
      const dir = yield* tempDir
      const llm = yield* liveLlm(configFor(dir, { endpoints: [qwen.url, llama.url] }))
      expect((yield* llm.complete({ ...ask("llama-3.2-3b"), output: undefined })).endpoint).toBe(llama.url)
      expect((yield* llm.complete({ ...ask("qwen"), output: undefined })).endpoint).toBe(qwen.url)
    }).pipe(Effect.provide(TestPlatform)))
})

describe("slots", () => {
  it.scopedLive("parallel calls take different slots; a task keeps its slot; another task takes another", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ kind: "llama-server", slots: 4, generationMs: 100 })
      yield* Effect.all(Array.from({ length: 4 }, () => llm.complete(ask())), { concurrency: 4 })
      expect(new Set(server.chats().map((r) => (r.body as { id_slot: number }).id_slot))).toEqual(new Set([0, 1, 2, 3]))
      const slotOf = (request: CompletionRequest) =>
        Effect.map(llm.complete(request), () => (server.chats().at(-1)?.body as { id_slot: number }).id_slot)
      const first = yield* slotOf(ask("test-model", "task-a"))
      const other = yield* slotOf(ask("test-model", "task-b"))
      expect(yield* slotOf(ask("test-model", "task-a"))).toBe(first)
      expect(other).not.toBe(first)
      expect(yield* slotOf(ask("test-model", "task-b"))).toBe(other)
    }).pipe(Effect.provide(TestPlatform)))
})

describe("waiting for a slot", () => {
  it.scopedLive("waits here, not in the server's queue, when every slot is busy: queued silence is not the model's", () =>
    Effect.gen(function*() {
      // Each answer takes 0.7 s before its first byte, inside the 1 s idle limit; two at once on one
      // slot would leave the second silent for 1.4 s if it waited in the server's queue.
      const { llm, server } = yield* setup({ kind: "llama-server", slots: 1, generationMs: 700 })
      const results = yield* Effect.all([llm.complete(ask()), llm.complete(ask())], { concurrency: 2 })
      expect(results.map((r) => r.content)).toEqual(["{\"n\": 3}", "{\"n\": 3}"])
      const [first, second] = server.chats().map((r) => r.at)
      expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(600)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("does not hold back calls to a server that does not say how many it runs at once", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ generationMs: 300 })
      yield* Effect.all([llm.complete(ask()), llm.complete(ask()), llm.complete(ask())], { concurrency: 3 })
      const times = server.chats().map((r) => r.at)
      expect(Math.max(...times) - Math.min(...times)).toBeLessThan(250)
    }).pipe(Effect.provide(TestPlatform)))
})

describe("measure", () => {
  it.scopedLive("takes the context from /props and counts with /tokenize when the estimate comes near it", () =>
    Effect.gen(function*() {
      const { llm, server } = yield* setup({ kind: "llama-server", contextTokens: 100 })
      const long: CompletionRequest = { model: "test-model", messages: [{ role: "user", content: "word ".repeat(60) }] }
      expect(yield* llm.measure(long)).toEqual({ tokens: 64, exact: true, context: 100 })
      expect(server.received().filter((r) => r.path === "/tokenize")).toHaveLength(1)
      const short: CompletionRequest = { model: "test-model", messages: [{ role: "user", content: "hi" }] }
      expect(yield* llm.measure(short)).toEqual({ tokens: 5, exact: false, context: 100 })
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("uses llm.context_tokens for a server that does not say, and vLLM's max_model_len", () =>
    Effect.gen(function*() {
      const generic = yield* setup({}, { context_tokens: 2048 })
      expect((yield* generic.llm.measure(ask())).context).toBe(2048)
      const vllm = yield* setup({ kind: "vllm", contextTokens: 32768 })
      expect((yield* vllm.llm.measure(ask())).context).toBe(32768)
      const unknown = yield* setup({})
      expect((yield* unknown.llm.measure(ask())).context).toBeNull()
    }).pipe(Effect.provide(TestPlatform)))
})

describe("the small-model simulation", () => {
  it.scopedLive("fumbles the format of about 30 % of answers without a schema, every kind of mistake, and none with one", () =>
    Effect.gen(function*() {
      const plan = JSON.stringify({ nodes: [{ id: "a", depends_on: [], action: "llm_call", prompt_template: "x" }] })
      const options = { kind: "llama-server" as const, smallModel: { seed: 7, mistakeRate: 0.3 }, reply: () => plan }
      const loose = yield* setup(options, { constrained: "off" })
      const looseAnswers = yield* Effect.forEach(Array.from({ length: 60 }), () => loose.llm.complete(ask()))
      const mistakes = loose.server.mistakes()
      // Seeded, so the same every run: 30 % of 60 is 18, give or take the draw.
      expect(mistakes.length).toBeGreaterThanOrEqual(10)
      expect(mistakes.length).toBeLessThanOrEqual(26)
      expect(new Set(mistakes)).toEqual(new Set(["fences", "prose", "trailing commas", "truncated", "wrong field names"]))
      expect(looseAnswers.filter((answer) => answer.content !== plan)).toHaveLength(mistakes.length)
      const strict = yield* setup(options)
      const strictAnswers = yield* Effect.forEach(Array.from({ length: 60 }), () => strict.llm.complete(ask()))
      expect(strict.server.mistakes()).toEqual([])
      expect(strictAnswers.every((answer) => answer.content === plan && answer.constrained)).toBe(true)
    }).pipe(Effect.provide(TestPlatform)))
})
