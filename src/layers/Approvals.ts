/**
 * Approval of drafted skills. A draft whose tests pass becomes a record in
 * `state_dir/pending_approvals/skill_<name>_<uuid>.json`; a human approves or rejects it
 * (interactively, with `approvals approve|reject ID`, or by running the printed `cp` +
 * `chmod` commands), and only an approved draft is ever installed into `skills.allowed_dir`.
 *
 * What is reviewed and installed is the tested copy, never the live draft: when the tests
 * pass, the exact code and tests they ran are kept in `pending_approvals/tested/<sha256>.js`
 * (named by their hash, written atomically), and the record names those hashes. The review
 * shows that copy; promotion reads it, checks its hash, writes it under a temporary name in
 * `skills.allowed_dir`, syncs it, checks the hash of what was written, then renames it into
 * place. A draft swapped after its tests ran is never what gets promoted; a tested copy that
 * no longer matches its hash is refused.
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Context, Data, Effect, Either, Layer, Schema } from "effect"
import { fromJsonText } from "../core/jsonText.ts"
import { formatParseError } from "../core/schemaIssues.ts"
import { parseMetadata, SkillMetadata, SkillName } from "../core/skillMeta.ts"
import type { TestedFiles } from "../core/task.ts"
import { allPassed, TestReport } from "../core/testHarness.ts"
import { Audit, type AuditWriteError, inTask } from "./Audit.ts"
import { AppConfig } from "./Config.ts"

export const ApprovalStatus = Schema.Literal("pending", "approved", "rejected")

export const ApprovalRecord = Schema.Struct({
  id: Schema.String,
  /** An identifier, never a path: it names the files promotion writes in skills.allowed_dir. */
  skill_name: SkillName,
  version: Schema.String,
  task_id: Schema.NullOr(Schema.String),
  created_at: Schema.String,
  /** The draft and its tests, in skills.agent_dir (where they were tested from; never promoted from). */
  code_path: Schema.String,
  test_path: Schema.String,
  /** SHA-256 of the code and the tests the report belongs to: the names of their tested copies. */
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
  /** Why it was decided, as recorded (e.g. its task was discarded with reset). */
  readonly reason?: string | null
}> {
  override get message() {
    // Why a draft was rejected matters to whoever finds it settled (its task reset, say).
    const why = this.status !== "rejected" || this.reason === undefined || this.reason === null ? "" : ` (${this.reason})`
    return `Approval ${this.id} was already ${this.status}${why}; a decision is final. Run the task again to draft a new version.`
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

/** The code and the tests exactly as a test run read them. */
export interface TestedSources {
  readonly code: string
  readonly tests: string
}

/** The tested copy of a record's draft, checked against its hashes: what a reviewer reads. */
export interface TestedCopy extends TestedSources {
  /** Where the copies are (what the printed `cp` commands copy). */
  readonly codePath: string
  readonly testPath: string
}

export interface NewApproval {
  readonly skillName: string
  readonly metadata: typeof SkillMetadata.Type
  /** The draft's files in skills.agent_dir, for the reviewer's information. */
  readonly codePath: string
  readonly testPath: string
  readonly testReport: typeof TestReport.Type
  /** The tested copy (`keepTested`) this approval is for. */
  readonly tested: TestedFiles
  readonly taskId: string | null
}

export interface ApprovalsShape {
  /** Keeps the code and tests a passing run read, named by their SHA-256 (atomic, idempotent). */
  readonly keepTested: (sources: TestedSources) => Effect.Effect<TestedFiles, ApprovalError>
  /** Files a record for a tested copy kept by `keepTested`. */
  readonly create: (input: NewApproval) => Effect.Effect<ApprovalRecord, ApprovalError>
  readonly listPending: Effect.Effect<ReadonlyArray<ApprovalRecord>, ApprovalError>
  /** By full id or an unambiguous prefix. */
  readonly get: (id: string) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** The tested copy named by a record's (or a test run's) hashes, checked against them: what the review shows. */
  readonly tested: (files: TestedFiles) => Effect.Effect<TestedCopy, ApprovalError>
  /** Records a human's decision (audited). Approving checks the tested copy and that the draft still is it. */
  readonly resolve: (id: string, approved: boolean, reason?: string) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** Replaces the test report and the tested copy after a rerun (the interactive [R]erun / [E]dit). */
  readonly updateTests: (id: string, report: typeof TestReport.Type, sources: TestedSources) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** Installs an approved record's tested copy into skills.allowed_dir (read-only for others). */
  readonly promote: (id: string) => Effect.Effect<ApprovalRecord, ApprovalError>
  /** Whether skills.allowed_dir now holds exactly the approved code and tests. */
  readonly checkPromotion: (record: ApprovalRecord) => Effect.Effect<boolean, ApprovalError>
  /** The exact shell commands that promote by hand, from the tested copy, ending with a `sha256sum` check. */
  readonly promotionCommands: (record: ApprovalRecord) => ReadonlyArray<string>
}

export class Approvals extends Context.Tag("Approvals")<Approvals, ApprovalsShape>() {}

const hex = (digest: ArrayBuffer): string => Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("")

/** SHA-256 of text (as its UTF-8 bytes) or of bytes. */
const sha256 = (data: string | Uint8Array): Effect.Effect<string> =>
  // A copy for bytes: digest wants a buffer that cannot be shared (Deno's types insist).
  Effect.promise(() => crypto.subtle.digest("SHA-256", typeof data === "string" ? new TextEncoder().encode(data) : Uint8Array.from(data))).pipe(
    Effect.map(hex)
  )

/** Quotes a path for a POSIX shell, so the printed commands are safe to paste. */
export const shellQuote = (text: string): string => /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`

const isNotFound = (error: PlatformError): boolean => error._tag === "SystemError" && error.reason === "NotFound"

const sameMetadata = Schema.equivalence(SkillMetadata)

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
    const testedDir = path.join(dir, "tested")
    const allowedDir = config.skills.allowed_dir
    const io = (target: string) => (error: { readonly message: string }) => new ApprovalIoError({ path: target, reason: error.message })
    const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())
    const fileFor = (record: ApprovalRecord) => path.join(dir, `skill_${record.skill_name}_${record.id}.json`)
    const readText = (file: string) => fs.readFileString(file).pipe(Effect.mapError(io(file)))
    const testedPath = (sha: string) => path.join(testedDir, `${sha}.js`)

    /** Writes `bytes` to a fresh `temp` (never an existing file or link), syncs it, and returns the SHA-256 read back. */
    const writeSynced = (temp: string, bytes: Uint8Array, mode: number) =>
      Effect.scoped(Effect.gen(function*() {
        const handle = yield* fs.open(temp, { flag: "wx", mode })
        yield* handle.writeAll(bytes)
        yield* handle.sync
      })).pipe(
        Effect.zipRight(fs.readFile(temp)),
        Effect.flatMap(sha256),
        Effect.mapError(io(temp))
      )

    /** Puts `bytes` at `target` atomically: a temporary name beside it, synced, hash-checked, then renamed. */
    const installExact = (target: string, bytes: Uint8Array, sha: string, mode: number) =>
      Effect.gen(function*() {
        const temp = path.join(path.dirname(target), `.${path.basename(target)}.${crypto.randomUUID()}.tmp`)
        // On a failure the temporary file goes too; the error reported is the one that stopped the write.
        const written = yield* writeSynced(temp, bytes, mode).pipe(Effect.tapError(() => fs.remove(temp, { force: true }).pipe(Effect.ignore)))
        if (written !== sha) {
          yield* fs.remove(temp, { force: true }).pipe(Effect.mapError(io(temp)))
          return false
        }
        yield* fs.chmod(temp, mode).pipe(Effect.mapError(io(temp)))
        yield* fs.rename(temp, target).pipe(Effect.mapError(io(target)))
        return true
      })

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
            return yield* new ApprovalCorrupt({ path: file, reason: formatParseError(decoded.left) })
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

    /** The SHA-256 of the file at `target`, or null when there is none. */
    const hashOf = (target: string) =>
      fs.readFile(target).pipe(
        Effect.flatMap(sha256),
        Effect.map((sha): string | null => sha),
        Effect.catchIf(isNotFound, () => Effect.succeed(null)),
        Effect.mapError(io(target))
      )

    /** Keeps one tested file under its hash; a copy already there with that hash is left as it is, a damaged one replaced. */
    const keepOne = (text: string) =>
      Effect.gen(function*() {
        const bytes = new TextEncoder().encode(text)
        const sha = yield* sha256(bytes)
        const target = testedPath(sha)
        if ((yield* hashOf(target)) === sha) return sha
        yield* fs.makeDirectory(testedDir, { recursive: true }).pipe(Effect.mapError(io(testedDir)))
        if (!(yield* installExact(target, bytes, sha, 0o444))) {
          return yield* new ApprovalIoError({ path: target, reason: "what was written does not read back with the same SHA-256" })
        }
        return sha
      })

    const keepTested = (sources: TestedSources) =>
      Effect.map(Effect.all([keepOne(sources.code), keepOne(sources.tests)]), ([code_sha256, test_sha256]) => ({ code_sha256, test_sha256 }))

    /** One file of the tested copy, checked against its hash; the failure is the reason, in words. */
    const readTestedFile = (sha: string) =>
      Effect.gen(function*() {
        const file = testedPath(sha)
        const bytes = yield* fs.readFile(file).pipe(
          Effect.mapError((error) =>
            isNotFound(error)
              ? `its tested copy ${file} is missing; rerun its tests (\`luallm-agent approvals retest ID\`)`
              : `its tested copy ${file} cannot be read (${error.message})`
          )
        )
        if ((yield* sha256(bytes)) !== sha) {
          return yield* Effect.fail(`its tested copy ${file} no longer has the SHA-256 recorded when its tests ran (${sha}): it was changed since`)
        }
        return { file, bytes }
      })

    const readTested = (record: Pick<ApprovalRecord, "code_sha256" | "test_sha256">) =>
      Effect.all([readTestedFile(record.code_sha256), readTestedFile(record.test_sha256)])

    // ignoreBOM: a leading U+FEFF that ran is shown, not dropped.
    const decodeUtf8 = (bytes: Uint8Array) => new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes)

    const refuse = (record: ApprovalRecord) => (reason: string) => new PromotionRefused({ id: record.id, skill: record.skill_name, reason })

    const tested = (files: TestedFiles) =>
      readTested(files).pipe(
        Effect.mapError((reason) => new ApprovalCorrupt({ path: testedDir, reason })),
        Effect.map(([code, tests]): TestedCopy => ({
          code: decodeUtf8(code.bytes),
          tests: decodeUtf8(tests.bytes),
          codePath: code.file,
          testPath: tests.file
        }))
      )

    const create = (input: NewApproval) =>
      Effect.gen(function*() {
        const record: ApprovalRecord = {
          id: crypto.randomUUID(),
          skill_name: input.skillName,
          version: input.metadata.version,
          task_id: input.taskId,
          created_at: yield* now,
          code_path: input.codePath,
          test_path: input.testPath,
          code_sha256: input.tested.code_sha256,
          test_sha256: input.tested.test_sha256,
          metadata: input.metadata,
          test_report: input.testReport,
          status: "pending",
          resolved_at: null,
          reason: null,
          promoted_to: null
        }
        yield* readTested(record).pipe(Effect.mapError(refuse(record)))
        yield* write(record)
        yield* audit.log("approval.create", { id: record.id, skill: record.skill_name, tests: input.testReport.passed }).pipe(inTask(record.task_id))
        return record
      })

    /** SHA-256 of the live draft's files in skills.agent_dir. */
    const draftHashes = (record: ApprovalRecord) =>
      Effect.all([Effect.flatMap(readText(record.code_path), sha256), Effect.flatMap(readText(record.test_path), sha256)])

    /**
     * The header of tested code, which is what a reviewer must be shown: the draft may have been
     * edited or drafted again since the record was filed.
     */
    const headerOf = (record: ApprovalRecord, code: string) =>
      Effect.flatMap(
        Either.mapLeft(parseMetadata(code, record.code_path), (problem) => refuse(record)(`the tested code's header cannot be read (${problem.reason})`)),
        (metadata) =>
          metadata.name === record.skill_name
            ? Effect.succeed(metadata)
            : Effect.fail(refuse(record)(`the tested code's header names the skill ${metadata.name}, not ${record.skill_name}`))
      )

    const resolve = (id: string, approved: boolean, reason?: string) =>
      Effect.gen(function*() {
        const record = yield* get(id)
        if (record.status !== "pending") return yield* new ApprovalAlreadyResolved({ id: record.id, status: record.status, reason: record.reason })
        if (approved) {
          const [code] = yield* readTested(record).pipe(Effect.mapError(refuse(record)))
          // What the human read (the summary) must be the header of what would be installed.
          const header = yield* headerOf(record, decodeUtf8(code.bytes))
          if (!sameMetadata(header, record.metadata) || header.version !== record.version) {
            return yield* refuse(record)(
              `the summary it was filed with is not the header of its tested copy (which declares paths ${header.paths.join(", ") || "(none)"}); rerun its tests (the [R] key in \`luallm-agent resume\`) to review what would be installed`
            )
          }
          // The tested copy is what gets promoted; a draft edited since may mean the human wants the edit.
          const [codeHash, testHash] = yield* draftHashes(record)
          if (codeHash !== record.code_sha256 || testHash !== record.test_sha256) {
            return yield* refuse(record)(
              `the draft changed after its tests ran; rerun them with \`luallm-agent approvals retest ${record.id.slice(0, 8)}\` before approving`
            )
          }
          if (!allPassed(record.test_report)) {
            return yield* refuse(record)(`its last test run did not pass (${record.test_report.passed}/${record.test_report.total})`)
          }
        }
        const resolved: ApprovalRecord = {
          ...record,
          status: approved ? "approved" : "rejected",
          resolved_at: yield* now,
          reason: reason ?? null
        }
        yield* write(resolved)
        // Logged as the task's, wherever the decision is made (a terminal, `approvals approve`, an app).
        yield* audit.log("approval.resolve", { id: record.id, skill: record.skill_name, approved, reason: reason ?? null }).pipe(
          inTask(record.task_id)
        )
        return resolved
      })

    const updateTests = (id: string, report: typeof TestReport.Type, sources: TestedSources) =>
      Effect.gen(function*() {
        const record = yield* get(id)
        if (record.status !== "pending") return yield* new ApprovalAlreadyResolved({ id: record.id, status: record.status, reason: record.reason })
        const metadata = yield* headerOf(record, sources.code)
        const kept = yield* keepTested(sources)
        return yield* write({ ...record, version: metadata.version, metadata, test_report: report, ...kept })
      })

    const targetsFor = (record: ApprovalRecord) => ({
      code: path.join(allowedDir, `${record.skill_name}.js`),
      test: path.join(allowedDir, `${record.skill_name}.test.js`)
    })

    const checkPromotion = (record: ApprovalRecord) =>
      Effect.gen(function*() {
        const targets = targetsFor(record)
        return (yield* hashOf(targets.code)) === record.code_sha256 && (yield* hashOf(targets.test)) === record.test_sha256
      })

    const promote = (id: string) =>
      Effect.gen(function*() {
        const record = yield* get(id)
        if (record.status !== "approved") return yield* refuse(record)(`it is ${record.status}; only a draft a human approved is promoted`)
        const [code, tests] = yield* readTested(record).pipe(Effect.mapError(refuse(record)))
        const targets = targetsFor(record)
        yield* fs.makeDirectory(allowedDir, { recursive: true }).pipe(Effect.mapError(io(allowedDir)))
        // Tests first: the code file's arrival is what marks the skill as installed.
        for (const [bytes, sha, target] of [[tests.bytes, record.test_sha256, targets.test], [code.bytes, record.code_sha256, targets.code]] as const) {
          if (!(yield* installExact(target, bytes, sha, 0o644))) {
            return yield* refuse(record)(`what was written to ${target} did not read back with the approved SHA-256`)
          }
        }
        const promoted = yield* write({ ...record, promoted_to: targets.code })
        yield* audit.log("approval.promote", { id: record.id, skill: record.skill_name, path: targets.code }).pipe(inTask(record.task_id))
        return promoted
      })

    const promotionCommands = (record: ApprovalRecord) => {
      const targets = targetsFor(record)
      const code = shellQuote(targets.code)
      const test = shellQuote(targets.test)
      return [
        `mkdir -p ${shellQuote(allowedDir)}`,
        `cp ${shellQuote(testedPath(record.code_sha256))} ${code}`,
        `cp ${shellQuote(testedPath(record.test_sha256))} ${test}`,
        `chmod 644 ${code} ${test}`,
        `printf '%s  %s\\n' ${record.code_sha256} ${code} ${record.test_sha256} ${test} | sha256sum -c`
      ]
    }

    return Approvals.of({
      keepTested,
      create,
      listPending: Effect.map(readAll, (all) => all.filter((record) => record.status === "pending")),
      get,
      tested,
      resolve,
      updateTests,
      promote,
      checkPromotion,
      promotionCommands
    })
  })
)
