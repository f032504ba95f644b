/**
 * Approval of drafted skills. A draft whose tests pass becomes a record in
 * `state_dir/pending_approvals/skill_<name>_<uuid>.json`; a human approves or rejects it
 * (interactively, with `approvals approve|reject ID`, or by running the printed `cp` +
 * `chmod` commands), and only an approved draft is ever copied into `skills.allowed_dir`.
 * The record keeps the SHA-256 of the code that was tested, so a draft edited after its
 * tests ran cannot be promoted until the tests run again.
 */
import { FileSystem, Path } from "@effect/platform"
import { Clock, Context, Data, Effect, Layer, Schema } from "effect"
import { fromJsonText } from "../core/jsonText.ts"
import { SkillMetadata } from "../core/skillMeta.ts"
import { TestReport } from "../core/testHarness.ts"
import { Audit, type AuditWriteError } from "./Audit.ts"
import { AppConfig } from "./Config.ts"

export const ApprovalStatus = Schema.Literal("pending", "approved", "rejected")

export const ApprovalRecord = Schema.Struct({
  id: Schema.String,
  skill_name: Schema.String,
  version: Schema.String,
  task_id: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  /** The draft and its tests, in skills.agent_dir. */
  code_path: Schema.String,
  test_path: Schema.String,
  /** SHA-256 of the code and the tests the report belongs to. */
  code_sha256: Schema.String,
  test_sha256: Schema.String,
  metadata: SkillMetadata,
  test_report: TestReport,
  status: ApprovalStatus,
  resolved_at: Schema.NullOr(Schema.String),
  reason: Schema.NullOr(Schema.String),
  promoted_to: Schema.NullOr(Schema.String)
})
export type ApprovalRecord = typeof ApprovalRecord.Type

export class ApprovalNotFound extends Data.TaggedError("ApprovalNotFound")<{ readonly id: string; readonly dir: string }> {
  override get message() {
    return `No approval ${this.id} in ${this.dir}. Run \`luallm-agent approvals list\` to see the pending ones.`
  }
}

export class ApprovalAmbiguous extends Data.TaggedError("ApprovalAmbiguous")<{
  readonly id: string
  readonly matches: ReadonlyArray<string>
}> {
  override get message() {
    return `"${this.id}" matches several approvals (${this.matches.join(", ")}). Give more characters of the id.`
  }
}

export class ApprovalCorrupt extends Data.TaggedError("ApprovalCorrupt")<{ readonly path: string; readonly reason: string }> {
  override get message() {
    return `The approval record ${this.path} is damaged (${this.reason}). Move it away; the draft it names is untouched.`
  }
}

export class ApprovalAlreadyResolved extends Data.TaggedError("ApprovalAlreadyResolved")<{
  readonly id: string
  readonly status: string
}> {
  override get message() {
    return `Approval ${this.id} was already ${this.status}; a decision is final. Run the task again to draft a new version.`
  }
}

export class PromotionRefused extends Data.TaggedError("PromotionRefused")<{
  readonly id: string
  readonly skill: string
  readonly reason: string
}> {
  override get message() {
    return `Skill ${this.skill} (approval ${this.id}) was not promoted: ${this.reason}. Nothing was copied to skills.allowed_dir; check the draft with \`luallm-agent approvals show ${this.id.slice(0, 8)}\`.`
  }
}

export class ApprovalIoError extends Data.TaggedError("ApprovalIoError")<{ readonly path: string; readonly reason: string }> {
  override get message() {
    return `Could not access ${this.path}: ${this.reason}. Check that state_dir and skills.allowed_dir are writable.`
  }
}

export type ApprovalError =
  | ApprovalNotFound
  | ApprovalAmbiguous
  | ApprovalCorrupt
  | ApprovalAlreadyResolved
  | PromotionRefused
  | ApprovalIoError
  | AuditWriteError

export interface NewApproval {
  readonly skillName: string
  readonly metadata: typeof SkillMetadata.Type
  readonly codePath: string
  readonly testPath: string
  readonly testReport: typeof TestReport.Type
  readonly taskId: string | null
}

export interface ApprovalsShape {
  readonly create: (input: NewApproval) => Effect.Effect<ApprovalRecord, ApprovalError>
  readonly listPending: Effect.Effect<ReadonlyArray<ApprovalRecord>, ApprovalError>
  /** By full id or an unambiguous prefix. */
  readonly get: (id: string) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** Records a human's decision (audited). Approving checks the code is the code that was tested. */
  readonly resolve: (id: string, approved: boolean, reason?: string) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** Replaces the test report after a rerun (the interactive [R]erun / [E]dit). */
  readonly updateTests: (id: string, report: typeof TestReport.Type) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** Copies an approved draft and its test into skills.allowed_dir (read-only for others). */
  readonly promote: (id: string) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** Whether the skill now sits in skills.allowed_dir with the approved code. */
  readonly checkPromotion: (record: ApprovalRecord) => Effect.Effect<boolean, ApprovalError>
  /** The exact shell commands that promote by hand. */
  readonly promotionCommands: (record: ApprovalRecord) => ReadonlyArray<string>
}

export class Approvals extends Context.Tag("Approvals")<Approvals, ApprovalsShape>() {}

const sha256 = (text: string): Effect.Effect<string> =>
  Effect.promise(() => crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))).pipe(
    Effect.map((digest) => Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""))
  )

/** Quotes a path for a POSIX shell, so the printed commands are safe to paste. */
export const shellQuote = (text: string): string => /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`

const decodeRecord = Schema.decodeUnknownEither(fromJsonText(ApprovalRecord))
const encodeRecord = Schema.encodeSync(fromJsonText(ApprovalRecord, { space: 2 }))

export const ApprovalsLive: Layer.Layer<Approvals, never, AppConfig | Audit | FileSystem.FileSystem | Path.Path> = Layer.effect(
  Approvals,
  Effect.gen(function*() {
    const { config } = yield* AppConfig
    const audit = yield* Audit
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.join(config.state_dir, "pending_approvals")
    const allowedDir = config.skills.allowed_dir
    const io = (target: string) => (error: { readonly message: string }) => new ApprovalIoError({ path: target, reason: error.message })
    const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())
    const fileFor = (record: ApprovalRecord) => path.join(dir, `skill_${record.skill_name}_${record.id}.json`)
    const readText = (file: string) => fs.readFileString(file).pipe(Effect.mapError(io(file)))

    const write = (record: ApprovalRecord) =>
      Effect.gen(function*() {
        yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(io(dir)))
        const file = fileFor(record)
        yield* fs.writeFileString(`${file}.tmp`, encodeRecord(record)).pipe(Effect.mapError(io(file)))
        yield* fs.rename(`${file}.tmp`, file).pipe(Effect.mapError(io(file)))
        return record
      })

    const readAll = Effect.gen(function*() {
      if (!(yield* fs.exists(dir).pipe(Effect.mapError(io(dir))))) return []
      const names = (yield* fs.readDirectory(dir).pipe(Effect.mapError(io(dir))))
        .filter((name) => name.startsWith("skill_") && name.endsWith(".json"))
        .sort()
      return yield* Effect.forEach(names, (name) =>
        Effect.gen(function*() {
          const file = path.join(dir, name)
          const decoded = decodeRecord(yield* readText(file))
          if (decoded._tag === "Left") {
            return yield* new ApprovalCorrupt({ path: file, reason: decoded.left.message.split("\n")[0] ?? "invalid" })
          }
          return decoded.right
        }))
    })

    const get = (id: string) =>
      Effect.gen(function*() {
        const matches = (yield* readAll).filter((record) => record.id === id || (id.length >= 4 && record.id.startsWith(id)))
        const [only, ...others] = matches
        if (only === undefined) return yield* new ApprovalNotFound({ id, dir })
        if (others.length > 0) return yield* new ApprovalAmbiguous({ id, matches: matches.map((m) => m.id) })
        return only
      })

    const hashes = (record: Pick<ApprovalRecord, "code_path" | "test_path">) =>
      Effect.all([Effect.flatMap(readText(record.code_path), sha256), Effect.flatMap(readText(record.test_path), sha256)])

    const create = (input: NewApproval) =>
      Effect.gen(function*() {
        const [code_sha256, test_sha256] = yield* hashes({ code_path: input.codePath, test_path: input.testPath })
        const record: ApprovalRecord = {
          id: crypto.randomUUID(),
          skill_name: input.skillName,
          version: input.metadata.version,
          task_id: input.taskId,
          created_at: yield* now,
          code_path: input.codePath,
          test_path: input.testPath,
          code_sha256,
          test_sha256,
          metadata: input.metadata,
          test_report: input.testReport,
          status: "pending",
          resolved_at: null,
          reason: null,
          promoted_to: null
        }
        yield* write(record)
        yield* audit.log("approval.create", { id: record.id, skill: record.skill_name, tests: input.testReport.passed })
        return record
      })

    const resolve = (id: string, approved: boolean, reason?: string) =>
      Effect.gen(function*() {
        const record = yield* get(id)
        if (record.status !== "pending") return yield* new ApprovalAlreadyResolved({ id: record.id, status: record.status })
        if (approved) {
          const [code, test] = yield* hashes(record)
          if (code !== record.code_sha256 || test !== record.test_sha256) {
            return yield* new PromotionRefused({
              id: record.id,
              skill: record.skill_name,
              reason: "the draft changed after its tests ran; rerun the tests (the [R] key in `luallm-agent resume`) before approving"
            })
          }
          if (record.test_report.failed > 0 || record.test_report.total === 0) {
            return yield* new PromotionRefused({
              id: record.id,
              skill: record.skill_name,
              reason: `its last test run did not pass (${record.test_report.passed}/${record.test_report.total})`
            })
          }
        }
        const resolved: ApprovalRecord = {
          ...record,
          status: approved ? "approved" : "rejected",
          resolved_at: yield* now,
          reason: reason ?? null
        }
        yield* write(resolved)
        yield* audit.log("approval.resolve", { id: record.id, skill: record.skill_name, approved, reason: reason ?? null })
        return resolved
      })

    const updateTests = (id: string, report: typeof TestReport.Type) =>
      Effect.gen(function*() {
        const record = yield* get(id)
        if (record.status !== "pending") return yield* new ApprovalAlreadyResolved({ id: record.id, status: record.status })
        const [code_sha256, test_sha256] = yield* hashes(record)
        return yield* write({ ...record, test_report: report, code_sha256, test_sha256 })
      })

    const targetsFor = (record: ApprovalRecord) => ({
      code: path.join(allowedDir, `${record.skill_name}.js`),
      test: path.join(allowedDir, `${record.skill_name}.test.js`)
    })

    const checkPromotion = (record: ApprovalRecord) =>
      Effect.gen(function*() {
        const target = targetsFor(record).code
        if (!(yield* fs.exists(target).pipe(Effect.mapError(io(target))))) return false
        return (yield* Effect.flatMap(readText(target), sha256)) === record.code_sha256
      })

    const promote = (id: string) =>
      Effect.gen(function*() {
        const record = yield* get(id)
        if (record.status !== "approved") {
          return yield* new PromotionRefused({
            id: record.id,
            skill: record.skill_name,
            reason: `it is ${record.status}; only a draft a human approved is promoted`
          })
        }
        const [code] = yield* hashes(record)
        if (code !== record.code_sha256) {
          return yield* new PromotionRefused({ id: record.id, skill: record.skill_name, reason: "the draft changed after it was approved" })
        }
        const targets = targetsFor(record)
        yield* fs.makeDirectory(allowedDir, { recursive: true }).pipe(Effect.mapError(io(allowedDir)))
        for (const [from, to] of [[record.code_path, targets.code], [record.test_path, targets.test]] as const) {
          yield* fs.copyFile(from, to).pipe(Effect.mapError(io(to)))
          yield* fs.chmod(to, 0o644).pipe(Effect.mapError(io(to)))
        }
        const promoted = yield* write({ ...record, promoted_to: targets.code })
        yield* audit.log("approval.promote", { id: record.id, skill: record.skill_name, path: targets.code })
        return promoted
      })

    const promotionCommands = (record: ApprovalRecord) => {
      const targets = targetsFor(record)
      return [
        `mkdir -p ${shellQuote(allowedDir)}`,
        `cp ${shellQuote(record.code_path)} ${shellQuote(targets.code)}`,
        `cp ${shellQuote(record.test_path)} ${shellQuote(targets.test)}`,
        `chmod 644 ${shellQuote(targets.code)} ${shellQuote(targets.test)}`
      ]
    }

    return Approvals.of({
      create,
      listPending: Effect.map(readAll, (all) => all.filter((record) => record.status === "pending")),
      get,
      resolve,
      updateTests,
      promote,
      checkPromotion,
      promotionCommands
    })
  })
)
