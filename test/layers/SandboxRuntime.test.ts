/**
 * The sandbox's runtime, attacked the way issue 13 describes: the wall-time limit holds however
 * the time is spent (slow host calls, a host call that never returns), a dead worker is replaced,
 * runs happen in parallel, and the layer's scope takes its worker threads with it.
 *
 * A test worker (`test/support/faultyHostWorker.ts`) stands in for the host failures a test
 * cannot cause for real: a read that blocks for a minute, a worker thread that dies.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Sandbox, sandboxLayer, sandboxLimits } from "../../src/layers/Sandbox.ts"
import { buildWorker } from "../support/buildWorker.ts"
import { auditEvents, header, makeFixture, runRequest, sandboxTestLayer, skillSource } from "./sandboxTestKit.ts"
import { AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { NodeContext } from "@effect/platform-node"

const faultyWorker = buildWorker("test/support/faultyHostWorker.ts", "faultyHostWorker")

const fixture = makeFixture()
// Long enough for two CPU-bound runs of 800 ms to overlap without either timing out.
const roomy = makeFixture((config) => ({ ...config, limits: { ...config.limits, skill_timeout_seconds: 5, max_parallel_nodes: 2 } }))
afterAll(() => {
  fixture.cleanup()
  roomy.cleanup()
})
// 16 MB: the most a skill with 32 MB of memory may read at once.
writeFileSync(join(fixture.data, "large.txt"), "z".repeat(16 * 1024 * 1024 - 1))
writeFileSync(join(fixture.data, "small.txt"), "ok")
writeFileSync(join(fixture.data, "slow"), "slowly")

const faultyLayer = sandboxLayer({ home: fixture.home, cwd: fixture.home }, faultyWorker).pipe(
  Layer.provideMerge(AuditTest),
  Layer.provideMerge(AppConfigFrom(fixture.config, { home: fixture.home, cwd: fixture.home })),
  Layer.provideMerge(NodeContext.layer)
)

const data = { paths: ["~/data/**"] }
const call = (code: string, meta: Record<string, unknown> = data) =>
  Effect.flatMap(Sandbox, (sandbox) => sandbox.call(runRequest(skillSource(header(meta) + code)), "run", {}))

/** The outcome of `effect` and how long it took in wall time. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const exit = yield* Effect.exit(effect)
    return { exit, ms: Date.now() - started }
  })

const limitMs = fixture.config.limits.skill_timeout_seconds * 1000
// The deadline plus the grace the worker gets, plus room for a loaded machine to deliver it.
const latestStop = limitMs + sandboxLimits.killGraceMs + 1_500

const expectTimeout = (exit: Exit.Exit<unknown, { readonly _tag: string; readonly message: string }>) => {
  expect(Exit.isFailure(exit)).toBe(true)
  if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
    expect(exit.cause.error._tag).toBe("SkillTimeout")
    expect(exit.cause.error.message).toContain("ran longer than 1 s")
  } else {
    expect.fail(`expected a SkillTimeout failure, got ${String(exit)}`)
  }
}

/** Threads of this process right now (Linux): worker threads are threads. */
const threadCount = () => readdirSync("/proc/self/task").length

layer(sandboxTestLayer(fixture), { excludeTestServices: true })("the wall-time limit, on node's host", (it) => {
  it.effect("a loop of reads of a 16 MB file stops at the limit with SkillTimeout", () =>
    Effect.gen(function*() {
      const { exit, ms } = yield* timed(call("export function run() { let n = 0; for (;;) n += fs.readFile('~/data/large.txt').length }"))
      expectTimeout(exit)
      expect(ms).toBeGreaterThanOrEqual(limitMs)
      expect(ms).toBeLessThan(latestStop)
    }))

  it.effect("a loop that catches the refusal of every read after the deadline still stops", () =>
    Effect.gen(function*() {
      const { exit, ms } = yield* timed(call("export function run() { for (;;) { try { fs.readFile('~/data/large.txt') } catch (e) {} } }"))
      expectTimeout(exit)
      expect(ms).toBeLessThan(latestStop)
    }))
})

layer(faultyLayer, { excludeTestServices: true })("the wall-time limit, when host calls misbehave", (it) => {
  it.effect("a loop of slow host calls stops at the limit with SkillTimeout", () =>
    Effect.gen(function*() {
      const { exit, ms } = yield* timed(call("export function run() { for (;;) fs.readFile('~/data/slow') }"))
      expectTimeout(exit)
      expect(ms).toBeGreaterThanOrEqual(limitMs)
      expect(ms).toBeLessThan(latestStop)
    }))

  it.effect("a host call that blocks for a minute is stopped at the deadline, and what the run logged before is kept", () =>
    Effect.gen(function*() {
      const { exit, ms } = yield* timed(call("export function run() { log('before.block', { n: 1 }); return fs.readFile('~/data/blocks') }"))
      expectTimeout(exit)
      expect(ms).toBeGreaterThanOrEqual(limitMs)
      expect(ms).toBeLessThan(latestStop)
      expect(yield* auditEvents("skill.log")).toContainEqual({ skill: "probe", event: "before.block", data: { n: 1 } })
      // The worker was terminated and replaced: the next run works.
      expect((yield* call("export const run = () => fs.readFile('~/data/small.txt')")).result).toBe("ok")
    }))

  it.effect("a worker thread that dies is reported as a crash and replaced, and the next run works", () =>
    Effect.gen(function*() {
      const { exit } = yield* timed(call("export const run = () => fs.readFile('~/data/crashes')"))
      expect(exit).toMatchObject({ _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "SandboxCrashed" } } })
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        expect(exit.cause.error.message).toContain("the sandbox worker thread stopped (exit code 3)")
      }
      expect((yield* call("export const run = () => fs.readFile('~/data/small.txt')")).result).toBe("ok")
    }))
})

describe("worker threads", () => {
  layer(sandboxTestLayer(roomy), { excludeTestServices: true })("parallel runs", (it) => {
    it.effect("two CPU-bound skills run at the same time, in two workers", () =>
      Effect.gen(function*() {
        const busy = "export function run() { const start = Date.now(); while (Date.now() - start < 800) {} return [start, Date.now()] }"
        // Both workers started and warm first, so the two runs are sent to running threads.
        yield* Effect.all([call("export const run = () => 1", {}), call("export const run = () => 2", {})], { concurrency: 2 })
        const [first, second] = yield* Effect.all([call(busy, {}), call(busy, {})], { concurrency: 2 })
        const [start1, end1] = first.result as [number, number]
        const [start2, end2] = second.result as [number, number]
        // Each started before the other ended: their wall times overlap.
        expect(start1).toBeLessThan(end2)
        expect(start2).toBeLessThan(end1)
      }))
  })

  it.live("closing the layer's scope terminates every worker thread", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => Promise.resolve()) // let the test's own threads settle
      const before = threadCount()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(sandboxTestLayer(roomy), scope)
      const sandbox = Effect.provide(Sandbox, context)
      yield* Effect.flatMap(sandbox, (s) =>
        Effect.all([
          s.call(runRequest(skillSource(header() + "export const run = () => 1")), "run", {}),
          s.call(runRequest(skillSource(header() + "export const run = () => 2")), "run", {})
        ], { concurrency: 2 }))
      expect(threadCount()).toBeGreaterThanOrEqual(before + 2)
      yield* Scope.close(scope, Exit.void)
      expect(threadCount()).toBeLessThanOrEqual(before)
    }))

  it.effect("a missing worker bundle is a SandboxWorkerMissing that says to build", () =>
    Effect.gen(function*() {
      const missing = join(fixture.home, "no-such-worker.cjs")
      const error = yield* Effect.flip(Layer.build(sandboxLayer({ home: fixture.home, cwd: fixture.home }, missing).pipe(
        Layer.provide(AuditTest),
        Layer.provide(AppConfigFrom(fixture.config, { home: fixture.home, cwd: fixture.home })),
        Layer.provide(NodeContext.layer)
      )).pipe(Effect.scoped))
      expect(error._tag).toBe("SandboxWorkerMissing")
      expect(error.message).toBe(`The sandbox cannot start: its worker bundle ${missing} is missing. Run \`npm run build\` (or \`npm ci\`) in the luallm-agent package to build it.`)
    }))
})
