/**
 * Skills in parallel graph nodes run in parallel: a task of four independent skill nodes, each
 * a CPU-bound skill, run by the real agent (planner, graph executor, skill runner, sandbox
 * worker pool) at `max_parallel_nodes: 4`, against the same task at `max_parallel_nodes: 1`
 * (the nodes one after another). Each agent keeps its layer (and its pool's warm workers)
 * across runs; after one run each, the two alternate and the medians are compared. On two
 * cores the target is 0.6×.
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

const NODES = 4

const burnSkill = `/* @skill {"name": "burn", "version": "1.0.0", "public_functions": ["run"]} */
export function run({ n }) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003; return x }
`

const plan = (iterations: number) =>
  JSON.stringify({
    nodes: Array.from({ length: NODES }, (_, i) => ({ id: `burn${i}`, action: "skill", skill_name: "burn", skill_args: { n: iterations + i } }))
  })

/** An agent for the task at `maxParallel` in a fresh temp dir; `run` is one run's wall time in ms. */
const agentAt = (iterations: number, maxParallel: number, runs: number) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const home = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-parallel-" })
    const base = configInside(home)
    // Unattended: no human confirms the bench's plans.
    const config = {
      ...base,
      limits: { ...base.limits, max_parallel_nodes: maxParallel, skill_timeout_seconds: 60 },
      approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" as const }
    }
    yield* fs.makeDirectory(config.skills.allowed_dir, { recursive: true })
    yield* fs.writeFileString(`${config.skills.allowed_dir}/burn.js`, burnSkill)
    const context = yield* Layer.build(AgentDefault.pipe(
      // One planning answer per run: the warm-up and each round.
      Layer.provideMerge(LlmFake(Array.from({ length: runs }, () => FakeReply.content(plan(iterations), { when: "Request:" })), { model: "bench-model" })),
      Layer.provideMerge(LuallmTest({ servers: [] })),
      Layer.provideMerge(AuditLive),
      Layer.provideMerge(AppConfigFrom(config, { home, cwd: home }))
    ))
    return Effect.gen(function*() {
      const [elapsed, outcome] = yield* Effect.timed(Effect.flatMap(Agent, (agent) => agent.run("burn")))
      if (outcome.task.state !== "complete") {
        return yield* Effect.dieMessage(`bench task ended ${outcome.task.state}: ${outcome.task.error ?? ""}`)
      }
      return Duration.toMillis(elapsed)
    }).pipe(Effect.provide(context))
  })

const median = (values: ReadonlyArray<number>): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN

export const parallelSkillsBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    const [iterations, rounds] = size === "full" ? [15_000_000, 3] : [300_000, 1]
    const parallelRun = yield* agentAt(iterations, NODES, rounds + 1)
    const sequentialRun = yield* agentAt(iterations, 1, rounds + 1)
    // The first run of each starts its pool's workers; then they alternate, as the machine's load does.
    yield* parallelRun
    yield* sequentialRun
    const times: [Array<number>, Array<number>] = [[], []]
    for (let round = 0; round < rounds; round++) {
      times[0].push(yield* parallelRun)
      times[1].push(yield* sequentialRun)
    }
    const parallel = median(times[0])
    const sequential = median(times[1])
    const ratio = parallel / sequential
    return [
      {
        figure: `parallel skills: ${NODES} CPU-bound skill nodes, maxParallel ${NODES}`,
        value: parallel,
        baseline: sequential,
        baselineLabel: `the same task at maxParallel 1, one node after another`,
        unit: "ms",
        ratio,
        target: 0.6,
        met: ratio <= 0.6
      }
    ] satisfies ReadonlyArray<BenchRow>
  }).pipe(
    Effect.scoped,
    Effect.orDie, // a bench whose task cannot run is broken, and the runner says so
    Effect.provide(NodeContext.layer),
    Effect.withClock(Clock.make()) // real time, also when run under TestClock
  )
