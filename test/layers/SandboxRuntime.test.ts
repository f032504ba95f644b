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
import { Audit, AuditLive, AuditTest, readAuditLog } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { NodeContext } from "@effect/platform-node"

const faultyWorker = buildWorker("test/support/faultyHostWorker.ts", "faultyHostWorker")

const fixture = makeFixture()
// A small log: 256 KB per file, two rotated files, so 768 KB of history in all.
const smallLog = makeFixture((config) => ({ ...config, audit: { ...config.audit, max_size_mb: 0.25, max_files: 2 } }))
// Long enough for two CPU-bound runs of 800 ms to overlap without either timing out.
const roomy = makeFixture((config) => ({ ...config, limits: { ...config.limits, skill_timeout_seconds: 5, max_parallel_nodes: 2 } }))
afterAll(() => {
  fixture.cleanup()
  roomy.cleanup()
  smallLog.cleanup()
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

/**
 * The outcome of `effect` and how long it took in wall time, measured once a worker is warm:
 * starting a worker (loading its engine) has its own allowance, apart from the skill's limit.
 */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    yield* call("export const run = () => 0", {})
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

const flood = "export function run() { for (let i = 0; ; i++) log('flood', { i, pad: 'x'.repeat(2000) }) }"

layer(sandboxTestLayer(fixture), { excludeTestServices: true })("a draft that floods the audit log", (it) => {
  it.effect("log() in a tight loop until the timeout writes at most the per-call cap, then one closing line", () =>
    Effect.gen(function*() {
      const rssBefore = process.memoryUsage().rss
      const { exit } = yield* timed(call(flood, {}))
      expectTimeout(exit)
      const floodLines = (yield* auditEvents("skill.log")).filter((data) => data["event"] === "flood")
      expect(floodLines.length).toBeGreaterThan(0)
      expect(floodLines.length).toBeLessThanOrEqual(sandboxLimits.maxAuditEvents)
      const [closing, ...more] = yield* auditEvents("sandbox.audit_capped")
      expect(more).toEqual([])
      expect(closing).toMatchObject({ skill: "probe", max_events: sandboxLimits.maxAuditEvents, max_bytes: sandboxLimits.maxAuditBytes })
      expect(Number(closing?.["dropped_events"])).toBeGreaterThan(0)
      // Loosely: the host did not keep what the flood produced (it would be gigabytes).
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024)
    }))

  it.effect.each([
    ["an exception with a 4 MB message", "export function run() { throw new Error('e'.repeat(4 * 1024 * 1024)) }", "SkillThrew"],
    ["a require of a 4 MB module name", "export function run() { return require('m'.repeat(4 * 1024 * 1024)) }", "UndeclaredDependency"]
  ])("%s fails with a message cut to a readable length", ([, code, tag]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(call(code ?? "", {}))
      expect(error._tag).toBe(tag)
      expect(error.message.length).toBeLessThan(2_000)
      expect(error.message).toContain(`… (${4 * 1024 * 1024 - 1000 + (tag === "SkillThrew" ? "Error: ".length : 0)} more characters)`)
    }))

  it.effect("a test run shares one cap across all its tests, of events as well as bytes", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox
      // Events without data: the count cap, not the byte cap, is the one they reach.
      const tests = Array.from({ length: 4 }, (_, n) => `test("t${n}", () => { for (let i = 0; i < 6000; i++) log("many") })`).join("\n")
      const run = yield* sandbox.runTests(runRequest(skillSource(header({ name: "chatty" }) + "export const run = () => 1")), { file: "/virtual/chatty.test.js", code: tests })
      expect(run.report).toMatchObject({ total: 4, passed: 4 })
      const lines = (yield* auditEvents("skill.log")).filter((data) => data["skill"] === "chatty")
      expect(lines.length).toBe(sandboxLimits.maxAuditEvents)
      // One closing line for the whole test run, accounting for every event it held back.
      const closing = (yield* auditEvents("sandbox.audit_capped")).filter((data) => data["skill"] === "chatty")
      expect(closing).toEqual([expect.objectContaining({ dropped_events: 4 * 6000 - sandboxLimits.maxAuditEvents })])
    }))
})

layer(sandboxTestLayer(fixture), { excludeTestServices: true })("a test file that floods the host", (it) => {
  const tested = (name: string, tests: string) =>
    Effect.flatMap(Sandbox, (sandbox) =>
      sandbox.runTests(runRequest(skillSource(header({ name }) + "export const run = () => 1")), { file: `/virtual/${name}.test.js`, code: tests }))

  it.effect("tests that fail with 4 MB messages report each cut to a readable length", () =>
    Effect.gen(function*() {
      const run = yield* tested("shouting", Array.from({ length: 3 }, (_, n) => `test("t${n}", () => { throw new Error("e".repeat(4 * 1024 * 1024)) })`).join("\n"))
      expect(run.report).toMatchObject({ total: 3, failed: 3 })
      for (const result of run.report.results) {
        expect(result.error?.length).toBeLessThanOrEqual(sandboxLimits.maxTestErrorChars + 40)
        expect(result.error).toMatch(/^Error: e+… \(\d+ more characters\)$/)
      }
    }))

  it.effect("a test name of 1 MB is cut to a readable length", () =>
    Effect.gen(function*() {
      const run = yield* tested("named", `test("n".repeat(1024 * 1024), () => {})`)
      expect(run.report).toMatchObject({ total: 1, passed: 1 })
      expect(run.report.results[0]?.name).toBe(`${"n".repeat(sandboxLimits.maxTestNameChars)}… (${1024 * 1024 - sandboxLimits.maxTestNameChars} more characters)`)
    }))

  it.effect("what all the tests print together is capped like one run's output", () =>
    Effect.gen(function*() {
      const run = yield* tested("printing", Array.from({ length: 5 }, (_, n) => `test("t${n}", () => { for (let i = 0; i < 1100; i++) print("p".repeat(1000)) })`).join("\n"))
      expect(run.report).toMatchObject({ total: 5, passed: 5 })
      expect(run.output.length).toBeLessThanOrEqual(sandboxLimits.maxOutputChars + 200)
      expect(run.output.endsWith(`[output truncated: the tests printed more than ${sandboxLimits.maxOutputChars} characters]\n`)).toBe(true)
    }))
})

const smallLogLayer = sandboxLayer({ home: smallLog.home, cwd: smallLog.home }).pipe(
  Layer.provideMerge(AuditLive),
  Layer.provideMerge(AppConfigFrom(smallLog.config, { home: smallLog.home, cwd: smallLog.home })),
  Layer.provideMerge(NodeContext.layer)
)

layer(smallLogLayer, { excludeTestServices: true })("a flood against a small, rotating audit log", (it) => {
  it.effect("keeps every earlier line: a run may write a tenth of the log's history at most", () =>
    Effect.gen(function*() {
      const audit = yield* Audit
      for (let n = 0; n < 50; n++) yield* audit.log("test.earlier", { n })
      const { exit } = yield* timed(call(flood, {}))
      expectTimeout(exit)
      // The log's writer appends what is queued a moment later: wait for every line logged so far.
      yield* audit.flush
      const { audit: { max_files, max_size_mb, path } } = smallLog.config
      const { bad, entries } = yield* readAuditLog({ path, maxFiles: max_files })
      expect(bad).toEqual([])
      expect(entries.filter((entry) => entry.event === "test.earlier").map((entry) => entry.data["n"])).toEqual(Array.from({ length: 50 }, (_, n) => n))
      const history = max_size_mb * 1024 * 1024 * max_files
      const floodBytes = entries.filter((entry) => entry.event === "skill.log").reduce((sum, entry) => sum + JSON.stringify(entry).length + 1, 0)
      expect(floodBytes).toBeLessThanOrEqual(history * sandboxLimits.auditHistoryShare)
      // What was held back would have rotated the whole history away.
      const closing = entries.find((entry) => entry.event === "sandbox.audit_capped")
      expect(Number(closing?.data["dropped_bytes"])).toBeGreaterThan(history)
    }))
})
