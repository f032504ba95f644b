/**
 * The messages between the main thread and a sandbox worker (`worker.ts`), as schemas: what
 * crosses the thread boundary is encoded on one side and decoded on the other.
 *
 * - At start, `workerData` holds the `WorkerSettings` (the layer's limits, paths and home), the
 *   engine's compiled code and the worker's audit buffer (`auditBuffer.ts`); the worker answers
 *   `Ready` once its engine is loaded.
 * - Per run, the main thread posts one `RunMessage`: the request (skill, dependencies, mode,
 *   exec grant), what to do with it (`Job`) and the audit budget the run may still spend.
 * - The worker answers with one `Finished`: the outcome, what the skill printed, and whether
 *   the worker can run anything more. Its audit events travel in the shared buffer, each one
 *   as it happens, as `AuditEvent` frames.
 */
import { Schema } from "effect"
import { SkillMetadata } from "../../core/skillMeta.ts"
import { TestOutcome } from "../../core/testHarness.ts"
import { isEngineCode } from "./engine.ts"
import { SandboxErrorSchema } from "./errors.ts"
import type { RunRequest, RunSettings, SkillSource, TestSource } from "./instance.ts"
import type { ProtectedPath, RunMode } from "./paths.ts"

const ProtectedPathSchema: Schema.Schema<ProtectedPath> = Schema.Struct({
  key: Schema.String,
  path: Schema.String,
  readableBy: Schema.Literal("all", "trusted", "none")
})

/** Where `~` and relative paths point, for the host port the worker builds. */
export interface HostEnvironment {
  readonly home: string
  readonly cwd: string
}

/** `RunSettings` without the host port, which the worker builds from `home` and `cwd`. */
export type WorkerSettings = Omit<RunSettings, "host"> & HostEnvironment

export const WorkerSettings: Schema.Schema<WorkerSettings> = Schema.Struct({
  home: Schema.String,
  cwd: Schema.String,
  timeoutSeconds: Schema.Number,
  memoryMb: Schema.Number,
  stackBytes: Schema.Number,
  maxOutputChars: Schema.Number,
  maxResultChars: Schema.Number,
  maxHandles: Schema.Number,
  maxWriteBytes: Schema.Number,
  allowedPaths: Schema.Array(Schema.String),
  protectedPaths: Schema.Array(ProtectedPathSchema)
})

const SkillSourceSchema: Schema.Schema<SkillSource, { readonly meta: typeof SkillMetadata.Encoded; readonly file: string; readonly code: string }> =
  Schema.Struct({ meta: SkillMetadata, file: Schema.String, code: Schema.String })

const TestSourceSchema: Schema.Schema<TestSource> = Schema.Struct({ file: Schema.String, code: Schema.String })

const RunModeSchema: Schema.Schema<RunMode> = Schema.Union(
  Schema.TaggedStruct("Trusted", {}),
  Schema.TaggedStruct("Draft", { scratchDir: Schema.String })
)

const RunRequestStruct = Schema.Struct({
  skill: SkillSourceSchema,
  dependencies: Schema.ReadonlyMap({ key: Schema.String, value: SkillSourceSchema }),
  mode: RunModeSchema,
  grantExec: Schema.Boolean
})
/** Exactly the request the `Sandbox` service takes; dependencies travel as `[name, skill]` pairs. */
const RunRequestSchema: Schema.Schema<RunRequest, typeof RunRequestStruct.Encoded> = RunRequestStruct

/** What a run does once the skill is loaded. */
export const Job = Schema.Union(
  /** Call an exported function; `args` is the argument as JSON text. */
  Schema.TaggedStruct("Call", { fn: Schema.String, args: Schema.String }),
  Schema.TaggedStruct("ExportedFunctions", {}),
  /** Load the test file and list the tests it registers. */
  Schema.TaggedStruct("TestNames", { tests: TestSourceSchema }),
  Schema.TaggedStruct("RunTest", { tests: TestSourceSchema, index: Schema.Int })
)
export type Job = typeof Job.Type

/** How much audit output a run may still produce (a test run shares it with its siblings). */
export const AuditBudget = Schema.Struct({ events: Schema.Number, bytes: Schema.Number })
export type AuditBudget = typeof AuditBudget.Type

export const RunMessage = Schema.Struct({
  request: RunRequestSchema,
  job: Job,
  budget: AuditBudget
})
export type RunMessage = typeof RunMessage.Type

/** What a job produced: the called function's result as JSON text, names, or a test's outcome. */
export const JobValue = Schema.Union(
  Schema.TaggedStruct("Json", { json: Schema.String }),
  Schema.TaggedStruct("Names", { names: Schema.Array(Schema.String) }),
  Schema.TaggedStruct("TestOutcome", { outcome: TestOutcome })
)
export type JobValue = typeof JobValue.Type

export const WorkerData = Schema.Struct({
  settings: WorkerSettings,
  /** The engine's compiled code, shared by every worker (`engine.ts`). */
  engineCode: Schema.declare(isEngineCode, { identifier: "WebAssembly.Module" }),
  /** Where the worker's runs write their audit events (`auditBuffer.ts`). */
  audit: Schema.instanceOf(SharedArrayBuffer)
})

/** One frame of the audit buffer: `[event, data]`. */
export const AuditEvent = Schema.parseJson(Schema.Tuple(Schema.String, Schema.Record({ key: Schema.String, value: Schema.Unknown })))

export const WorkerReply = Schema.Union(
  /**
   * The worker's engine is loaded: runs start at once from now on. `commands` is where the kernel
   * lists the processes the worker's thread started (`exec`), for the main thread to kill them
   * when it stops a run; null where there is no such list.
   */
  Schema.TaggedStruct("Ready", { commands: Schema.NullOr(Schema.String) }),
  Schema.TaggedStruct("Finished", {
    outcome: Schema.Either({ right: JobValue, left: SandboxErrorSchema }),
    output: Schema.String,
    /** The engine was left full or broken: the worker must not run anything else. */
    retire: Schema.Boolean
  }),
  /** The worker could not read a message (a bug on one side); it cannot go on. */
  Schema.TaggedStruct("Unreadable", { reason: Schema.String })
)
export type WorkerReply = typeof WorkerReply.Type
