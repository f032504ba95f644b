/**
 * Timing helpers shared by the benches: medians of interleaved runs (so a noisy neighbour slows
 * the measured code and its baseline alike) and the row every bench reports.
 */
import { Clock, Duration, Effect, Record } from "effect"
import type { BenchRow, Spread } from "./types.ts"

/** The value at fraction `q` (0…1) of the sorted values, interpolated between neighbours. */
export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const at = q * (sorted.length - 1)
  const below = sorted[Math.floor(at)] ?? Number.NaN
  const above = sorted[Math.ceil(at)] ?? below
  return below + (above - below) * (at - Math.floor(at))
}

export const median = (values: ReadonlyArray<number>): number => quantile(values, 0.5)

/** The 10th and 90th percentiles: how far the middle of a noisy sample reaches. */
export const spreadOf = (values: ReadonlyArray<number>): readonly [number, number] => [quantile(values, 0.1), quantile(values, 0.9)]

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

/** Each operation's time (ms) of both sides, and each round's ratio of medians. */
export interface PairedTimings {
  readonly measured: ReadonlyArray<number>
  readonly baseline: ReadonlyArray<number>
  readonly roundRatios: ReadonlyArray<number>
}

/**
 * Times `measured` and `baseline`, each `op(i)` for the i-th operation, one after the other,
 * `perRound` pairs per round for `rounds` rounds, after `warmups` pairs (which the first file
 * writes and the JIT need); which side goes first alternates by round. Strict alternation, as a
 * running agent never saves twice in a row: each side runs after the other's operation, not
 * after its own (a run of its own keeps its code and its connection hot, which flatters the side
 * with more code), and what one side's operation leaves for the file system (dirty metadata the
 * next fsync commits) the other side's leaves as well. Real time.
 */
export const alternating = <E, R>(
  measured: (i: number) => Effect.Effect<unknown, E, R>,
  baseline: (i: number) => Effect.Effect<unknown, E, R>,
  options: { readonly warmups: number; readonly rounds: number; readonly perRound: number }
): Effect.Effect<PairedTimings, E, R> =>
  Effect.gen(function*() {
    let op = 0
    for (let i = 0; i < options.warmups; i++, op++) {
      yield* measured(op)
      yield* baseline(op)
    }
    const all = { measured: [] as Array<number>, baseline: [] as Array<number> }
    const roundRatios: Array<number> = []
    const time = (effect: Effect.Effect<unknown, E, R>) => Effect.map(Effect.timed(effect), ([duration]) => Duration.toMillis(duration))
    for (let round = 0; round < options.rounds; round++) {
      const mine = { measured: [] as Array<number>, baseline: [] as Array<number> }
      for (let i = 0; i < options.perRound; i++, op++) {
        const sides = round % 2 === 0 ? (["measured", "baseline"] as const) : (["baseline", "measured"] as const)
        for (const side of sides) mine[side].push(yield* time(side === "measured" ? measured(op) : baseline(op)))
      }
      all.measured.push(...mine.measured)
      all.baseline.push(...mine.baseline)
      roundRatios.push(median(mine.measured) / median(mine.baseline))
    }
    return { measured: all.measured, baseline: all.baseline, roundRatios }
  }).pipe(Effect.withClock(Clock.make()))

/** A row whose ratio is `value / baseline`, met when it is at most `target`. */
export const ratioRow = (row: Omit<BenchRow, "ratio" | "met">): BenchRow => {
  const ratio = row.value / row.baseline
  return { ...row, ratio, met: ratio <= row.target }
}

/** The row for paired timings: medians of all operations, their spreads, and the spread of the rounds' ratios. */
export const pairedRow = (
  timings: PairedTimings,
  row: Omit<BenchRow, "ratio" | "met" | "value" | "baseline" | "spread">
): BenchRow => {
  const spread: Spread = {
    value: spreadOf(timings.measured),
    baseline: spreadOf(timings.baseline),
    ratio: spreadOf(timings.roundRatios),
    of: `p10–p90 of ${timings.measured.length} operations each; the ratio's over ${timings.roundRatios.length} rounds`
  }
  return { ...ratioRow({ ...row, value: median(timings.measured), baseline: median(timings.baseline) }), spread }
}
