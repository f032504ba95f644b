/**
 * Timing helpers shared by the benches: medians of interleaved runs (so a noisy neighbour slows
 * the measured code and its baseline alike) and the row every bench reports.
 */
import { Clock, Duration, Effect, Record } from "effect"
import type { BenchRow } from "./types.ts"

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  const upper = sorted[middle] ?? Number.NaN
  const lower = sorted[middle - 1] ?? upper
  return sorted.length % 2 === 0 ? (lower + upper) / 2 : upper
}

/**
 * Runs every effect once per round, in order, for `runs` rounds, and gives each one's median
 * time in milliseconds. Real time, also when the caller runs under `TestClock`.
 */
export const interleavedMedians = <K extends string, E, R>(
  effects: Readonly<Record<K, Effect.Effect<unknown, E, R>>>,
  runs: number
): Effect.Effect<Record<K, number>, E, R> =>
  Effect.gen(function*() {
    const timings = Record.map(effects, (): Array<number> => [])
    for (let round = 0; round < runs; round++) {
      for (const [name, effect] of Record.toEntries(effects)) {
        const [duration] = yield* Effect.timed(effect)
        timings[name].push(Duration.toMillis(duration))
      }
    }
    return Record.map(timings, median)
  }).pipe(Effect.withClock(Clock.make()))

/** A row whose ratio is `value / baseline`, met when it is at most `target`. */
export const ratioRow = (row: Omit<BenchRow, "ratio" | "met">): BenchRow => {
  const ratio = row.value / row.baseline
  return { ...row, ratio, met: ratio <= row.target }
}
