/**
 * `npm run bench`: runs every benchmark in bench/suite.ts and prints one table (figure, value,
 * baseline, ratio, target, met) with the machine and the date, which absolute times need.
 * `--json` for scripts, `--markdown` for the README, `--tiny` to check quickly that every row is
 * still produced, `--only <bench>` for one bench. Exits 1 when a bench broke, 2 on a bad option;
 * a missed target is a finding, printed, not a failure.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Either } from "effect"
import { availableParallelism, cpus } from "node:os"
import { type Bench, benches, type BenchOutcome, runBenches } from "./suite.ts"
import type { BenchRow, BenchSize } from "./types.ts"

interface Options {
  readonly format: "text" | "json" | "markdown"
  readonly size: BenchSize
  readonly selected: ReadonlyArray<Bench>
}

const usage = `usage: npm run bench -- [--json | --markdown] [--tiny] [--only <bench>]  (benches: ${
  benches.map((b) => b.name).join(", ")
})`

const parseOptions = (args: ReadonlyArray<string>): Either.Either<Options, string> => {
  let format: Options["format"] = "text"
  let size: BenchSize = "full"
  let selected = benches
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === "--json") format = "json"
    else if (arg === "--markdown") format = "markdown"
    else if (arg === "--tiny") size = "tiny"
    else if (arg === "--only") {
      const name = args[++i]
      selected = benches.filter((bench) => bench.name === name)
      if (selected.length === 0) return Either.left(`no bench named ${JSON.stringify(name ?? "")}\n${usage}`)
    } else return Either.left(`unknown option ${JSON.stringify(arg)}\n${usage}`)
  }
  return Either.right({ format, size, selected })
}

const machine = () => ({
  cores: availableParallelism(),
  cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  date: new Date().toISOString()
})

const number = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))

/** ` [low–high]` when the row measured its spread. */
const range = (ends: readonly [number, number] | undefined): string => (ends === undefined ? "" : ` [${number(ends[0])}–${number(ends[1])}]`)

const cells = (row: BenchRow): ReadonlyArray<string> => [
  row.figure,
  `${number(row.value)} ${row.unit}${range(row.spread?.value)}`,
  `${number(row.baseline)} ${row.unit}${range(row.spread?.baseline)} (${row.baselineLabel})`,
  `${number(row.ratio)}×${range(row.spread?.ratio)}`,
  `≤ ${row.target}×`,
  row.met ? "yes" : "NO"
]

const header = ["figure", "value", "baseline", "ratio", "target", "met"]

const textTable = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)))
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd()).join("\n")
}

const markdownTable = (rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  rows.map((row, index) => {
    const line = `| ${row.map((cell) => cell.replaceAll("|", "\\|")).join(" | ")} |`
    return index === 0 ? `${line}\n|${header.map(() => "---").join("|")}|` : line
  }).join("\n")

const report = (options: Options, outcomes: ReadonlyArray<BenchOutcome>): string => {
  const host = machine()
  const rows = outcomes.flatMap((outcome) => (outcome._tag === "Measured" ? outcome.rows : []))
  const broken = outcomes.flatMap((outcome) => (outcome._tag === "Broken" ? [outcome] : []))
  if (options.format === "json") {
    return JSON.stringify({ machine: host, size: options.size, rows, broken: broken.map(({ cause, name }) => ({ name, cause })) }, null, 2)
  }
  const title = `luallm-agent bench (${options.size}) · ${host.cores} cores, ${host.cpu} · node ${host.node} · ${host.platform} · ${host.date}`
  const table = [header, ...rows.map(cells)]
  const missed = rows.filter((row) => !row.met)
  const spreads = rows.flatMap((row) => (row.spread === undefined ? [] : [`${row.figure}: ${row.spread.of}`]))
  return [
    options.format === "markdown" ? `${title}\n\n${markdownTable(table)}` : `${title}\n\n${textTable(table)}`,
    ...(spreads.length === 0 ? [] : [`[low–high]: how far the figures moved during the run (${spreads.join("; ")}).`]),
    missed.length === 0 ? "Every target met." : `Missed: ${missed.map((row) => row.figure).join("; ")}.`,
    ...broken.map((outcome) => `The ${outcome.name} bench broke:\n${outcome.cause}`)
  ].join("\n\n")
}

const main = Effect.gen(function*() {
  const parsed = parseOptions(process.argv.slice(2))
  if (Either.isLeft(parsed)) {
    yield* Console.error(parsed.left)
    process.exitCode = 2
    return
  }
  const outcomes = yield* runBenches(parsed.right.size, parsed.right.selected)
  yield* Console.log(report(parsed.right, outcomes))
  if (outcomes.some((outcome) => outcome._tag === "Broken")) process.exitCode = 1
})

NodeRuntime.runMain(main)
