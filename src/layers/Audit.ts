/**
 * The audit log: append-only JSONL, one `{ts, event, task_id, data}` object per line,
 * written with one append per line (no read-modify-write) and rotated by size:
 * `audit.jsonl` → `audit.jsonl.1` (newest) … `audit.jsonl.<max_files>` (oldest, then deleted).
 * Normal operation never reads the log; `readAuditLog` serves the `log` and `stats` commands.
 */
import { FileSystem, Path } from "@effect/platform"
import { Clock, Context, Data, Effect, Exit, Layer, Option, Ref, Schema, Scope } from "effect"
import { fromJsonText } from "../core/jsonText.ts"
import { AppConfig } from "./Config.ts"

export const AuditEntry = Schema.Struct({
  ts: Schema.String,
  event: Schema.String,
  task_id: Schema.NullOr(Schema.String),
  data: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type AuditEntry = typeof AuditEntry.Type

export type AuditData = Readonly<Record<string, unknown>>

export class AuditWriteError extends Data.TaggedError("AuditWriteError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Could not write the audit log ${this.path}: ${this.reason}. Check that the disk has space and the directory is writable (audit.path in the config).`
  }
}

export class AuditReadError extends Data.TaggedError("AuditReadError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Could not read the audit log ${this.path}: ${this.reason}. Check that the file is readable by this user, or point audit.path in the config at the right file.`
  }
}

export interface AuditShape {
  /** Appends one line. `data` must be JSON-serialisable; values that are not become strings. */
  readonly log: (event: string, data?: AuditData) => Effect.Effect<void, AuditWriteError>
  /** Sets the task id stamped on every following line (`null` outside a task). */
  readonly setTaskId: (taskId: string | null) => Effect.Effect<void>
}

export class Audit extends Context.Tag("Audit")<Audit, AuditShape>() {}

/** Serialises one line. Circular or exotic data must never lose the event, so it degrades to strings. */
export const formatAuditLine = (entry: AuditEntry): string => {
  try {
    return `${JSON.stringify(entry)}\n`
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    return `${JSON.stringify({ ...entry, data: { unserialisable: reason } })}\n`
  }
}

const makeEntry = (event: string, taskId: string | null, data: AuditData | undefined) =>
  Effect.map(Clock.currentTimeMillis, (millis): AuditEntry => ({
    ts: new Date(millis).toISOString(),
    event,
    task_id: taskId,
    data: data ?? {}
  }))

/** The rotated file names, newest first: `audit.jsonl.1`, `audit.jsonl.2`, … */
export const rotatedPaths = (path: string, maxFiles: number): Array<string> =>
  Array.from({ length: maxFiles }, (_, i) => `${path}.${i + 1}`)

/**
 * Audit to a file, with rotation by size. The file stays open for appending (one `write` per
 * line, no open/close around each), and one semaphore orders appends and rotations. Each line
 * goes to the kernel as it is logged, so a killed process loses none that were logged.
 */
export const makeFileAudit = (options: { readonly path: string; readonly maxSizeBytes: number; readonly maxFiles: number }) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const fail = (error: { readonly message: string }) => new AuditWriteError({ path: options.path, reason: error.message })
    yield* fs.makeDirectory(path.dirname(options.path), { recursive: true }).pipe(Effect.mapError(fail))
    const initialSize = yield* fs.stat(options.path).pipe(
      Effect.map((info) => Number(info.size)),
      Effect.orElseSucceed(() => 0)
    )
    const size = yield* Ref.make(initialSize)
    const taskId = yield* Ref.make<string | null>(null)
    const lock = yield* Effect.makeSemaphore(1)

    /** The log file opened for appending, with the scope that closes it. */
    const openLog = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const file = yield* Scope.extend(fs.open(options.path, { flag: "a" }), scope).pipe(Effect.mapError(fail))
      return { file, scope }
    })
    const log = yield* Ref.make(yield* openLog)
    yield* Effect.addFinalizer(() => Effect.flatMap(Ref.get(log), (open) => Scope.close(open.scope, Exit.void)))

    const rotate = Effect.gen(function*() {
      yield* Scope.close((yield* Ref.get(log)).scope, Exit.void)
      const rotated = rotatedPaths(options.path, options.maxFiles)
      const oldest = rotated.at(-1)
      if (oldest === undefined) {
        // max_files 0: keep no history, start the file again.
        yield* fs.remove(options.path, { force: true })
      } else {
        yield* fs.remove(oldest, { force: true })
        for (let i = rotated.length - 1; i > 0; i--) {
          const from = rotated[i - 1]
          const to = rotated[i]
          if (from !== undefined && to !== undefined && (yield* fs.exists(from))) yield* fs.rename(from, to)
        }
        yield* fs.rename(options.path, rotated[0] ?? oldest)
      }
      yield* Ref.set(log, yield* openLog)
    }).pipe(Effect.mapError(fail))

    const append = (line: string) =>
      Effect.gen(function*() {
        const bytes = new TextEncoder().encode(line)
        if ((yield* Ref.get(size)) > 0 && (yield* Ref.get(size)) + bytes.length > options.maxSizeBytes) {
          yield* rotate
          yield* Ref.set(size, 0)
        }
        const before = yield* Ref.get(size)
        yield* (yield* Ref.get(log)).file.writeAll(bytes).pipe(
          // A full disk can take part of a line; cut it off, so the next line starts on its own.
          // If even that fails, the write's own error is the one worth reporting.
          Effect.tapError(() => fs.truncate(options.path, before).pipe(Effect.ignore)),
          Effect.mapError(fail)
        )
        yield* Ref.set(size, before + bytes.length)
      })

    return Audit.of({
      setTaskId: (id) => Ref.set(taskId, id),
      log: (event, data) =>
        Effect.gen(function*() {
          const entry = yield* makeEntry(event, yield* Ref.get(taskId), data)
          yield* lock.withPermits(1)(append(formatAuditLine(entry)))
        })
    })
  })

/** The live layer: the file and limits come from the config. */
export const AuditLive: Layer.Layer<Audit, AuditWriteError, AppConfig | FileSystem.FileSystem | Path.Path> = Layer.scoped(
  Audit,
  Effect.gen(function*() {
    const { config } = yield* AppConfig
    return yield* makeFileAudit({
      path: config.audit.path,
      maxSizeBytes: config.audit.max_size_mb * 1024 * 1024,
      maxFiles: config.audit.max_files
    })
  })
)

/** What the in-memory audit has recorded, for tests. */
export class AuditMemory extends Context.Tag("AuditMemory")<AuditMemory, {
  readonly entries: Effect.Effect<ReadonlyArray<AuditEntry>>
}>() {}

/** An audit that keeps its lines in memory (as the decoded JSON a file would hold). */
export const AuditTest: Layer.Layer<Audit | AuditMemory> = Layer.effectContext(
  Effect.gen(function*() {
    const entries = yield* Ref.make<ReadonlyArray<AuditEntry>>([])
    const taskId = yield* Ref.make<string | null>(null)
    const audit = Audit.of({
      setTaskId: (id) => Ref.set(taskId, id),
      log: (event, data) =>
        Effect.gen(function*() {
          const entry = yield* makeEntry(event, yield* Ref.get(taskId), data)
          const roundTripped = Schema.decodeUnknownSync(AuditEntry)(JSON.parse(formatAuditLine(entry)))
          yield* Ref.update(entries, (all) => [...all, roundTripped])
        })
    })
    return Context.make(Audit, audit).pipe(Context.add(AuditMemory, { entries: Ref.get(entries) }))
  })
)

/** A line of the log that is not a valid entry: reported, never silently dropped. */
export interface AuditBadLine {
  readonly file: string
  readonly line: number
  readonly text: string
}

const decodeEntry = Schema.decodeUnknownOption(fromJsonText(AuditEntry))

/**
 * Reads the log and its rotated files, oldest first. For the `log` and `stats` commands only.
 */
export const readAuditLog = (options: { readonly path: string; readonly maxFiles: number }) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const files = [...rotatedPaths(options.path, options.maxFiles).reverse(), options.path]
    const entries: Array<AuditEntry> = []
    const bad: Array<AuditBadLine> = []
    for (const file of files) {
      if (!(yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false)))) continue
      const text = yield* fs.readFileString(file).pipe(
        Effect.mapError((error) => new AuditReadError({ path: file, reason: error.message }))
      )
      text.split("\n").forEach((line, index) => {
        if (line.trim() === "") return
        Option.match(decodeEntry(line), {
          onNone: () => bad.push({ file, line: index + 1, text: line.slice(0, 200) }),
          onSome: (entry) => entries.push(entry)
        })
      })
    }
    return { entries, bad }
  })
