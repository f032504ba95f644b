/**
 * Every benchmark `npm run bench` runs, in order. Each module exports
 * `(size: BenchSize) => Effect<ReadonlyArray<BenchRow>>`; a new one is one line in `benches`.
 */
import { Cause, Effect, Exit } from "effect"
import { agentBench } from "./agent.ts"
import { cliBench } from "./cli.ts"
import { graphBench } from "./graph.ts"
import { parallelSkillsBench } from "./parallelSkills.ts"
import { llmBench } from "./llm.ts"
import { sandboxBench } from "./sandbox.ts"
import { stepOverheadBench } from "./stepOverhead.ts"
import type { BenchRow, BenchSize } from "./types.ts"

export interface Bench {
  readonly name: string
  readonly run: (size: BenchSize) => Effect.Effect<ReadonlyArray<BenchRow>>
}

export const benches: ReadonlyArray<Bench> = [
  { name: "cli", run: cliBench },
  { name: "step overhead", run: stepOverheadBench },
  { name: "sandbox", run: sandboxBench },
  { name: "parallel skills", run: parallelSkillsBench },
  { name: "graph", run: graphBench },
  { name: "agent", run: agentBench },
  { name: "llm", run: llmBench }
]

/** A bench's rows, or why it could not produce them (a bench that dies must not hide the others). */
export type BenchOutcome =
  | { readonly _tag: "Measured"; readonly name: string; readonly rows: ReadonlyArray<BenchRow> }
  | { readonly _tag: "Broken"; readonly name: string; readonly cause: string }

/** Runs the benches one after another: they time the same machine, so they must not overlap. */
export const runBenches = (size: BenchSize, selected: ReadonlyArray<Bench> = benches) =>
  Effect.forEach(selected, (bench) =>
    Effect.map(Effect.exit(bench.run(size)), Exit.match({
      onFailure: (cause): BenchOutcome => ({ _tag: "Broken", name: bench.name, cause: Cause.pretty(cause) }),
      onSuccess: (rows): BenchOutcome => ({ _tag: "Measured", name: bench.name, rows })
    })))
