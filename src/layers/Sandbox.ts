/**
 * The `Sandbox` service (SPEC part 10): runs a skill — code an LLM wrote, so hostile until
 * proven otherwise — in QuickJS with only the language's built-ins plus checked host
 * functions (`fs`, `require`, `print`/`console`, `log`, `exec`). Each run gets a fresh runtime
 * and context (and one per dependency it requires), disposed when the run ends however it
 * ends. Every run is either trusted (a promoted or shipped skill) or a draft (SPEC part 14:
 * writes go to a scratch directory); the caller says which.
 *
 * Runs happen in worker threads (`sandbox/pool.ts`), one run per worker at a time and up to
 * `limits.max_parallel_nodes` at once, so skills in parallel graph nodes run in parallel and
 * this thread stays free: it enforces `limits.skill_timeout_seconds` as wall time (a run past
 * it is terminated, however the time was spent) and answers Ctrl-C at once. The pool, with its
 * engines, belongs to the layer's scope. A run's audit events stream to `Audit` as they happen,
 * within a budget per call (or per test run) that keeps one run from flooding the host's memory
 * or rotating the log's history away.
 *
 * Inside a worker: the messages in `sandbox/protocol.ts`, the serving loop in `sandbox/worker.ts`,
 * the engine in `sandbox/engine.ts`, a run in `sandbox/run.ts`, the host functions in
 * `sandbox/globals.ts`, the path rules and trust roots in `sandbox/paths.ts`, each file
 * operation and command argument (checked on the descriptor it opened) in
 * `sandbox/fileAccess.ts`, the option tables of `exec` in `sandbox/execPolicy.ts`, the node
 * port in `sandbox/host.ts`. SECURITY.md states what a skill can reach, with the test of each part.
 */
import { Context, Data, Duration, Effect, Either, Layer } from "effect"
import type { Json } from "../core/config.ts"
import { summarize, type TestReport, type TestResult } from "../core/testHarness.ts"
import { Audit, type AuditWriteError } from "./Audit.ts"
import { AppConfig, type AppConfigShape } from "./Config.ts"
import { clip, SandboxCrashed, type SandboxError, type SandboxWorkerMissing } from "./sandbox/errors.ts"
import { parseGuestJson } from "./sandbox/globals.ts"
import { nodeSandboxHost } from "./sandbox/host.ts"
import { OutputBuffer, type RunRequest, type TestSource } from "./sandbox/instance.ts"
import { trustRoots } from "./sandbox/paths.ts"
import { compileCacheDirectory, packageRoot as installedPackageRoot } from "../packageRoot.ts"
import { makeWorkerPool, sandboxWorkerScript } from "./sandbox/pool.ts"
import type { AuditBudget, HostEnvironment, Job, JobValue } from "./sandbox/protocol.ts"

export * from "./sandbox/errors.ts"
export type { RunRequest, SkillSource, TestSource } from "./sandbox/instance.ts"
export type { HostEnvironment } from "./sandbox/protocol.ts"
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
  /** The tests were a draft's (`skills test NAME --draft` runs them again). */
  readonly draft: boolean
}> {
  override get message() {
    return `The tests of skill ${this.skill} (${this.file}) could not run: ${this.reason.replace(/\.$/, "")}. Fix the test file (tests register with test(name, fn)), then run \`luallm-agent skills test ${this.skill}${this.draft ? " --draft" : ""}\`.`
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

/** Fixed limits; the configurable ones (time, memory, parallel runs) come from `limits.*`. */
export const sandboxLimits = {
  stackBytes: 256 * 1024,
  maxOutputChars: 1024 * 1024,
  maxHandles: 10,
  /** Bytes one run may write (a draft's append counts the copy of the original it makes). */
  maxWriteBytes: 256 * 1024 * 1024,
  maxTests: 100,
  /** The most characters of one test's name and of its failure kept in a report (the rest is counted). */
  maxTestNameChars: 500,
  maxTestErrorChars: 4000,
  /** The whole test run may take this many times `skill_timeout_seconds`. */
  testBudgetFactor: 5,
  /** Audit lines one call (or one whole test run) may write; the rest is counted in one closing line. */
  maxAuditEvents: 5_000,
  /** Audit bytes one call (or test run) may write… */
  maxAuditBytes: 1024 * 1024,
  /** …and never more than this share of the history the log keeps (`max_size_mb` × `max_files`). */
  auditHistoryShare: 0.1,
  /** After a run's deadline, how long its worker has to stop by itself before it is terminated. */
  killGraceMs: 500
} as const

/**
 * The most characters of JSON a skill's result may have, and a skill node's arguments: a quarter
 * of the memory a skill runs in (`limits.skill_memory_mb`, 16 MiB of the default 64), because the
 * skill that receives the value must hold it, parsed into objects several times the size of
 * their text, and still have room to work. Between skills nothing smaller applies; what reaches
 * a model is cut far shorter (`maxNodeInputChars`, `core/prompts.ts`).
 */
export const maxResultChars = (memoryMb: number): number => (memoryMb * 1024 * 1024) / 4

/** What a call or a test run may still write to the audit log, and what it held back. */
interface AuditTally {
  remaining: AuditBudget
  dropped: { events: number; bytes: number }
}

const isJobValue = <T extends JobValue["_tag"]>(value: JobValue, tag: T): value is Extract<JobValue, { readonly _tag: T }> =>
  value._tag === tag

/**
 * A test that stopped only because this run was not granted a capability (`exec` without
 * `--allow-exec`) neither passed nor failed: it is skipped, with the way to grant it.
 */
const skippedFor = (error: SandboxError): Pick<TestResult, "status" | "error"> | undefined =>
  error._tag === "CapabilityDenied" && error.reason === "not_granted"
    ? { status: "skip", error: `it needs the ${error.capability} capability, which this run was not granted (--allow-${error.capability} grants it)` }
    : undefined

/** What a host or a test may set beyond the config. */
export interface SandboxOptions {
  /** luallm-agent's own package, which no skill may change: the installed one by default (null: none). */
  readonly packageRoot?: string | null
  /** Bytes one run may write; `sandboxLimits.maxWriteBytes` by default. */
  readonly maxWriteBytes?: number
  /** `$PATH`, where a bare `luallm.binary` is found: this process's by default. */
  readonly searchPath?: ReadonlyArray<string>
  /** The CLI's code cache of the bundle: the bin's (`compileCacheDirectory`) by default (null: none). */
  readonly compileCache?: string | null
}

/**
 * What no skill may write (and `generate` may not write either), for this process: the
 * configuration's files and directories, the installed package, `luallm` on PATH, the CLI's
 * code cache. `options` are a test's overrides.
 */
export const trustRootsOf = (app: AppConfigShape, options: SandboxOptions = {}) =>
  trustRoots({
    config: app.config,
    configFiles: app.configFiles,
    packageRoot: options.packageRoot === undefined ? installedPackageRoot : options.packageRoot,
    searchPath: options.searchPath ?? (process.env["PATH"] ?? "").split(":"),
    compileCache: options.compileCache === undefined ? compileCacheDirectory() : options.compileCache
  })

/** The sandbox over worker threads whose host port uses `environment`'s home and cwd. */
export const makeSandbox = (environment: HostEnvironment, workerScript: string = sandboxWorkerScript, options: SandboxOptions = {}) =>
  Effect.gen(function*() {
    const app = yield* AppConfig
    const { config } = app
    const audit = yield* Audit
    const protectedPaths = trustRootsOf(app, options)
    const timeoutSeconds = config.limits.skill_timeout_seconds
    const pool = yield* makeWorkerPool({
      script: workerScript,
      size: config.limits.max_parallel_nodes,
      graceMs: sandboxLimits.killGraceMs,
      auditCapacity: sandboxLimits.maxAuditBytes,
      settings: {
        ...environment,
        timeoutSeconds,
        memoryMb: config.limits.skill_memory_mb,
        stackBytes: sandboxLimits.stackBytes,
        maxOutputChars: sandboxLimits.maxOutputChars,
        maxResultChars: maxResultChars(config.limits.skill_memory_mb),
        maxHandles: sandboxLimits.maxHandles,
        maxWriteBytes: options.maxWriteBytes ?? sandboxLimits.maxWriteBytes,
        allowedPaths: config.allowed_paths,
        protectedPaths
      }
    })

    // The log keeps max_files rotated files of max_size_mb besides the current one.
    const history = config.audit.max_size_mb * 1024 * 1024 * Math.max(1, config.audit.max_files)
    const newTally = (): AuditTally => ({
      remaining: {
        events: sandboxLimits.maxAuditEvents,
        bytes: Math.floor(Math.min(sandboxLimits.maxAuditBytes, history * sandboxLimits.auditHistoryShare))
      },
      dropped: { events: 0, bytes: 0 }
    })

    /** One run of `job` in a worker, its audit events written as they come, charged to `tally`. */
    const withRun = (tally: AuditTally, request: RunRequest, job: Job) =>
      Effect.gen(function*() {
        const report = yield* pool.run({ request, job, budget: tally.remaining }, (event, data) => audit.log(event, data))
        tally.remaining = {
          events: Math.max(0, tally.remaining.events - report.written.events),
          bytes: Math.max(0, tally.remaining.bytes - report.written.bytes)
        }
        tally.dropped = { events: tally.dropped.events + report.dropped.events, bytes: tally.dropped.bytes + report.dropped.bytes }
        return { value: report.outcome, output: report.output }
      })

    /** Runs `body` with a fresh tally, then says in one line what the budget held back, if anything. */
    const budgeted = <A, E>(skill: string, body: (tally: AuditTally) => Effect.Effect<A, E>) =>
      Effect.gen(function*() {
        const tally = newTally()
        const result = yield* Effect.either(body(tally))
        if (tally.dropped.events > 0) {
          const initial = newTally().remaining
          yield* audit.log("sandbox.audit_capped", {
            skill,
            dropped_events: tally.dropped.events,
            dropped_bytes: tally.dropped.bytes,
            max_events: initial.events,
            max_bytes: initial.bytes
          })
        }
        return yield* result
      })

    /** The value a job must produce, or a crash report when the worker answered with another. */
    const expect = <T extends JobValue["_tag"]>(skill: string, tag: T) =>
    (value: JobValue): Either.Either<Extract<JobValue, { readonly _tag: T }>, SandboxCrashed> =>
      isJobValue(value, tag)
        ? Either.right(value)
        : Either.left(new SandboxCrashed({ skill, reason: `the sandbox worker answered a ${tag} job with ${value._tag}` }))

    const call: SandboxShape["call"] = (request, fn, args) => {
      const skill = request.skill.meta.name
      return budgeted(skill, (tally) => withRun(tally, request, { _tag: "Call", fn, args: JSON.stringify(args) })).pipe(
        Effect.flatMap(({ output, value }) =>
          Either.flatMap(Either.flatMap(value, expect(skill, "Json")), ({ json }): Either.Either<CallResult, SandboxError> =>
            Either.right({ result: parseGuestJson(json), output }))
        )
      )
    }

    const exportedFunctions: SandboxShape["exportedFunctions"] = (request) => {
      const skill = request.skill.meta.name
      return budgeted(skill, (tally) => withRun(tally, request, { _tag: "ExportedFunctions" })).pipe(
        Effect.flatMap(({ value }) => Either.map(Either.flatMap(value, expect(skill, "Names")), ({ names }) => names))
      )
    }

    const runTests: SandboxShape["runTests"] = (request, tests) => {
      const skill = request.skill.meta.name
      return budgeted(skill, (tally) =>
        Effect.gen(function*() {
          const listed = yield* withRun(tally, request, { _tag: "TestNames", tests })
          const names = yield* Either.mapLeft(
            Either.flatMap(listed.value, expect(skill, "Names")),
            (error) => new TestFileFailed({ skill, file: tests.file, reason: error.message, draft: request.mode._tag === "Draft" })
          )
          if (names.names.length > sandboxLimits.maxTests) {
            return yield* new TestFileFailed({
              skill,
              file: tests.file,
              reason: `it registers ${names.names.length} tests, more than the ${sandboxLimits.maxTests} allowed.`,
              draft: request.mode._tag === "Draft"
            })
          }
          const budget = Duration.seconds(timeoutSeconds * sandboxLimits.testBudgetFactor)
          const results: Array<TestResult> = []
          // What the tests print, together capped like one run's output.
          const outputs = new OutputBuffer(sandboxLimits.maxOutputChars, "the tests printed")
          let spent = Duration.zero
          for (const [index, fullName] of names.names.entries()) {
            // A test file chooses its names and failures: they reach reports, saved tasks and the terminal.
            const name = clip(fullName, sandboxLimits.maxTestNameChars)
            if (Duration.greaterThanOrEqualTo(spent, budget)) {
              results.push({ name, status: "fail", error: `not run: the tests took longer than their ${Duration.format(budget)} budget`, duration_ms: 0 })
              continue
            }
            const [elapsed, ran] = yield* Effect.timed(withRun(tally, request, { _tag: "RunTest", tests, index }))
            spent = Duration.sum(spent, elapsed)
            const outcome = Either.match(Either.flatMap(ran.value, expect(skill, "TestOutcome")), {
              onLeft: (error): Pick<TestResult, "status" | "error"> => skippedFor(error) ?? { status: "fail", error: error.message },
              onRight: ({ outcome }) => ({ ...outcome, error: outcome.error === null ? null : clip(outcome.error, sandboxLimits.maxTestErrorChars) })
            })
            results.push({ name, ...outcome, duration_ms: Math.round(Duration.toMillis(elapsed)) })
            if (ran.output !== "") outputs.add(`# ${name}\n${ran.output}`)
          }
          return { report: summarize(results), output: outputs.text() }
        }))
    }

    return Sandbox.of({ call, exportedFunctions, runTests })
  })

/**
 * A sandbox whose skills see `environment`'s home (for `~`) and cwd (tests give their own);
 * `workerScript` is the worker bundle to run (the built one by default); `options` what tests
 * set beyond the config. Fails with `SandboxWorkerMissing` when the bundle is not there.
 */
export const sandboxLayer = (
  environment: HostEnvironment,
  workerScript?: string,
  options: SandboxOptions = {}
): Layer.Layer<Sandbox, SandboxWorkerMissing, AppConfig | Audit> => Layer.scoped(Sandbox, makeSandbox(environment, workerScript, options))

/** The live sandbox: node's file system and processes, `~` from $HOME. */
export const SandboxLive: Layer.Layer<Sandbox, SandboxWorkerMissing, AppConfig | Audit> = Layer.suspend(() => {
  const { cwd, home } = nodeSandboxHost()
  return sandboxLayer({ home, cwd })
})
