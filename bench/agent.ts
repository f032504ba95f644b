/**
 * Agent end to end: a 50-node task run by the real agent (state saved and audited after every
 * node change, skills and sandbox wired, a real audit file), with a Fake LLM.
 * - Answering at once: the agent's own time per node, against a budget of 2 ms.
 * - Sleeping 200 ms per call on a chain (calls never overlap): the share of wall time spent
 *   outside LLM calls, against a budget of 1 %.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { FileSystem } from "@effect/platform"
import { Clock, Duration, Effect, Layer } from "effect"
import { Agent, AgentDefault } from "../src/Agent.ts"
import { configInside } from "../src/core/config.ts"
import { AuditLive } from "../src/layers/Audit.ts"
import { AppConfigFrom } from "../src/layers/Config.ts"
import { FakeReply, LlmFake } from "../src/layers/Llm.ts"
import { LuallmTest } from "../src/layers/Luallm.ts"
import type { BenchRow, BenchSize } from "./types.ts"

/** `count` llm_call nodes, `width` side by side per layer, each layer depending on the one above. */
const planOf = (count: number, width: number): string =>
  JSON.stringify({
    nodes: Array.from({ length: count }, (_, i) => ({
      id: `n${i}`,
      action: "llm_call",
      prompt_template: i < width ? `Step ${i}.` : `Step ${i} after {n${i - width}}.`,
      depends_on: i < width ? [] : [`n${i - width}`]
    }))
  })

/** Runs one task to completion in a fresh temp dir: its wall time, and the time inside LLM calls (from the audit log). */
const runTask = (nodes: number, width: number, delay: Duration.DurationInput | undefined) =>
  Effect.scoped(
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-agent-" })
      const base = configInside(home)
      const config = { ...base, limits: { ...base.limits, max_task_steps: 1000 } }
      const options = delay === undefined ? {} : { delay }
      const replies = [
        FakeReply.content(planOf(nodes, width), { ...options, when: "Request:" }),
        ...Array.from({ length: nodes }, (_, i) => FakeReply.content(`answer ${i}`, options))
      ]
      const layer = AgentDefault.pipe(
        Layer.provideMerge(LlmFake(replies, { model: "bench-model" })),
        Layer.provideMerge(LuallmTest({ servers: [] })),
        Layer.provideMerge(AuditLive),
        Layer.provideMerge(AppConfigFrom(config, { home, cwd: home }))
      )
      const [elapsed, outcome] = yield* Effect.timed(Effect.flatMap(Agent, (agent) => agent.run("bench")).pipe(Effect.provide(layer)))
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

export const agentBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    const nodes = size === "full" ? 50 : 5
    const sleepMs = size === "full" ? 200 : 20
    // Warm up the JIT and the sandbox-free path once, then measure the best of three.
    yield* runTask(nodes, 5, undefined)
    const instant = Math.min(...(yield* Effect.all([1, 2, 3].map(() => runTask(nodes, 5, undefined)))).map((run) => run.wallMs))
    const perNode = instant / nodes
    // A chain: plan + one call per node, one after another.
    const slept = yield* runTask(nodes, 1, Duration.millis(sleepMs))
    const outsideShare = (100 * Math.max(0, slept.wallMs - slept.llmMs)) / slept.wallMs
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
        met: outsideShare <= 1
      }
    ] satisfies ReadonlyArray<BenchRow>
  }).pipe(
    Effect.orDie, // a bench whose task cannot run is broken, and the runner says so
    Effect.provide(NodeContext.layer),
    Effect.withClock(Clock.make()) // real time, also when run under TestClock
  )
