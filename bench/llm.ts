/**
 * The local-model protocol, measured against the loopback server (test/support/openaiServer.ts):
 * - Planning with a small model that fumbles the format 30 % of the time unless a schema
 *   constrains it: plans accepted on the first call over 100 seeded requests, with and without
 *   the schema, and model calls per accepted plan (the agent retries with the errors).
 * - Prompt-cache reuse: the share of each call's prompt bytes (plan → draft → node calls of one
 *   task, after the first call) that repeats a prefix an earlier call sent. Target ≥ 80 %.
 * - Several servers: a width-8 llm_call graph on two one-slot endpoints against one. Target ≤ 0.6×.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { FileSystem } from "@effect/platform"
import { Clock, Duration, Effect, Layer } from "effect"
import { Agent, AgentDefault } from "../src/Agent.ts"
import { type AgentConfig, configInside } from "../src/core/config.ts"
import { executeGraph } from "../src/core/executor.ts"
import type { Graph, Node } from "../src/core/graph.ts"
import { parsePlan, planJsonSchema } from "../src/core/plan.ts"
import { agentSystemPrompt, planningUserPrompt, shrinkSteps, type SkillSummary } from "../src/core/prompts.ts"
import { Approvals } from "../src/layers/Approvals.ts"
import { AuditTest } from "../src/layers/Audit.ts"
import { AppConfigFrom } from "../src/layers/Config.ts"
import { type ChatMessage, FakeReply, LlmFake, LlmRequests, type LlmShape } from "../src/layers/Llm.ts"
import { LuallmTest } from "../src/layers/Luallm.ts"
import { builtinSkillsDir } from "../src/packageRoot.ts"
import { configFor, liveLlm } from "../test/support/liveLlm.ts"
import { openAiServer } from "../test/support/openaiServer.ts"
import { ratioRow } from "./measure.ts"
import type { BenchRow, BenchSize } from "./types.ts"

// ---------------------------------------------------------------------------------------------
// Planning with a small model

const addSkill: SkillSummary = { name: "add", description: "Adds two numbers", args: { a: "number", b: "number" } }
const goodPlan = JSON.stringify({
  nodes: [
    { id: "sum", depends_on: [], action: "skill", skill_name: "add", skill_args: { a: 2, b: 3 } },
    { id: "say", depends_on: ["sum"], action: "llm_call", prompt_template: "The sum is {sum}. Say it in words." }
  ]
})
const metadata = { prompt: "bench", created_at: "1970-01-01T00:00:00.000Z", model: "bench" }
const maxCalls = 4

/** Plans `requests` requests, each retried with its errors like the agent does; first-call successes and calls per accepted plan. */
const planAll = (llm: LlmShape, requests: number) =>
  Effect.gen(function*() {
    let firstCall = 0
    let calls = 0
    let accepted = 0
    for (let i = 0; i < requests; i++) {
      let feedback: string | null = null
      for (let attempt = 1; attempt <= maxCalls; attempt++) {
        calls++
        const shrink = shrinkSteps[0] ?? { catalogue: "full", excerpt: null }
        const completion = yield* llm.complete({
          model: "bench-model",
          messages: [
            { role: "system", content: agentSystemPrompt({ skills: [addSkill], catalogue: "full" }) },
            { role: "user", content: planningUserPrompt({ request: `Add 2 and 3 (request ${i}).`, feedback, models: ["bench-model"], shrink }) }
          ],
          max_tokens: 4096,
          output: { name: "plan", schema: planJsonSchema },
          affinity: `plan-${i}`
        })
        const parsed = parsePlan(completion.content, { knownSkills: new Set(["add"]), maxNodes: 200, metadata })
        if (parsed._tag === "Right") {
          accepted++
          if (attempt === 1) firstCall++
          break
        }
        feedback = parsed.left.join("\n")
      }
    }
    return { firstCallShare: (100 * firstCall) / requests, callsPerPlan: calls / Math.max(1, accepted) }
  })

const planningRun = (constrained: AgentConfig["llm"]["constrained"], requests: number) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-llm-" })
    const server = yield* openAiServer({
      kind: "llama-server",
      models: ["bench-model"],
      smallModel: { seed: 2026, mistakeRate: 0.3 },
      reply: () => goodPlan
    })
    const llm = yield* liveLlm(configFor(dir, { base_url: server.url, constrained }))
    return yield* planAll(llm, requests)
  }))

// ---------------------------------------------------------------------------------------------
// Prefix reuse across one task

const doubleSkill = `/* @skill {"name": "double", "version": "1.0.0", "description": "Doubles a number", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * 2 }
`
const doubleTests = `const { run } = require("double")
test("doubles 2", () => { assert.equal(run({ n: 2 }), 4) })
test("doubles 0", () => { assert.equal(run({ n: 0 }), 0) })
`
const taskPlan = JSON.stringify({
  nodes: [
    { id: "d", depends_on: [], action: "skill", skill_name: "double", skill_args: { n: 21 }, description: "Return twice the number n." },
    { id: "words", depends_on: ["d"], action: "llm_call", prompt_template: "Write {d} in words." },
    { id: "check", depends_on: ["d"], action: "llm_call", prompt_template: "Is {d} even? Answer yes or no." }
  ]
})

const promptText = (messages: ReadonlyArray<ChatMessage>): string => messages.map((m) => m.content).join("\n")

const commonPrefix = (a: string, b: string): number => {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return i
}

/** The calls of one task (plan, draft, node calls) and the share of bytes after the first that repeat an earlier prefix. */
const prefixReuse = Effect.scoped(Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const home = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-prefix-" })
  const config = configInside(home, { builtinSkillsDir })
  const layer = AgentDefault.pipe(
    Layer.provideMerge(LlmFake([
      FakeReply.content(taskPlan, { when: "Request:" }),
      FakeReply.content(JSON.stringify({ code: doubleSkill, tests: doubleTests }), { when: "Write the skill file" }),
      FakeReply.content("forty-two", { when: "Write 42 in words" }),
      FakeReply.content("yes", { when: "Is 42 even" })
    ], { model: "bench-model" })),
    Layer.provideMerge(LuallmTest({ servers: [] })),
    Layer.provideMerge(AuditTest),
    Layer.provideMerge(AppConfigFrom({ ...config, approval_tiers: { ...config.approval_tiers, task_confirmation: "auto" } }, { home, cwd: home }))
  )
  const prompts = yield* Effect.gen(function*() {
    const agent = yield* Agent
    const approvals = yield* Approvals
    const paused = yield* agent.run("Double 21, then say it in words and whether it is even.")
    const [pending] = yield* approvals.listPending
    if (paused.paused?.reason !== "approval" || pending === undefined) return yield* Effect.dieMessage("the bench task did not pause for approval")
    yield* approvals.resolve(pending.id, true, "bench")
    yield* approvals.promote(pending.id)
    const done = yield* agent.resume()
    if (done.task.state !== "complete") return yield* Effect.dieMessage(`the bench task ended ${done.task.state}: ${done.task.error ?? ""}`)
    return (yield* (yield* LlmRequests).requests).map((request) => promptText(request.messages))
  }).pipe(Effect.provide(layer))
  const encoder = new TextEncoder()
  const bytes = (text: string) => encoder.encode(text).length
  let reused = 0
  let total = 0
  prompts.forEach((prompt, i) => {
    if (i === 0) return
    const prefix = Math.max(...prompts.slice(0, i).map((earlier) => commonPrefix(earlier, prompt)))
    reused += bytes(prompt.slice(0, prefix))
    total += bytes(prompt)
  })
  return { share: (100 * reused) / total, calls: prompts.length }
}))

// ---------------------------------------------------------------------------------------------
// Two endpoints against one

const layered = (width: number, depth: number): Graph => {
  const layer = (l: number) => Array.from({ length: width }, (_, i) => `l${l}_${i}`)
  const nodes = Array.from({ length: depth }, (_, l) =>
    layer(l).map((id): Node => ({
      id,
      action: "llm_call",
      prompt_template: `Step ${id}.`,
      depends_on: l === 0 ? [] : layer(l - 1),
      status: "pending",
      retries: 0,
      max_retries: 0
    })))
  return { nodes: nodes.flat(), metadata }
}

const graphOnEndpoints = (count: 1 | 2, generationMs: number) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-endpoints-" })
    const servers = yield* Effect.all(Array.from({ length: count }, () => openAiServer({ kind: "llama-server", slots: 1, generationMs })))
    const llm = yield* liveLlm(configFor(dir, { endpoints: servers.map((server) => server.url) }, (c) => ({
      ...c,
      limits: { ...c.limits, llm_timeout_seconds: 60 }
    })))
    const ask = (text: string) => llm.complete({ model: "bench-model", messages: [{ role: "user", content: text }], affinity: "bench-task" })
    yield* Effect.all(servers.map(() => ask("warm up")), { concurrency: "unbounded" }) // probes, connections
    const [elapsed, done] = yield* Effect.timed(
      executeGraph(layered(8, 2), { runNode: (node) => ask(node.id), maxParallel: 8 })
    )
    const failed = done.nodes.find((node) => node.status !== "complete")
    if (failed !== undefined) return yield* Effect.dieMessage(`node ${failed.id} ${failed.status}: ${failed.error ?? ""}`)
    return Duration.toMillis(elapsed)
  }))

export const llmBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    // The tiny pass (npm test) only proves the rows are produced.
    const requests = size === "full" ? 100 : 30
    const constrained = yield* planningRun("auto", requests)
    const unconstrained = yield* planningRun("off", requests)
    const reuse = yield* prefixReuse
    const generationMs = size === "full" ? 300 : 80
    const one = yield* graphOnEndpoints(1, generationMs)
    const two = yield* graphOnEndpoints(2, generationMs)
    return [
      {
        figure: `llm: plans accepted on the first call, ${requests} seeded requests, small model, with a schema (llama-server)`,
        value: constrained.firstCallShare,
        baseline: unconstrained.firstCallShare,
        baselineLabel: `without a schema: ${unconstrained.firstCallShare.toFixed(0)} % (30 % format mistakes)`,
        unit: "%",
        ratio: unconstrained.firstCallShare / Math.max(constrained.firstCallShare, 1e-9),
        target: 1,
        met: constrained.firstCallShare >= unconstrained.firstCallShare
      },
      ratioRow({
        figure: "llm: model calls per accepted plan, with a schema vs without",
        value: constrained.callsPerPlan,
        baseline: unconstrained.callsPerPlan,
        baselineLabel: `without a schema: ${unconstrained.callsPerPlan.toFixed(2)} calls`,
        unit: "calls",
        target: 1
      }),
      {
        figure: `llm: prompt bytes repeating an earlier call's prefix, plan → draft → node calls of one task (${reuse.calls} calls)`,
        value: reuse.share,
        baseline: 80,
        baselineLabel: "target 80 % of the bytes of the second and later calls",
        unit: "%",
        ratio: 80 / Math.max(reuse.share, 1e-9),
        target: 1,
        met: reuse.share >= 80
      },
      ratioRow({
        figure: "llm: width-8 depth-2 llm_call graph, two one-slot endpoints vs one",
        value: two,
        baseline: one,
        baselineLabel: `one endpoint, one slot, ${generationMs} ms per answer`,
        unit: "ms",
        target: 0.6
      })
    ] satisfies ReadonlyArray<BenchRow>
  }).pipe(
    Effect.orDie, // a bench that cannot run is broken, and the runner says so
    Effect.provide(NodeContext.layer),
    Effect.withClock(Clock.make())
  )
