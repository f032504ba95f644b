/**
 * Agent end to end: tasks run by the real agent (state saved and audited after every node
 * change, skills and sandbox wired, a real audit file and the file store), with a Fake LLM. The
 * layers are built before the clock starts: what is timed is the agent driving its task.
 * - Answering at once: the agent's own time per node, against a budget of 2 ms.
 * - Sleeping 200 ms per call on a chain (calls never overlap): the share of wall time spent
 *   outside LLM calls, against a budget of 1 %; the median of three runs, with their range.
 * - Many tasks: 16 tasks of a 10-node llm_call chain at once, the model allowing 16 calls at a
 *   time, against one such task alone (target ≤ 1.3×: the tasks overlap, the agent adds little).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { FileSystem } from "@effect/platform"
import { Clock, Duration, Effect, Layer } from "effect"
import { Agent, AgentDefault } from "../src/Agent.ts"
import { type AgentConfig, configInside } from "../src/core/config.ts"
import { AuditLive } from "../src/layers/Audit.ts"
import { AppConfigFrom } from "../src/layers/Config.ts"
import { FakeReply, Llm, LlmFake } from "../src/layers/Llm.ts"
import { LuallmTest } from "../src/layers/Luallm.ts"
import { median, ratioRow } from "./measure.ts"
import type { BenchRow, BenchSize } from "./types.ts"

/** Task `task`'s plan: `count` llm_call nodes, `width` side by side per layer, each layer depending on the one above. */
const planOf = (task: number, count: number, width: number): string =>
  JSON.stringify({
    nodes: Array.from({ length: count }, (_, i) => ({
      id: `n${i}`,
      action: "llm_call",
      prompt_template: i < width ? `Step [t${task}/s${i}].` : `Step [t${task}/s${i}] after {n${i - width}}.`,
      depends_on: i < width ? [] : [`n${i - width}`]
    }))
  })

/** The scripted model's answers for task `task`: its plan, then one answer per node. */
const repliesFor = (task: number, nodes: number, width: number, delay: Duration.DurationInput | undefined) => {
  const options = delay === undefined ? {} : { delay }
  return [
    FakeReply.content(planOf(task, nodes, width), { ...options, when: `Request: bench task ${task}.` }),
    ...Array.from({ length: nodes }, (_, i) => FakeReply.content(`answer ${i}`, { ...options, when: `[t${task}/s${i}]` }))
  ]
}

/** The model allows `parallel` calls at a time, as a server with that many slots does. */
const slotsOf = (parallel: number) =>
  Layer.effect(
    Llm,
    Effect.gen(function*() {
      const inner = yield* Llm
      const slots = yield* Effect.makeSemaphore(parallel)
      return Llm.of({ ...inner, complete: (request) => slots.withPermits(1)(inner.complete(request)) })
    })
  )

/** The agent over a fresh temp dir, its layers built for the scope. */
const agentIn = (replies: ReadonlyArray<FakeReply>, parallel: number, adjust: (config: AgentConfig) => AgentConfig = (c) => c) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const home = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-agent-" })
    const base = configInside(home)
    // Unattended: no human confirms the bench's plans.
    const config = adjust({
      ...base,
      limits: { ...base.limits, max_task_steps: 1000 },
      approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" }
    })
    const context = yield* Layer.build(AgentDefault.pipe(
      Layer.provideMerge(slotsOf(parallel).pipe(Layer.provide(LlmFake(replies, { model: "bench-model" })))),
      Layer.provideMerge(LuallmTest({ servers: [] })),
      Layer.provideMerge(AuditLive),
      Layer.provideMerge(AppConfigFrom(config, { home, cwd: home }))
    ))
    return { agent: yield* Effect.provide(Agent, context), config }
  })

/** Runs one task to completion: its wall time, and the time inside LLM calls (from the audit log). */
const runTask = (nodes: number, width: number, delay: Duration.DurationInput | undefined) =>
  Effect.scoped(
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { agent, config } = yield* agentIn(repliesFor(0, nodes, width, delay), 1)
      const [elapsed, outcome] = yield* Effect.timed(agent.run("bench task 0."))
      if (outcome.task.state !== "complete") {
        return yield* Effect.dieMessage(`bench task ended ${outcome.task.state}: ${outcome.task.error ?? ""}`)
      }
      const audit = yield* fs.readFileString(config.audit.path)
      const llmMs = audit.split("\n").filter((line) => line.includes("\"event\":\"llm.call\"")).reduce((sum, line) => {
        const parsed: { readonly data?: { readonly duration_ms?: unknown } } = JSON.parse(line)
        return sum + (typeof parsed.data?.duration_ms === "number" ? parsed.data.duration_ms : 0)
      }, 0)
      return { wallMs: Duration.toMillis(elapsed), llmMs }
    })
  )

/** `tasks` tasks of a `nodes`-node chain started at once, the model allowing `tasks` calls at a time: the wall time until all are done. */
const runTasks = (tasks: number, nodes: number, delay: Duration.DurationInput) =>
  Effect.scoped(
    Effect.gen(function*() {
      const ids = Array.from({ length: tasks }, (_, i) => i)
      const { agent } = yield* agentIn(ids.flatMap((task) => repliesFor(task, nodes, 1, delay)), tasks, (config) => ({
        ...config,
        limits: { ...config.limits, max_concurrent_tasks: tasks }
      }))
      const [elapsed, outcomes] = yield* Effect.timed(
        Effect.flatMap(Effect.forEach(ids, (task) => agent.start(`bench task ${task}.`)), (handles) =>
          Effect.forEach(handles, (handle) => handle.await, { concurrency: "unbounded" }))
      )
      const unfinished = outcomes.find((outcome) => outcome.task.state !== "complete")
      if (unfinished !== undefined) {
        return yield* Effect.dieMessage(`bench task ended ${unfinished.task.state}: ${unfinished.task.error ?? ""}`)
      }
      return Duration.toMillis(elapsed)
    })
  )

export const agentBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    const nodes = size === "full" ? 50 : 5
    const sleepMs = size === "full" ? 200 : 20
    // Warm up the JIT and the sandbox-free path once, then measure the best of three.
    yield* runTask(nodes, 5, undefined)
    const instant = Math.min(...(yield* Effect.all([1, 2, 3].map(() => runTask(nodes, 5, undefined)))).map((run) => run.wallMs))
    const perNode = instant / nodes
    // A chain: plan + one call per node, one after another; three runs on a shared machine, the median and the range.
    const shares: Array<number> = []
    for (let run = 0; run < (size === "full" ? 3 : 1); run++) {
      const slept = yield* runTask(nodes, 1, Duration.millis(sleepMs))
      shares.push((100 * Math.max(0, slept.wallMs - slept.llmMs)) / slept.wallMs)
    }
    const outsideShare = median(shares)
    // Many tasks at once against one alone.
    const [many, chain] = size === "full" ? [16, 10] : [4, 3]
    const one = yield* runTasks(1, chain, Duration.millis(sleepMs))
    const all = yield* runTasks(many, chain, Duration.millis(sleepMs))
    return [
      {
        figure: `agent: time per node, ${nodes}-node task, instant fake LLM`,
        value: perNode,
        baseline: 2,
        baselineLabel: "budget 2 ms per node",
        unit: "ms",
        ratio: perNode / 2,
        target: 1,
        met: perNode <= 2
      },
      {
        figure: `agent: share of wall time outside LLM calls, ${nodes}-node chain, ${sleepMs} ms per call`,
        value: outsideShare,
        baseline: 1,
        baselineLabel: "budget 1 % of wall time",
        unit: "%",
        ratio: outsideShare,
        target: 1,
        met: outsideShare <= 1,
        spread: {
          value: [Math.min(...shares), Math.max(...shares)],
          baseline: [1, 1],
          ratio: [Math.min(...shares), Math.max(...shares)],
          of: `lowest–highest of ${shares.length} runs`
        }
      },
      ratioRow({
        figure: `agent: ${many} tasks of a ${chain}-node llm_call chain at once, ${sleepMs} ms per call, ${many} calls in parallel`,
        value: all,
        baseline: one,
        baselineLabel: `one such task alone`,
        unit: "ms",
        target: 1.3
      })
    ] satisfies ReadonlyArray<BenchRow>
  }).pipe(
    Effect.orDie, // a bench whose task cannot run is broken, and the runner says so
    Effect.provide(NodeContext.layer),
    Effect.withClock(Clock.make()) // real time, also when run under TestClock
  )
