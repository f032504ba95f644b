/**
 * Sandbox benchmarks. Each figure is compared with bare quickjs-emscripten doing the same
 * work in the same process, so the ratio is the price of the sandbox itself:
 * - start: metadata parse + fresh runtime/context + injected host functions + call + JSON
 *   result + disposal, against runtime + context + evalCode + dispose;
 * - fs.readFile throughput at 1 KB and 64 KB: path checks, symlink resolution and audit per
 *   read, against a host function that returns the file's text unchecked.
 */
import { NodeContext } from "@effect/platform-node"
import { Clock, Duration, Effect, Either, Layer } from "effect"
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { newQuickJSWASMModule, type QuickJSWASMModule } from "quickjs-emscripten"
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
  return Audit.of({ log: (event, data) => Effect.sync(() => void entries.push({ event, data })), setTaskId: () => Effect.void })
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

const bareStart = (quickjs: QuickJSWASMModule) =>
  Effect.sync(() => {
    const rt = quickjs.newRuntime()
    const ctx = rt.newContext()
    const result = ctx.evalCode("({ sum: 1 + 2 })")
    ;(result.error ?? result.value).dispose()
    ctx.dispose()
    rt.dispose()
  })

const bareRead = (quickjs: QuickJSWASMModule, path: string, times: number) =>
  Effect.sync(() => {
    const rt = quickjs.newRuntime()
    const ctx = rt.newContext()
    const readFile = ctx.newFunction("readFile", (file) => ctx.newString(readFileSync(ctx.getString(file), "utf8")))
    ctx.setProp(ctx.global, "readFile", readFile)
    readFile.dispose()
    const result = ctx.evalCode(bareReaderLoop(path, times))
    ;(result.error ?? result.value).dispose()
    ctx.dispose()
    rt.dispose()
  })

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
        const quickjs = yield* Effect.promise(() => newQuickJSWASMModule())

        return yield* Effect.gen(function*() {
          const sandbox = yield* Sandbox
          // Parsing the header is part of what a run costs, so it happens inside the timing.
          const start = Effect.suspend(() => sandbox.call(source(trivialSkill), "run", { a: 1, b: 2 }))
          const read = (path: string, times: number) => Effect.suspend(() => sandbox.call(source(readerSkill), "run", { path, times }))
          yield* start // load the engine before timing anything
          yield* bareStart(quickjs)

          const startTimes = yield* interleaved(start, bareStart(quickjs), startRuns)
          const throughput = (bytes: number, ms: number) => bytes / (1024 * 1024) / (ms / 1000)
          const readRow = (label: string, path: string, bytes: number, times: number) =>
            Effect.map(interleaved(read(path, times), bareRead(quickjs, path, times), readRounds), (t) =>
              row(`sandboxed fs.readFile ${label}`, throughput(bytes * times, t.measured), throughput(bytes * times, t.baseline), `bare QuickJS host function, ${times} reads`, "MB/s", 1.5, true))
          return [
            row("sandbox start (trivial skill)", startTimes.measured, startTimes.baseline, "bare runtime + context + evalCode + dispose", "ms", 5, false),
            yield* readRow("1 KB", files.small, 1024, smallReads),
            yield* readRow("64 KB", files.large, 64 * 1024, largeReads)
          ]
        }).pipe(Effect.provide(layer))
      }),
    (home) => Effect.sync(() => rmSync(home, { recursive: true, force: true }))
  ).pipe(Effect.orDie)
