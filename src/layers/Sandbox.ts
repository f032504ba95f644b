/**
 * The `Sandbox` service (SPEC part 10): runs a skill — code an LLM wrote, so hostile until
 * proven otherwise — in QuickJS with only the language's built-ins plus checked host
 * functions (`fs`, `require`, `print`/`console`, `log`, `exec`). Each run gets a fresh runtime
 * and context (and one per dependency it requires), disposed when the run ends however it
 * ends. Every run is either trusted (a promoted or shipped skill) or a draft (SPEC part 14:
 * writes go to a scratch directory); the caller says which.
 *
 * The engine (a WebAssembly module) is loaded once per process and per memory limit, lazily,
 * and replaced when a run leaves it full or broken. Runs on one engine are serialised: host
 * calls are synchronous anyway, and the engine's memory cap must belong to one run at a time.
 * The engine mechanics live in `sandbox/run.ts`, the host functions in `sandbox/globals.ts`,
 * the path rules and trust roots in `sandbox/paths.ts`, each file operation and command
 * argument (checked on the descriptor it opened) in `sandbox/fileAccess.ts`, the option
 * tables of `exec` in `sandbox/execPolicy.ts`, the node port in `sandbox/host.ts`.
 * SECURITY.md states what a skill can reach, and the test that proves each part.
 */
import { Context, Data, Duration, Effect, Either, Layer } from "effect"
import type { Json } from "../core/config.ts"
import { summarize, type TestReport, type TestResult } from "../core/testHarness.ts"
import { Audit, type AuditWriteError } from "./Audit.ts"
import { AppConfig } from "./Config.ts"
import { SandboxCrashed, type SandboxError } from "./sandbox/errors.ts"
import { nodeSandboxHost, type SandboxHost } from "./sandbox/host.ts"
import { trustRoots } from "./sandbox/paths.ts"
import { ownPackageRoot } from "../packageRoot.ts"
import { type Engine, engineFull, makeEngine } from "./sandbox/engine.ts"
import type { RunRequest, RunSettings, TestSource } from "./sandbox/instance.ts"
import { SandboxRun } from "./sandbox/run.ts"

export * from "./sandbox/errors.ts"
export type { RunRequest, SkillSource, TestSource } from "./sandbox/instance.ts"
export { draft, type RunMode, trusted } from "./sandbox/paths.ts"

export interface CallResult {
  readonly result: Json
  /** What the skill printed, capped (the end says so when it was truncated). */
  readonly output: string
}

export interface TestRun {
  readonly report: TestReport
  readonly output: string
}

/** The test file could not be loaded or run at all: no result per test is possible. */
export class TestFileFailed extends Data.TaggedError("TestFileFailed")<{
  readonly skill: string
  readonly file: string
  readonly reason: string
}> {
  override get message() {
    return `The tests of skill ${this.skill} (${this.file}) could not run: ${this.reason.replace(/\.$/, "")}. Fix the test file (tests register with test(name, fn)), then run \`luallm-agent skills test ${this.skill}\`.`
  }
}

export interface SandboxShape {
  /** Loads the skill and calls its exported function `fn` with `args`. */
  readonly call: (request: RunRequest, fn: string, args: Json) => Effect.Effect<CallResult, SandboxError | AuditWriteError>
  /** Loads the skill and returns the names of the functions it exports. */
  readonly exportedFunctions: (request: RunRequest) => Effect.Effect<ReadonlyArray<string>, SandboxError | AuditWriteError>
  /**
   * Runs the skill's test file with the harness: one fresh sandbox to list the tests, then
   * one per test, so a test that hangs, crashes or breaks a rule fails alone.
   */
  readonly runTests: (request: RunRequest, tests: TestSource) => Effect.Effect<TestRun, TestFileFailed | AuditWriteError>
}

export class Sandbox extends Context.Tag("Sandbox")<Sandbox, SandboxShape>() {}

/** Fixed limits; the configurable ones (time, memory) come from `limits.*`. */
export const sandboxLimits = {
  stackBytes: 256 * 1024,
  maxOutputChars: 1024 * 1024,
  maxResultChars: 1024 * 1024,
  maxHandles: 10,
  /** Bytes one run may write (a draft's append counts the copy of the original it makes). */
  maxWriteBytes: 256 * 1024 * 1024,
  maxTests: 100,
  /** The whole test run may take this many times `skill_timeout_seconds`. */
  testBudgetFactor: 5
} as const

// One engine per memory limit for the whole process, and one lock per engine slot.
const engines = new Map<number, Engine>()
const locks = new Map<number, Effect.Semaphore>()

const engineFor = (memoryMb: number): Engine => {
  const current = engines.get(memoryMb)
  if (current !== undefined && !current.poisoned) return current
  const fresh = makeEngine(memoryMb)
  engines.set(memoryMb, fresh)
  return fresh
}

const lockFor = (memoryMb: number): Effect.Semaphore => {
  const existing = locks.get(memoryMb)
  if (existing !== undefined) return existing
  const lock = Effect.unsafeMakeSemaphore(1)
  locks.set(memoryMb, lock)
  return lock
}

const retire = (memoryMb: number, engine: Engine) => {
  if (engines.get(memoryMb) === engine) engines.delete(memoryMb)
}

/** What a host or a test may set beyond the config. */
export interface SandboxOptions {
  /** luallm-agent's own package, which no skill may change: the installed one by default (null: none found). */
  readonly packageRoot?: string | null
  /** Bytes one run may write; `sandboxLimits.maxWriteBytes` by default. */
  readonly maxWriteBytes?: number
}

export const makeSandbox = (host: SandboxHost, options: SandboxOptions = {}) =>
  Effect.gen(function*() {
    const app = yield* AppConfig
    const { config } = app
    const audit = yield* Audit
    const protectedPaths = trustRoots({ config, configFiles: app.configFiles, packageRoot: options.packageRoot === undefined ? ownPackageRoot : options.packageRoot })
    const settings: RunSettings = {
      host,
      timeoutSeconds: config.limits.skill_timeout_seconds,
      memoryMb: config.limits.skill_memory_mb,
      stackBytes: sandboxLimits.stackBytes,
      maxOutputChars: sandboxLimits.maxOutputChars,
      maxResultChars: sandboxLimits.maxResultChars,
      maxHandles: sandboxLimits.maxHandles,
      maxWriteBytes: options.maxWriteBytes ?? sandboxLimits.maxWriteBytes,
      allowedPaths: config.allowed_paths,
      protectedPaths
    }
    const memoryMb = settings.memoryMb

    /**
     * One run: a fresh `SandboxRun` (released however `use` ends), then its audit events
     * written in order. `use` is synchronous: QuickJS host calls cannot wait for an Effect.
     */
    const withRun = <A>(request: RunRequest, use: (run: SandboxRun) => Either.Either<A, SandboxError>) =>
      lockFor(memoryMb).withPermits(1)(
        Effect.gen(function*() {
          const engine = engineFor(memoryMb)
          const loaded = yield* Effect.either(Effect.tryPromise(() => engine.load))
          if (Either.isLeft(loaded)) {
            retire(memoryMb, engine)
            const reason = `the QuickJS engine did not load (${String(loaded.left.error)})`
            return { value: Either.left<SandboxError>(new SandboxCrashed({ skill: request.skill.meta.name, reason })), output: "" }
          }
          const module = loaded.right
          const { events, output, value } = yield* Effect.acquireUseRelease(
            Effect.sync(() => new SandboxRun(engine, () => module.newRuntime(), request, settings)),
            (run) => Effect.sync(() => ({ value: use(run), output: run.output.text(), events: run.auditEvents })),
            (run) =>
              Effect.sync(() => {
                run.dispose()
                if (engine.poisoned || engineFull(engine)) retire(memoryMb, engine)
              })
          )
          yield* Effect.forEach(events, (event) => audit.log(event.event, event.data), { discard: true })
          return { value, output }
        })
      )

    const call: SandboxShape["call"] = (request, fn, args) =>
      withRun(request, (run) => run.call(fn, args)).pipe(
        Effect.flatMap(({ output, value }) => Either.map(value, (result): CallResult => ({ result, output })))
      )

    const exportedFunctions: SandboxShape["exportedFunctions"] = (request) =>
      withRun(request, (run) => run.exportedFunctions()).pipe(Effect.flatMap(({ value }) => value))

    const runTests: SandboxShape["runTests"] = (request, tests) =>
      Effect.gen(function*() {
        const skill = request.skill.meta.name
        const listed = yield* withRun(request, (run) => run.testNames(tests))
        const names = yield* Either.mapLeft(listed.value, (error) => new TestFileFailed({ skill, file: tests.file, reason: error.message }))
        if (names.length > sandboxLimits.maxTests) {
          return yield* new TestFileFailed({ skill, file: tests.file, reason: `it registers ${names.length} tests, more than the ${sandboxLimits.maxTests} allowed.` })
        }
        const budget = Duration.seconds(settings.timeoutSeconds * sandboxLimits.testBudgetFactor)
        const results: Array<TestResult> = []
        const outputs: Array<string> = []
        let spent = Duration.zero
        for (const [index, name] of names.entries()) {
          if (Duration.greaterThanOrEqualTo(spent, budget)) {
            results.push({ name, status: "fail", error: `not run: the tests took longer than their ${Duration.format(budget)} budget`, duration_ms: 0 })
            continue
          }
          const [elapsed, ran] = yield* Effect.timed(withRun(request, (run) => run.runTest(tests, index)))
          spent = Duration.sum(spent, elapsed)
          const outcome = Either.getOrElse(ran.value, (error) => ({ status: "fail" as const, error: error.message }))
          results.push({ name, ...outcome, duration_ms: Math.round(Duration.toMillis(elapsed)) })
          if (ran.output !== "") outputs.push(`# ${name}\n${ran.output}`)
        }
        return { report: summarize(results), output: outputs.join("") }
      })

    return Sandbox.of({ call, exportedFunctions, runTests })
  })

/** A sandbox over a given host port (tests may pass one with their own home and cwd). */
export const sandboxLayer = (host: SandboxHost, options: SandboxOptions = {}): Layer.Layer<Sandbox, never, AppConfig | Audit> =>
  Layer.effect(Sandbox, makeSandbox(host, options))

/** The live sandbox: node's file system and processes, `~` from $HOME. */
export const SandboxLive: Layer.Layer<Sandbox, never, AppConfig | Audit> = Layer.suspend(() => sandboxLayer(nodeSandboxHost()))
