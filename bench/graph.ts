/**
 * Graph engine benchmarks: validate + sort + execute on large generated DAGs (must grow about
 * linearly), and the wall time of a small llm_call graph against a sleeping action (must overlap
 * independent nodes up to maxParallel).
 */
import { Clock, Duration, Effect, Either } from "effect"
import { executeGraph } from "../src/core/executor.ts"
import { type Graph, isComplete, type Node, topologicalSort, validate } from "../src/core/graph.ts"
import type { BenchRow, BenchSize } from "./types.ts"

const metadata = { prompt: "bench", created_at: "1970-01-01T00:00:00.000Z", model: "bench" }

const llmCall = (id: string, depends_on: ReadonlyArray<string>): Node => ({
  id,
  action: "llm_call",
  prompt_template: depends_on.length === 0 ? "Begin." : `Go on from {${depends_on[0]}}.`,
  depends_on,
  status: "pending",
  retries: 0,
  max_retries: 0
})

/** A reproducible random DAG in which each node depends on up to `edges` earlier nodes. */
const randomDag = (size: number, edges: number): Graph => {
  let seed = 42
  // Park–Miller: small, seeded and exact in doubles.
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647
  const nodes = Array.from({ length: size }, (_, i) => {
    const deps = Array.from({ length: Math.min(i, edges) }, () => `n${Math.floor(random() * i)}`)
    return llmCall(`n${i}`, Array.from(new Set(deps)))
  })
  return { nodes, metadata }
}

/** `depth` layers of `width` nodes; each node waits for the whole layer before it. */
const layered = (width: number, depth: number): Graph => {
  const layer = (l: number) => Array.from({ length: width }, (_, i) => `l${l}_${i}`)
  const nodes = Array.from({ length: depth }, (_, l) => layer(l).map((id) => llmCall(id, l === 0 ? [] : layer(l - 1))))
  return { nodes: nodes.flat(), metadata }
}

const validateSortExecute = (graph: Graph) =>
  Effect.gen(function*() {
    if (validate(graph).length > 0 || Either.isLeft(topologicalSort(graph))) {
      return yield* Effect.dieMessage("the generated graph is invalid")
    }
    const done = yield* executeGraph(graph, { runNode: () => Effect.void, maxParallel: 8 })
    if (!isComplete(done)) return yield* Effect.dieMessage("the generated graph did not complete")
  })

/** The fastest of `runs` runs, in milliseconds. */
const fastest = <E, R>(effect: Effect.Effect<unknown, E, R>, runs: number) =>
  Effect.map(
    Effect.forEach(Array.from({ length: runs }), () => Effect.timed(effect)),
    (timings) => Math.min(...timings.map(([duration]) => Duration.toMillis(duration)))
  )

const row = (
  figure: string,
  value: number,
  baseline: number,
  baselineLabel: string,
  unit: BenchRow["unit"],
  target: number
): BenchRow => {
  const ratio = value / baseline
  return { figure, value, baseline, baselineLabel, unit, ratio, target, met: ratio <= target }
}

const thousands = (n: number) => n >= 1000 ? `${n / 1000}k` : `${n}`

export const graphBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    const [small, large, sleepMs, runs] = size === "full" ? [1_000, 10_000, 100, 3] : [100, 1_000, 10, 1]
    const smallGraph = randomDag(small, 5)
    const largeGraph = randomDag(large, 5)
    yield* validateSortExecute(smallGraph) // warm up the JIT before timing anything
    const smallMs = yield* fastest(validateSortExecute(smallGraph), runs)
    const largeMs = yield* fastest(validateSortExecute(largeGraph), runs)

    const sleepy = (maxParallel: number) =>
      executeGraph(layered(8, 3), { runNode: () => Effect.sleep(Duration.millis(sleepMs)), maxParallel })
    // Best of two: the first run also pays for compiling the timer path, a lot next to 10 ms sleeps.
    const parallelMs = yield* fastest(sleepy(8), 2)
    const sequentialMs = yield* fastest(sleepy(1), 1)

    return [
      row(
        `graph: ${thousands(large)} nodes validate+sort+execute`,
        largeMs,
        smallMs * (large / small),
        `${large / small} × ${thousands(small)} nodes (${smallMs.toFixed(1)} ms)`,
        "ms",
        1.5
      ),
      row(
        `graph: time per node at ${thousands(large)} nodes`,
        (largeMs / large) * 1000,
        (smallMs / small) * 1000,
        `time per node at ${thousands(small)} nodes`,
        "µs",
        1.5
      ),
      row(
        "graph: width-8 depth-3 llm_call graph, maxParallel 8",
        parallelMs,
        3 * sleepMs,
        `3 × ${sleepMs} ms sleeps`,
        "ms",
        1.5
      ),
      row(
        "graph: width-8 depth-3 llm_call graph, maxParallel 1 (informational)",
        sequentialMs,
        24 * sleepMs,
        `24 × ${sleepMs} ms sleeps`,
        "ms",
        1.1
      )
    ]
  }).pipe(Effect.withClock(Clock.make())) // real time, also when run under TestClock
