import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream, TestClock } from "effect"
import { type CompletionRequest, FakeReply, Llm, LlmFake, LlmHttpError, LlmRequests } from "../../src/layers/Llm.ts"

const ask = (text: string, model = "fake-model"): CompletionRequest => ({
  model,
  messages: [{ role: "system", content: "You plan tasks." }, { role: "user", content: text }]
})

describe("LlmFake", () => {
  it.effect("answers scripted replies in order, with the given usage", () =>
    Effect.gen(function*() {
      const llm = yield* Llm
      const first = yield* llm.complete(ask("one"))
      const second = yield* llm.complete(ask("two"))
      expect(first).toEqual({ content: "first", model: "fake-model", usage: { prompt_tokens: 0, completion_tokens: 0 }, latency_ms: 0, notes: [], timings: null, constrained: false, endpoint: "scripted fake" })
      expect(second.content).toBe("second")
      expect(second.usage).toEqual({ prompt_tokens: 10, completion_tokens: 2 })
    }).pipe(Effect.provide(LlmFake([FakeReply.content("first"), FakeReply.content("second", { usage: { prompt_tokens: 10, completion_tokens: 2 } })]))))

  it.effect("answers by pattern on the last user message, whatever the order", () =>
    Effect.gen(function*() {
      const llm = yield* Llm
      expect((yield* llm.complete(ask("write a skill for csv files"))).content).toBe("the skill")
      expect((yield* llm.complete(ask("anything else"))).content).toBe("in order")
      expect((yield* llm.complete(ask("Plan: summarise the report"))).content).toBe("the plan")
    }).pipe(
      Effect.provide(LlmFake([
        FakeReply.content("the plan", { when: /^plan:/i }),
        FakeReply.content("in order"),
        FakeReply.content("the skill", { when: "skill" })
      ]))
    ))

  it.effect("fails with the scripted error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip((yield* Llm).complete(ask("x")))
      expect(error).toBeInstanceOf(LlmHttpError)
      expect(error.message).toContain("answered HTTP 503")
    }).pipe(
      Effect.provide(LlmFake([FakeReply.fail(new LlmHttpError({ url: "http://fake", status: 503, body: "loading", attempts: 1, retryAfter: null }))]))
    ))

  it.effect("waits the scripted delay on the Effect clock and reports it as latency", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork((yield* Llm).complete(ask("slow")))
      yield* TestClock.adjust("3 seconds")
      expect((yield* Fiber.join(fiber)).latency_ms).toBe(3_000)
    }).pipe(Effect.provide(LlmFake([FakeReply.content("late", { delay: "3 seconds" })]))))

  it.effect("fails with LlmScriptExhausted naming the request once the script runs out", () =>
    Effect.gen(function*() {
      const llm = yield* Llm
      yield* llm.complete(ask("one"))
      const error = yield* Effect.flip(llm.complete(ask("summarise the quarterly report")))
      expect(error._tag).toBe("LlmScriptExhausted")
      expect(error.message).toBe(
        `The scripted LLM has no reply for request #2 (model fake-model, last user message "summarise the quarterly report"); its script held 2 replies, all used or not matching. Add a reply for this request to the script.`
      )
    }).pipe(Effect.provide(LlmFake([FakeReply.content("one"), FakeReply.content("never", { when: "csv" })]))))

  it.effect("records every request and streams the answer as one delta and the result", () =>
    Effect.gen(function*() {
      const llm = yield* Llm
      const parts = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.stream(ask("hi"))))
      expect(parts.map((part) => part._tag)).toEqual(["Delta", "Done"])
      expect(parts[0]).toEqual({ _tag: "Delta", text: "hello" })
      expect(yield* (yield* LlmRequests).requests).toEqual([ask("hi")])
      expect(yield* llm.resolveModel("code")).toBe("scripted")
    }).pipe(Effect.provide(LlmFake([FakeReply.content("hello")], { model: "scripted" }))))
})
