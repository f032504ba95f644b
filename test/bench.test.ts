/**
 * `npm run bench` cannot rot: every bench runs once at its tiny size and must produce its rows
 * with real numbers and a target. The timings themselves are never asserted here.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { benches, runBenches } from "../bench/suite.ts"
import { postgresMissing } from "./support/postgres.ts"

if (postgresMissing !== undefined) console.log(`the Postgres step-overhead row is not expected: ${postgresMissing}`)

/** The rows issues #10, #13 and #16 ask for. */
const expectedFigures = [
  /^CLI start: luallm-agent --help$/,
  /^CLI start: luallm-agent status/,
  /^CLI start: --help with an empty compile cache/,
  /^step overhead: State\.save with its audit line, \d+ KB task$/,
  ...(postgresMissing === undefined ? [/^step overhead on Postgres: State\.save with its audit line, \d+ KB task$/] : []),
  /^sandbox start/,
  /^sandboxed fs\.readFile 1 KB$/,
  /^sandboxed fs\.readFile 64 KB$/,
  /^parallel skills: 4 CPU-bound skill nodes, maxParallel 4$/,
  /^graph: \S+ nodes validate\+sort\+execute$/,
  /^graph: time per node at \S+ nodes$/,
  /^graph: width-8 depth-3 llm_call graph, maxParallel 8$/,
  /^graph: width-8 depth-3 llm_call graph, maxParallel 1/,
  /^agent: time per node, \d+-node task, instant fake LLM$/,
  /^agent: share of wall time outside LLM calls, \d+-node chain, \d+ ms per call$/,
  /^agent: \d+ tasks of a \d+-node llm_call chain at once, \d+ ms per call, \d+ calls in parallel$/,
  /^llm: plans accepted on the first call, \d+ seeded requests, small model, with a schema/,
  /^llm: model calls per accepted plan, with a schema vs without$/,
  /^llm: prompt bytes repeating an earlier call's prefix, plan → draft → node calls of one task/,
  /^llm: width-8 depth-2 llm_call graph, two one-slot endpoints vs one$/
]

describe("bench suite", () => {
  it.live("every bench produces its rows, each with finite numbers and a target", () =>
    Effect.gen(function*() {
      const outcomes = yield* runBenches("tiny")
      expect(outcomes.map((outcome) => outcome.name)).toEqual(benches.map((bench) => bench.name))
      for (const outcome of outcomes) {
        expect(outcome._tag === "Broken" ? `${outcome.name} broke: ${outcome.cause}` : outcome.name).toBe(outcome.name)
      }
      const rows = outcomes.flatMap((outcome) => (outcome._tag === "Measured" ? outcome.rows : []))
      for (const figure of expectedFigures) {
        expect(rows.filter((row) => figure.test(row.figure)).map((row) => row.figure), String(figure)).toHaveLength(1)
      }
      for (const row of rows) {
        for (const value of [row.value, row.baseline, row.ratio, row.target]) {
          expect(Number.isFinite(value) && value > 0, `${row.figure}: ${value}`).toBe(true)
        }
        expect(row.baselineLabel, row.figure).not.toBe("")
        expect(row.met, row.figure).toBe(row.ratio <= row.target)
        if (row.spread !== undefined) {
          const { baseline, ratio, value } = row.spread
          for (const [low, high] of [value, baseline, ratio]) expect(Number.isFinite(low) && low > 0 && low <= high, `${row.figure}: spread ${low}–${high}`).toBe(true)
          expect(row.spread.of, row.figure).not.toBe("")
        }
      }
    }), 120_000) // a time budget for every bench at its tiny size, a Postgres server among them, on a busy machine
})
