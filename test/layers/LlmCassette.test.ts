import { describe, expect, it } from "@effect/vitest"
import { NodeHttpClient } from "@effect/platform-node"
import { Chunk, Context, Effect, Layer, Stream } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { defaultConfig } from "../../src/core/config.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { type CompletionRequest, FakeReply, Llm, LlmFake } from "../../src/layers/Llm.ts"
import { llmLayerFor, LlmRecord, LlmReplay } from "../../src/layers/LlmCassette.ts"
import { LuallmLive } from "../../src/layers/Luallm.ts"
import { Behaviour, openAiServer } from "../support/openaiServer.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const ask = (text: string, model = "test-model"): CompletionRequest => ({
  model,
  messages: [{ role: "system", content: "You write JavaScript skills for a sandbox." }, { role: "user", content: text }],
  temperature: 0
})

/** The `--llm` layer the CLI would build for `spec`, against a server at `baseUrl`. */
const llmFor = (spec: string, dir: string, baseUrl: string) => {
  const config = defaultConfig({ home: dir, cwd: dir, builtinSkillsDir: `${dir}/skills` })
  return Effect.map(
    Layer.build(
      llmLayerFor(spec).pipe(
        Layer.provide(LuallmLive),
        Layer.provide(AppConfigFrom({ ...config, llm: { base_url: baseUrl, api_key: null } })),
        Layer.provide(Layer.merge(NodeHttpClient.layer, TestPlatform))
      )
    ),
    Context.get(Llm)
  )
}

const replay = (path: string) => Effect.map(Layer.build(LlmReplay(path)), Context.get(Llm))

const cassetteLine = (request: CompletionRequest, content: string) =>
  JSON.stringify({ request, response: { content, model: request.model, usage: { prompt_tokens: 1, completion_tokens: 1 } } })

describe("record and replay", () => {
  it.scopedLive("replays a recorded session with the same results, without a server", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/cassettes/session.jsonl`
      const recorded = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* openAiServer()
        const llm = yield* llmFor(`record:${cassette}`, dir, server.url)
        const first = yield* llm.complete(ask("read a csv file"))
        const streamed = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("write a markdown table"))))
        const third = yield* llm.complete(ask("no usage here", Behaviour.noUsage))
        return [first, streamed.at(-1), third]
      }))
      expect(readFileSync(cassette, "utf8").trim().split("\n")).toHaveLength(3)

      const llm = yield* llmFor(`replay:${cassette}`, dir, "http://127.0.0.1:1")
      const replayed = [
        yield* llm.complete(ask("read a csv file")),
        (yield* Stream.runCollect(llm.stream(ask("write a markdown table")))).pipe(Chunk.toReadonlyArray).at(-1),
        yield* llm.complete(ask("no usage here", Behaviour.noUsage))
      ]
      expect(replayed).toEqual(recorded)
      expect(recorded[2]).toMatchObject({ notes: ["the server reported no token usage; counted as 0"] })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails an unexpected request with a diff that shows what the cassette expected", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, `${cassetteLine(ask("Summarise the file report.csv in three bullet points"), "ok")}\n`)
      const llm = yield* replay(cassette)
      const error = yield* Effect.flip(llm.complete(ask("Summarise the file report.txt in three bullet points")))
      expect(error._tag).toBe("CassetteMismatch")
      expect(error.message).toBe(
        [
          `Request #1 does not match the cassette ${cassette}:`,
          `  messages[1] (user) differs at character 27:`,
          `    expected: "Summarise the file report.csv in three bullet points"`,
          `    actual:   "Summarise the file report.txt in three bullet points"`,
          `If the change is intended, record the cassette again with --llm record:${cassette}.`
        ].join("\n")
      )
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("names a different model and a missing message", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, `${cassetteLine(ask("hi"), "ok")}\n`)
      const llm = yield* replay(cassette)
      const error = yield* Effect.flip(llm.complete({ model: "other", messages: [{ role: "system", content: "You write JavaScript skills for a sandbox." }] }))
      expect(error.message).toContain(`  model: expected "test-model", got "other"\n  messages[1]: expected a user message "hi", this request has only 1 messages`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("fails a request beyond the end of the cassette, saying all were replayed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, `${cassetteLine(ask("one"), "1")}\n`)
      const llm = yield* replay(cassette)
      yield* llm.complete(ask("one"))
      const error = yield* Effect.flip(llm.complete(ask("one")))
      expect(error.message).toContain(`Request #2 (model test-model, last user message "one") is not in the cassette ${cassette}: its 1 recorded requests have all been replayed.`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("serves requests that parallel nodes make out of order, each recorded answer once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, [cassetteLine(ask("a"), "A"), cassetteLine(ask("b", "coder"), "B")].join("\n"))
      const llm = yield* replay(cassette)
      expect(yield* llm.resolveModel("default")).toBe("test-model")
      expect((yield* llm.complete(ask("b", "coder"))).content).toBe("B")
      expect((yield* llm.complete(ask("a"))).content).toBe("A")
      expect((yield* llm.complete(ask("a")).pipe(Effect.flip))._tag).toBe("CassetteMismatch")
      expect(yield* llm.listModels).toEqual({ source: `cassette ${cassette}`, models: ["test-model", "coder"] })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports a broken cassette line by file and line number", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, `${cassetteLine(ask("a"), "A")}\n{"request":{"model":"m","messages":[]},"response":{"content":1}}\n`)
      const error = yield* Effect.flip(replay(cassette))
      expect(error._tag).toBe("CassetteInvalid")
      expect(error.message).toContain(`The cassette ${cassette}, line 2, cannot be replayed: response.content: Expected string, actual 1`)
      const missing = yield* Effect.flip(replay(`${dir}/missing.jsonl`))
      expect(missing.message).toBe(`The cassette ${dir}/missing.jsonl cannot be replayed: it does not exist. Record it with --llm record:${dir}/missing.jsonl.`)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("records over any Llm layer, starting the cassette afresh", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cassette = `${dir}/c.jsonl`
      writeFileSync(cassette, "old session\n")
      const llm = yield* Effect.map(
        Layer.build(LlmRecord(cassette).pipe(Layer.provide(LlmFake([FakeReply.content("scripted")])), Layer.provide(TestPlatform))),
        Context.get(Llm)
      )
      yield* llm.complete(ask("x"))
      const lines = readFileSync(cassette, "utf8").trim().split("\n").map((line) => JSON.parse(line))
      expect(lines).toEqual([{
        request: ask("x"),
        response: { content: "scripted", model: "test-model", usage: { prompt_tokens: 0, completion_tokens: 0 }, latency_ms: 0, notes: [] }
      }])
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
