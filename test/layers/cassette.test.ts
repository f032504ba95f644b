/**
 * Record and replay at the HttpClient transport: the Live layer over a cassette runs the real
 * request building, SSE parsing and decoding; recording appends a session per process.
 */
import { describe, expect, it } from "@effect/vitest"
import { NodeHttpClient } from "@effect/platform-node"
import { Chunk, Context, Effect, Layer, Stream } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { type CompletionRequest, Llm, llmLayerFor } from "../../src/layers/Llm.ts"
import { requestDifferences } from "../../src/layers/llm/cassette.ts"
import { LuallmLive } from "../../src/layers/Luallm.ts"
import { configFor } from "../support/liveLlm.ts"
import { Behaviour, openAiServer } from "../support/openaiServer.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const ask = (text: string, model = "test-model"): CompletionRequest => ({
  model,
  messages: [{ role: "system", content: "You write JavaScript skills for a sandbox." }, { role: "user", content: text }],
  temperature: 0
})

/** The `--llm` layer the CLI would build for `spec`, against a server at `baseUrl`. */
const llmFor = (spec: string, dir: string, baseUrl: string) =>
  Effect.map(
    Layer.build(
      llmLayerFor(spec).pipe(
        Layer.provide(LuallmLive),
        Layer.provide(AppConfigFrom(configFor(dir, { base_url: baseUrl }))),
        Layer.provide(Layer.merge(NodeHttpClient.layer, TestPlatform))
      )
    ),
    Context.get(Llm)
  )

const lines = (path: string) => readFileSync(path, "utf8").trim().split("\n").map((line) => JSON.parse(line))

/** A cassette line for a streamed answer of `content` to `request` (as the Live layer sends it). */
const exchange = (request: CompletionRequest, content: string, url = "http://127.0.0.1:1") =>
  JSON.stringify({
    request: { method: "POST", url: `${url}/v1/chat/completions`, body: { ...request, stream: true, stream_options: { include_usage: true } } },
    response: {
      status: 200,
      headers: { "content-type": "text/event-stream" },
      body: `data: {"choices":[{"delta":{"content":${JSON.stringify(content)}}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n\n`
    }
  })

const models = (url = "http://127.0.0.1:1") =>
  JSON.stringify({
    request: { method: "GET", url: `${url}/v1/models` },
    response: { status: 200, headers: { "content-type": "application/json" }, body: `{"data":[{"id":"test-model"}]}` }
  })

describe("record and replay", () => {
  it.scopedLive("replays a recorded session with the same results, without a server, through the SSE path", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/cassettes/session.jsonl`
      const recorded = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* openAiServer({ kind: "llama-server", slots: 2 })
        const llm = yield* llmFor(`record:${cassette}`, dir, server.url)
        const first = yield* llm.complete(ask("read a csv file"))
        const streamed = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("write a markdown table"))))
        const third = yield* llm.complete(ask("no usage here", Behaviour.noUsage))
        return { server: server.url, results: [first, streamed.at(-1), third] }
      }))
      const written = lines(cassette)
      expect(written[0]).toEqual({ session: expect.any(String) })
      expect(written.slice(1).map((line) => `${line.request.method} ${new URL(line.request.url).pathname}`)).toEqual([
        "GET /props",
        "GET /v1/models",
        "POST /v1/chat/completions",
        "POST /v1/chat/completions",
        "POST /v1/chat/completions"
      ])
      expect(written[3].response.body).toContain("data: [DONE]")
      expect(JSON.stringify(written)).not.toContain("authorization")

      // Replayed against the recorded address, where nothing listens any more.
      const llm = yield* llmFor(`replay:${cassette}`, dir, recorded.server)
      const replayed = [
        yield* llm.complete(ask("read a csv file")),
        (yield* Stream.runCollect(llm.stream(ask("write a markdown table")))).pipe(Chunk.toReadonlyArray).at(-1),
        yield* llm.complete(ask("no usage here", Behaviour.noUsage))
      ]
      const withoutLatency = (r: unknown) => JSON.parse(JSON.stringify(r, (key, value) => (key === "latency_ms" ? 0 : value)))
      expect(replayed.map(withoutLatency)).toEqual(recorded.results.map(withoutLatency))
      expect(recorded.results[2]).toMatchObject({ notes: ["the server reported no token usage; counted as 0"] })
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("appends: a second recording process adds its session after the first", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      const server = yield* openAiServer()
      for (const text of ["first command", "second command"]) {
        yield* Effect.scoped(Effect.flatMap(llmFor(`record:${cassette}`, dir, server.url), (llm) => llm.complete(ask(text))))
      }
      const written = lines(cassette)
      expect(written.filter((line) => "session" in line)).toHaveLength(2)
      const users = written.flatMap((line) => ("request" in line && line.request.body ? [line.request.body.messages[1].content] : []))
      expect(users).toEqual(["first command", "second command"])
      const llm = yield* llmFor(`replay:${cassette}`, dir, server.url)
      expect((yield* llm.complete(ask("second command"))).content).toBe("You said: second command")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("fails an unexpected request with a diff that shows what the cassette expected", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, [models(), exchange(ask("Summarise the file report.csv in three bullet points"), "ok")].join("\n"))
      const llm = yield* llmFor(`replay:${cassette}`, dir, "http://127.0.0.1:1")
      const error = yield* Effect.flip(llm.complete(ask("Summarise the file report.txt in three bullet points")))
      expect(error._tag).toBe("CassetteMismatch")
      expect(error.message).toBe(
        [
          `Request #4 does not match the cassette ${cassette}:`,
          `  messages[1] (user) differs at character 27:`,
          `    expected: "Summarise the file report.csv in three bullet points"`,
          `    actual:   "Summarise the file report.txt in three bullet points"`,
          `If the change is intended, record the cassette again with --llm record:${cassette} (after deleting it: recording appends).`
        ].join("\n")
      )
    }).pipe(Effect.provide(TestPlatform)))

  it("names a different model, a missing message and other fields", () => {
    const recorded = { method: "POST", url: "http://a/v1/chat/completions", body: { model: "test-model", messages: [{ role: "user", content: "hi" }], max_tokens: 10, id_slot: 0 } }
    const actual = { method: "POST", url: "http://b/v1/chat/completions", body: { model: "other", messages: [], max_tokens: 20, id_slot: 3 } }
    expect(requestDifferences(recorded, actual)).toEqual([
      `model: expected "test-model", got "other"`,
      `messages[0]: expected a user message "hi", this request has only 0 messages`,
      "max_tokens: expected 10, got 20"
    ])
    expect(requestDifferences(recorded, { method: "POST", url: "http://a/tokenize" })).toEqual([
      "request: expected POST /v1/chat/completions, got POST /tokenize"
    ])
  })

  it.scopedLive("fails a request beyond the end of the cassette, saying all were replayed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, [models(), exchange(ask("one"), "1")].join("\n"))
      const llm = yield* llmFor(`replay:${cassette}`, dir, "http://127.0.0.1:1")
      yield* llm.complete(ask("one"))
      const error = yield* Effect.flip(llm.complete(ask("one")))
      expect(error.message).toContain(
        `Request #5 (POST /v1/chat/completions, model test-model, last user message "one") is not in the cassette ${cassette}: its 2 recorded requests have all been replayed.`
      )
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("serves requests that parallel nodes make out of order, each recorded answer once; GETs again", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, [models(), exchange(ask("a"), "A"), exchange(ask("b", "coder"), "B")].join("\n"))
      const llm = yield* llmFor(`replay:${cassette}`, dir, "http://127.0.0.1:1")
      expect((yield* llm.complete(ask("b", "coder"))).content).toBe("B")
      expect((yield* llm.complete(ask("a"))).content).toBe("A")
      expect((yield* llm.complete(ask("a")).pipe(Effect.flip))._tag).toBe("CassetteMismatch")
      expect(yield* llm.listModels).toEqual({ source: "http://127.0.0.1:1", models: ["test-model"] })
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("reports a broken cassette line by file and line number", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, `${models()}\n{"request":{"method":"GET","url":"x"},"response":{"status":"200"}}\n`)
      const error = yield* Effect.flip(llmFor(`replay:${cassette}`, dir, "http://127.0.0.1:1"))
      expect(error._tag).toBe("CassetteInvalid")
      expect(error.message).toContain(`The cassette ${cassette}, line 2, cannot be replayed:`)
      const missing = yield* Effect.flip(llmFor(`replay:${dir}/missing.jsonl`, dir, "http://127.0.0.1:1"))
      expect(missing.message).toBe(`The cassette ${dir}/missing.jsonl cannot be replayed: it does not exist. Record it with --llm record:${dir}/missing.jsonl.`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("refuses an unwritable cassette path before any request", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(`${dir}/file`, "")
      const error = yield* Effect.flip(llmFor(`record:${dir}/file/c.jsonl`, dir, "http://127.0.0.1:1"))
      expect(error._tag).toBe("CassetteWriteError")
      expect(error.message).toContain(`Could not write the cassette ${dir}/file/c.jsonl`)
    }).pipe(Effect.provide(TestPlatform)))
})

describe("llmLayerFor", () => {
  it.scoped("refuses a --llm value it does not know, listing the choices", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      for (const spec of ["fake", "replay:", "recorder:x.jsonl"]) {
        const error = yield* Effect.flip(llmFor(spec, dir, "http://127.0.0.1:1"))
        expect(error._tag).toBe("LlmSpecInvalid")
        expect(error.message).toBe(`--llm ${JSON.stringify(spec)} is not a choice: use live, replay:<cassette.jsonl> or record:<cassette.jsonl>.`)
      }
    }).pipe(Effect.provide(TestPlatform)))
})
