/**
 * The skill runner (SPEC part 12): load a skill and its dependencies, run it in the sandbox,
 * audit the run. Approved and shipped skills (`skills.allowed_dir`, then `skills.builtin_dir`)
 * run trusted; drafts (`skills.agent_dir`) run in draft mode, their writes landing in a
 * scratch directory. Dependencies always come from the trusted directories.
 */
import { FileSystem, Path } from "@effect/platform"
import { Context, Data, Duration, Effect, Layer } from "effect"
import type { Json } from "../core/config.ts"
import type { TestReport } from "../core/testHarness.ts"
import { Audit, type AuditWriteError } from "./Audit.ts"
import { draft, type RunMode, type RunRequest, Sandbox, type SandboxError, type TestFileFailed, trusted } from "./Sandbox.ts"
import { type DependencyError, type LoadedSkill, type SkillLoadError, Skills, SkillUnreadable } from "./Skills.ts"

export class TestFileMissing extends Data.TaggedError("TestFileMissing")<{
  readonly skill: string
  readonly file: string
}> {
  override get message() {
    return `Skill ${this.skill} has no tests: ${this.file} does not exist. Write its tests there (test(name, fn) and assert.*).`
  }
}

export class RunNotDeclared extends Data.TaggedError("RunNotDeclared")<{
  readonly skill: string
  readonly declared: ReadonlyArray<string>
}> {
  override get message() {
    return `Skill ${this.skill} cannot be run: its header does not list "run" in public_functions (it lists ${this.declared.join(", ")}). Add run to public_functions and export it.`
  }
}

export interface RunOptions {
  /** Run the agent's draft of this name (from skills.agent_dir) in draft mode. */
  readonly draft?: boolean
  /** The caller's approval tier allows the `exec` capability for this run. */
  readonly grantExec?: boolean
  /** Where a draft's writes go; a fresh temporary directory (removed afterwards) if absent. */
  readonly scratchDir?: string
}

export interface ExecuteResult {
  readonly result: Json
  readonly output: string
  readonly duration_ms: number
}

export interface TestsResult extends TestReport {
  /** The test file that ran (`<name>.test.js` beside the skill). */
  readonly file: string
  readonly output: string
  /** The code and the tests exactly as this run read and ran them (what an approval keeps). */
  readonly tested: { readonly code: string; readonly tests: string }
}

export type RunnerError = SkillLoadError | DependencyError | AuditWriteError

export interface SkillRunnerShape {
  readonly execute: (name: string, args: Json, options?: RunOptions) => Effect.Effect<ExecuteResult, RunnerError | RunNotDeclared | SandboxError>
  readonly runTests: (name: string, options?: RunOptions) => Effect.Effect<TestsResult, RunnerError | TestFileMissing | TestFileFailed>
}

export class SkillRunner extends Context.Tag("SkillRunner")<SkillRunner, SkillRunnerShape>() {}

export const makeSkillRunner = Effect.gen(function*() {
  const skills = yield* Skills
  const sandbox = yield* Sandbox
  const audit = yield* Audit
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path

  /** The skill, its dependencies and the run mode (with a scratch dir for drafts). */
  const prepare = (name: string, options: RunOptions) =>
    Effect.gen(function*() {
      const skill = yield* skills.load(name, options.draft === true ? skills.draftDirs : skills.trustedDirs)
      const dependencies = yield* skills.resolveDependencies(skill.meta, skills.trustedDirs)
      const mode: RunMode = options.draft === true
        ? draft(options.scratchDir ?? (yield* fs.makeTempDirectoryScoped({ prefix: "luallm-draft-" }).pipe(Effect.orDie)))
        : trusted
      const request: RunRequest = {
        skill,
        dependencies: new Map(dependencies.map((d) => [d.meta.name, d])),
        mode,
        grantExec: options.grantExec === true
      }
      return { skill, request }
    })

  const describeMode = (skill: LoadedSkill, mode: RunMode) => ({
    skill: skill.meta.name,
    version: skill.meta.version,
    file: skill.file,
    mode: mode._tag === "Draft" ? "draft" : "trusted"
  })

  const execute: SkillRunnerShape["execute"] = Effect.fn("SkillRunner.execute")(function*(name: string, args: Json, options: RunOptions = {}) {
    const { request, skill } = yield* prepare(name, options)
    if (!skill.meta.public_functions.includes("run")) {
      return yield* new RunNotDeclared({ skill: skill.meta.name, declared: skill.meta.public_functions })
    }
    yield* audit.log("skill.start", describeMode(skill, request.mode))
    const [elapsed, outcome] = yield* Effect.timed(Effect.either(sandbox.call(request, "run", args)))
    const duration_ms = Math.round(Duration.toMillis(elapsed))
    if (outcome._tag === "Left") {
      const error = outcome.left
      if (error._tag !== "AuditWriteError") {
        yield* audit.log("skill.error", { skill: skill.meta.name, duration_ms, error: error._tag, message: error.message })
      }
      return yield* error
    }
    yield* audit.log("skill.end", { skill: skill.meta.name, duration_ms, output_chars: outcome.right.output.length })
    return { ...outcome.right, duration_ms }
  }, Effect.scoped)

  const runTests: SkillRunnerShape["runTests"] = Effect.fn("SkillRunner.runTests")(function*(name: string, options: RunOptions = {}) {
    const { request, skill } = yield* prepare(name, options)
    const file = path.join(skill.dir, `${skill.meta.name}.test.js`)
    const code = yield* fs.readFileString(file).pipe(
      Effect.mapError((error) =>
        error._tag === "SystemError" && error.reason === "NotFound"
          ? new TestFileMissing({ skill: skill.meta.name, file })
          : new SkillUnreadable({ file, reason: error.message })
      )
    )
    const [elapsed, run] = yield* Effect.timed(sandbox.runTests(request, { file, code }))
    const { report } = run
    yield* audit.log("skill.test", {
      ...describeMode(skill, request.mode),
      total: report.total,
      passed: report.passed,
      failed: report.failed,
      skipped: report.skipped ?? 0,
      duration_ms: Math.round(Duration.toMillis(elapsed))
    })
    return { ...report, file, output: run.output, tested: { code: skill.code, tests: code } }
  }, Effect.scoped)

  return SkillRunner.of({ execute, runTests })
})

export const SkillRunnerLive: Layer.Layer<SkillRunner, never, Skills | Sandbox | Audit | FileSystem.FileSystem | Path.Path> =
  Layer.effect(SkillRunner, makeSkillRunner)
