/**
 * askModel keeps every call inside the model's context and the task inside its token budget:
 * it shortens what can be shortened, cuts max_tokens to the room left, and otherwise fails with
 * one sentence before anything is sent (never an HTTP 400 from the server).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { askModel, type ModelRequest, TaskTokens } from "../../src/agent/llmCall.ts"
import { silent } from "../../src/agent/progress.ts"
import { type AgentConfig, configInside } from "../../src/core/config.ts"
import { agentSystemPrompt, excerpt, type SkillSummary } from "../../src/core/prompts.ts"
import { AuditMemory, AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { FakeReply, Llm, LlmFake, LlmRequests } from "../../src/layers/Llm.ts"
import { configFor, liveLlm } from "../support/liveLlm.ts"
import { openAiServer } from "../support/openaiServer.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const skills: ReadonlyArray<SkillSummary> = Array.from({ length: 40 }, (_, i) => ({
  name: `skill_${i}`,
  description: `Does thing ${i}. ${"It has a long explanation of its arguments and edge cases. ".repeat(6)}`,
  args: { path: "string: the file" }
}))

const nodeInput = "row,".repeat(5_000)

/** A node call whose prompt has a long catalogue and a long input. */
const nodeCall: ModelRequest = {
  purpose: "node",
  model: "test-model",
  taskId: "task-1",
  nodeId: "sum",
  prompt: (shrink) => ({
    system: agentSystemPrompt({ skills, catalogue: shrink.catalogue }),
    user: `Sum these: ${excerpt(nodeInput, shrink.excerpt)}`
  })
}

const config = (change: (c: AgentConfig) => AgentConfig = (c) => c) => change(configInside("/tmp/luallm-agent-llmcall"))

const layer = (contextTokens: number, change?: (c: AgentConfig) => AgentConfig) =>
  Layer.mergeAll(LlmFake([FakeReply.content("ok"), FakeReply.content("ok")], { contextTokens }), AuditTest).pipe(
    Layer.provideMerge(AppConfigFrom(config(change))),
    Layer.provideMerge(TestPlatform)
  )

const sent = Effect.flatMap(LlmRequests, (requests) => requests.requests)
const calls = Effect.map(Effect.flatMap(AuditMemory, (audit) => audit.entries), (entries) => entries.filter((e) => e.event === "llm.call"))

describe("askModel: the context budget", () => {
  it.effect("sends the whole prompt when it fits, with max_tokens from llm.max_tokens for the kind of call", () =>
    Effect.gen(function*() {
      yield* askModel(nodeCall, silent)
      const [request] = yield* sent
      expect(request?.max_tokens).toBe(2048)
      expect(request?.messages[1]?.content).toBe(`Sum these: ${nodeInput}`)
      expect((yield* calls)[0]?.data["shortened"]).toEqual([])
    }).pipe(Effect.provide(layer(100_000))))

  it.effect("shortens the catalogue, then the node input, until the prompt fits, and says so in the audit line", () =>
    Effect.gen(function*() {
      yield* askModel(nodeCall, silent)
      const [request] = yield* sent
      const user = request?.messages[1]?.content ?? ""
      expect(request?.messages[0]?.content).toContain("- skill_0: Does thing 0.\n")
      expect(request?.messages[0]?.content).not.toContain("long explanation")
      expect(user).toContain("characters left out here to fit the model's context")
      expect(user.length).toBeLessThan(nodeInput.length)
      expect((yield* calls)[0]?.data["shortened"]).toEqual([
        "the skill catalogue cut to names and one line each",
        expect.stringMatching(/node inputs and earlier feedback cut to \d+ characters each/)
      ])
    }).pipe(Effect.provide(layer(6_000))))

  it.effect("cuts max_tokens to the room the prompt leaves", () =>
    Effect.gen(function*() {
      const small: ModelRequest = { ...nodeCall, prompt: () => ({ system: "s", user: "u" }) }
      yield* askModel(small, silent)
      expect((yield* sent)[0]?.max_tokens).toBe(1000 - 10)
    }).pipe(Effect.provide(layer(1_000))))

  it.effect("fails with one sentence naming the size and the limit when nothing fits, sending nothing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(askModel({ ...nodeCall, prompt: () => ({ system: "s".repeat(3000), user: "u" }) }, silent))
      expect(error._tag).toBe("LlmContextOverflow")
      expect(error.message).toBe(
        "The node prompt needs about 1009 tokens plus 512 for the answer, more than the 1000-token context of test-model. Use a model or server with a larger context (llama-server -c, llm.context_tokens), lower llm.max_tokens, or make the request smaller."
      )
      expect(yield* sent).toEqual([])
    }).pipe(Effect.provide(layer(1_000))))
})

describe("askModel: the task's token budget", () => {
  const budget = (used: number) => {
    let spent = used
    return TaskTokens.of({ used: Effect.sync(() => spent), add: (n) => Effect.sync(() => void (spent += n)) })
  }

  it.effect("fails a call that would take the task past limits.max_task_tokens, naming the tokens used", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(askModel({ ...nodeCall, prompt: () => ({ system: "s", user: "u" }) }, silent).pipe(
        Effect.provideService(TaskTokens, budget(9_000))
      ))
      expect(error._tag).toBe("TaskTokenBudgetExceeded")
      expect(error.message).toBe(
        "The task has used 9000 tokens; the next node call would add up to 2058, past limits.max_task_tokens (10000). Raise limits.max_task_tokens and resume the task, or reset it and ask for less."
      )
      expect(yield* sent).toEqual([])
    }).pipe(Effect.provide(layer(100_000, (c) => ({ ...c, limits: { ...c.limits, max_task_tokens: 10_000 } })))))

  it.effect("adds what each call used to the task's count", () =>
    Effect.gen(function*() {
      const tokens = budget(0)
      yield* askModel({ ...nodeCall, prompt: () => ({ system: "s", user: "u" }) }, silent).pipe(Effect.provideService(TaskTokens, tokens))
      // The scripted model reports no usage: the estimate counts (10 prompt + 1 answer).
      expect(yield* tokens.used).toBe(11)
    }).pipe(Effect.provide(layer(100_000))))
})

describe("askModel against llama-server", () => {
  it.scopedLive("counts with /tokenize near the limit, and never sends a prompt the server would refuse", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const server = yield* openAiServer({ kind: "llama-server", contextTokens: 300 })
      const settings = configFor(dir, { base_url: server.url })
      const llm = yield* liveLlm(settings)
      const request: ModelRequest = { ...nodeCall, prompt: () => ({ system: "word ".repeat(400), user: "go" }) }
      const error = yield* Effect.flip(askModel(request, silent).pipe(
        Effect.provideService(Llm, llm),
        Effect.provide(Layer.merge(AuditTest, AppConfigFrom(settings)))
      ))
      // 400 words + "go", as /tokenize counts them, plus the template's overhead per message.
      expect(error).toMatchObject({ _tag: "LlmContextOverflow", promptTokens: 409, exact: true, contextTokens: 300 })
      expect(server.received().filter((r) => r.path === "/tokenize")).toHaveLength(2)
      expect(server.chats()).toHaveLength(0)
    }).pipe(Effect.provide(TestPlatform)))
})
