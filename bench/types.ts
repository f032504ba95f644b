/**
 * One row of `npm run bench`. Every figure is compared with a baseline measured in the
 * same run, because these machines are shared and noisy: targets are ratios.
 */
export interface BenchRow {
  /** What was measured, e.g. "graph: 10k nodes validate+sort+execute". */
  readonly figure: string
  /** The measured value, in `unit`. */
  readonly value: number
  /** What the value is compared with, in the same unit, e.g. "1k nodes" or "3 × 100 ms sleeps". */
  readonly baseline: number
  readonly baselineLabel: string
  readonly unit: "ms" | "µs" | "MB/s" | "ops/s" | "%" | "calls"
  /** value / baseline (or baseline / value for throughput figures, where higher is better). */
  readonly ratio: number
  /** The largest acceptable ratio. */
  readonly target: number
  readonly met: boolean
  /** How much the figures moved during the run, where the bench measured many operations. */
  readonly spread?: Spread
}

/** Low and high ends of a row's figures over the run: the 10th and 90th percentiles of many operations, or the range of a few runs (`of` says which). */
export interface Spread {
  readonly value: readonly [number, number]
  readonly baseline: readonly [number, number]
  readonly ratio: readonly [number, number]
  /** What the ends are taken over, e.g. "p10–p90 of 400 operations each". */
  readonly of: string
}

/** `tiny` runs in `npm test` to prove every row is still produced; `full` is `npm run bench`. */
export type BenchSize = "tiny" | "full"
