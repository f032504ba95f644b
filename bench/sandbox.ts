/**
 * Sandbox benchmarks. Skills run in worker threads (a warm pool: the figures are taken after
 * the first run), so each figure is compared with bare quickjs-emscripten doing the same work
 * in a worker thread of its own, asked by one message and answering with one: the ratio is the
 * price of the sandbox itself, not of the thread hop both pay.
 * - start: metadata parse + request and result across the thread + fresh runtime/context +
 *   injected host functions + call + JSON result + disposal, against runtime + context +
 *   evalCode + dispose;
 * - fs.readFile throughput at 1 KB and 64 KB: path checks, symlink resolution and audit per
 *   read, against a host function that returns the file's text unchecked.
 */
import { NodeContext } from "@effect/platform-node"
import { Clock, Duration, Effect, Either, Layer } from "effect"
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Worker } from "node:worker_threads"
import { parseMetadata } from "../src/core/skillMeta.ts"
import { Audit } from "../src/layers/Audit.ts"
import { AppConfigFrom, defaultConfig } from "../src/layers/Config.ts"
import { Sandbox, sandboxLayer, trusted } from "../src/layers/Sandbox.ts"
import type { BenchRow, BenchSize } from "./types.ts"

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

/** Runs `measured` and `baseline` alternately `runs` times; their median times in ms. */
const interleaved = <E, R>(measured: Effect.Effect<unknown, E, R>, baseline: Effect.Effect<unknown, E, R>, runs: number) =>
  Effect.gen(function*() {
    const times: [Array<number>, Array<number>] = [[], []]
    for (let i = 0; i < runs; i++) {
      times[0].push(Duration.toMillis((yield* Effect.timed(measured))[0]))
      times[1].push(Duration.toMillis((yield* Effect.timed(baseline))[0]))
    }
    return { measured: median(times[0]), baseline: median(times[1]) }
  }).pipe(Effect.withClock(Clock.make()))

/** An audit that keeps entries in an array: the bench times the sandbox, not the disk. */
const arrayAudit = Layer.sync(Audit, () => {
  const entries: Array<unknown> = []
  return Audit.of({ log: (event, data) => Effect.sync(() => void entries.push({ event, data })), flush: Effect.void, sync: Effect.void })
})

const trivialSkill = `/* @skill {"name": "trivial", "version": "1.0.0", "public_functions": ["run"]} */
export function run(args) { return { sum: args.a + args.b } }`

const readerSkill = `/* @skill {"name": "reader", "version": "1.0.0", "paths": ["~/data/**"], "public_functions": ["run"]} */
export function run(args) { let total = 0; for (let i = 0; i < args.times; i++) total += fs.readFile(args.path).length; return total }`

const bareReaderLoop = (path: string, times: number) =>
  `let total = 0; for (let i = 0; i < ${times}; i++) total += readFile(${JSON.stringify(path)}).length; total`

const source = (code: string) => {
  const meta = Either.getOrThrowWith(parseMetadata(code, "/bench/skill.js"), (problem) => new Error(problem.reason))
  return { skill: { meta, file: "/bench/skill.js", code }, dependencies: new Map(), mode: trusted, grantExec: false }
}

/**
 * Bare QuickJS in a worker thread: `{ code }` runs in a fresh runtime and context with one host
 * function, `readFile`, that returns a file's text unchecked; the answer is an empty message.
 */
const bareWorkerSource = `
const { parentPort, workerData } = require("node:worker_threads")
const { readFileSync } = require("node:fs")
require(workerData.quickjs).newQuickJSWASMModule().then((quickjs) => {
  parentPort.on("message", ({ code }) => {
    const rt = quickjs.newRuntime()
    const ctx = rt.newContext()
    const readFile = ctx.newFunction("readFile", (file) => ctx.newString(readFileSync(ctx.getString(file), "utf8")))
    ctx.setProp(ctx.global, "readFile", readFile)
    readFile.dispose()
    const result = ctx.evalCode(code)
    ;(result.error ?? result.value).dispose()
    ctx.dispose()
    rt.dispose()
    parentPort.postMessage(null)
  })
  parentPort.postMessage(null)
})`

/** Runs `code` in the bare worker and waits for its answer. */
const bareWorker = Effect.acquireRelease(
  Effect.async<Worker>((resume) => {
    const quickjs = createRequire(import.meta.url).resolve("quickjs-emscripten")
    const worker = new Worker(bareWorkerSource, { eval: true, workerData: { quickjs } })
    worker.once("message", () => resume(Effect.succeed(worker)))
  }),
  (worker) => Effect.promise(() => worker.terminate())
).pipe(Effect.map((worker) => (code: string) =>
  Effect.async<void>((resume) => {
    worker.once("message", () => resume(Effect.void))
    worker.postMessage({ code })
  })
))

const row = (figure: string, measured: number, baseline: number, baselineLabel: string, unit: BenchRow["unit"], target: number, higherIsBetter: boolean): BenchRow => {
  const ratio = higherIsBetter ? baseline / measured : measured / baseline
  return { figure, value: measured, baseline, baselineLabel, unit, ratio, target, met: ratio <= target }
}

export const sandboxBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.acquireUseRelease(
    Effect.sync(() => realpathSync(mkdtempSync(join(tmpdir(), "luallm-bench-sandbox-")))),
    (home) =>
      Effect.gen(function*() {
        const [startRuns, readRounds, smallReads, largeReads] = size === "full" ? [200, 15, 2000, 200] : [10, 2, 100, 10]
        mkdirSync(join(home, "data"))
        const files = { small: join(home, "data", "1k.txt"), large: join(home, "data", "64k.txt") }
        writeFileSync(files.small, "x".repeat(1024))
        writeFileSync(files.large, "y".repeat(64 * 1024))
        const config = { ...defaultConfig({ home, cwd: home, builtinSkillsDir: join(home, "builtin") }), allowed_paths: [`${home}/data/**`] }
        const layer = sandboxLayer({ home, cwd: home }).pipe(
          Layer.provide(arrayAudit),
          Layer.provide(AppConfigFrom(config, { home, cwd: home })),
          Layer.provide(NodeContext.layer)
        )
        const bare = yield* bareWorker

        return yield* Effect.gen(function*() {
          const sandbox = yield* Sandbox
          // Parsing the header is part of what a run costs, so it happens inside the timing.
          const start = Effect.suspend(() => sandbox.call(source(trivialSkill), "run", { a: 1, b: 2 }))
          const read = (path: string, times: number) => Effect.suspend(() => sandbox.call(source(readerSkill), "run", { path, times }))
          const bareStart = bare("({ sum: 1 + 2 })")
          // Start the worker and load its engine before timing anything.
          yield* start
          yield* bareStart

          const startTimes = yield* interleaved(start, bareStart, startRuns)
          const throughput = (bytes: number, ms: number) => bytes / (1024 * 1024) / (ms / 1000)
          const readRow = (label: string, path: string, bytes: number, times: number) =>
            Effect.map(interleaved(read(path, times), bare(bareReaderLoop(path, times)), readRounds), (t) =>
              row(`sandboxed fs.readFile ${label}`, throughput(bytes * times, t.measured), throughput(bytes * times, t.baseline), `bare QuickJS host function in a worker, ${times} reads`, "MB/s", 1.5, true))
          return [
            row("sandbox start (trivial skill)", startTimes.measured, startTimes.baseline, "bare runtime + context + evalCode + dispose in a worker, one message each way", "ms", 5, false),
            yield* readRow("1 KB", files.small, 1024, smallReads),
            yield* readRow("64 KB", files.large, 64 * 1024, largeReads)
          ]
        }).pipe(Effect.provide(layer))
      }).pipe(Effect.scoped),
    (home) => Effect.sync(() => rmSync(home, { recursive: true, force: true }))
  ).pipe(Effect.orDie)
