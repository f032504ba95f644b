/**
 * The audit log: append-only, one `{ts, event, task_id, data}` entry per event. The file store
 * keeps it as JSONL (one append per line, no read-modify-write) rotated by size:
 * `audit.jsonl` → `audit.jsonl.1` (newest) … `audit.jsonl.<max_files>` (oldest, then deleted);
 * the Postgres store keeps it in a table (`src/layers/store/postgres.ts`).
 *
 * Every line is stamped with the task of the fiber that logs it (`CurrentTaskId`, set with
 * `inTask`), so tasks running side by side in one process each get their own lines.
 * Normal operation never reads the log; `AuditReader` serves the `log` and `stats` commands.
 */
import { FileSystem, type Path } from "@effect/platform"
import { Clock, Context, Data, Effect, type Fiber, FiberRef, Layer, Option, Queue, Ref, Schema } from "effect"
import * as NFS from "node:fs"
import { dirname } from "node:path"
import { fromJsonText } from "../core/jsonText.ts"
import { AppConfig } from "./Config.ts"
import { StoreBackend, StoreBackendLive, type StoreUnavailable } from "./store/backend.ts"
import { close, fdatasync } from "./store/fileIo.ts"

export const AuditEntry = Schema.Struct({
  ts: Schema.String,
  event: Schema.String,
  task_id: Schema.NullOr(Schema.String),
  data: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type AuditEntry = typeof AuditEntry.Type

export type AuditData = Readonly<Record<string, unknown>>

/** An event to log, before it is stamped with the time and the task. */
export interface AuditEvent {
  readonly event: string
  readonly data: AuditData
}

/** Where a write error happened: a file path, or a database URL (password hidden). */
const isDatabase = (path: string): boolean => /^postgres(ql)?:\/\//.test(path)

export class AuditWriteError extends Data.TaggedError("AuditWriteError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return isDatabase(this.path)
      ? `Could not write the audit log in ${this.path}: ${this.reason}. Check that the database server is reachable and has space (the \`store\` setting names it).`
      : `Could not write the audit log ${this.path}: ${this.reason}. Check that the disk has space and the directory is writable (audit.path in the config).`
  }
}

export class AuditReadError extends Data.TaggedError("AuditReadError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return isDatabase(this.path)
      ? `Could not read the audit log in ${this.path}: ${this.reason}. Check that the database server is reachable (the \`store\` setting names it).`
      : `Could not read the audit log ${this.path}: ${this.reason}. Check that the file is readable by this user, or point audit.path in the config at the right file.`
  }
}

export interface AuditShape {
  /**
   * Logs one line, stamped with the current fiber's task. `data` must be JSON-serialisable;
   * values that are not become strings. The file store writes the line at once (into the page
   * cache; it is fsynced a moment later with the other lines of that moment); a write error is
   * reported by the next `flush` or `sync`, or else by the next `log`.
   */
  readonly log: (event: string, data?: AuditData) => Effect.Effect<void, AuditWriteError>
  /** Fails when a line logged so far could not be written; once it succeeds, every line logged so far is in the file (handed to the kernel). `State.save` runs it before it saves. */
  readonly flush: Effect.Effect<void, AuditWriteError>
  /** Makes every line logged so far durable: written, then one fsync for all of them (the file store also does so on its own when the lines pause). */
  readonly sync: Effect.Effect<void, AuditWriteError>
}

export class Audit extends Context.Tag("Audit")<Audit, AuditShape>() {}

/** The task the current fiber works for (`null` outside a task): stamped on every line it logs. */
export const CurrentTaskId: FiberRef.FiberRef<string | null> = FiberRef.unsafeMake<string | null>(null)

/** Runs `effect` (and the fibers it forks) as work for `taskId`: its audit lines name that task. */
export const inTask = (taskId: string | null) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, CurrentTaskId, taskId)

/** Serialises one line. Circular or exotic data must never lose the event, so it degrades to strings. */
export const formatAuditLine = (entry: AuditEntry): string => {
  try {
    return `${JSON.stringify(entry)}\n`
  } catch (error) {
    return `${JSON.stringify({ ...entry, data: unserialisable(error) })}\n`
  }
}

/** What stands for data JSON cannot hold (a cycle, a BigInt): why, so the event is never lost. */
const unserialisable = (error: unknown): AuditData => ({ unserialisable: error instanceof Error ? error.message : String(error) })

/** An entry's `data` as JSON text, as `formatAuditLine` writes it (for a store that keeps it in a column). */
export const auditDataJson = (data: AuditData): string => {
  try {
    return JSON.stringify(data)
  } catch (error) {
    return JSON.stringify(unserialisable(error))
  }
}

/** The entry for `event` now, stamped with the fiber's clock and task: what `makeEntry` does, within a step that has the fiber. */
const entryIn = (fiber: Fiber.RuntimeFiber<unknown, unknown>, event: string, data: AuditData | undefined): AuditEntry => ({
  ts: new Date(Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()).toISOString(),
  event,
  task_id: fiber.getFiberRef(CurrentTaskId),
  data: data ?? {}
})

/** The entry for `event`, stamped with the clock's time and the current fiber's task. */
export const makeEntry = (event: string, data: AuditData | undefined): Effect.Effect<AuditEntry> =>
  Effect.withFiberRuntime((fiber) => Effect.succeed(entryIn(fiber, event, data)))

/** The rotated file names, newest first: `audit.jsonl.1`, `audit.jsonl.2`, … */
export const rotatedPaths = (path: string, maxFiles: number): Array<string> =>
  Array.from({ length: maxFiles }, (_, i) => `${path}.${i + 1}`)

export interface FileAuditOptions {
  readonly path: string
  readonly maxSizeBytes: number
  readonly maxFiles: number
}

/** How long after lines are written the file audit fsyncs them (one fsync for every line written meanwhile). */
const idleSync = (process.env.IDLESYNC ?? "100 millis") as "100 millis"

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Audit to a file, with rotation by size. `log` appends its line at once, into the page cache:
 * one write, no trip through another fiber or the thread pool (`store/fileIo.ts` says why), so
 * `State.save`, which runs `flush` before it writes its record, finds its lines already written:
 * the log is never behind the saved tasks, also when the process is killed. What waits for the
 * disk does not block: the lines written in a moment are fsynced together `idleSync` later, in
 * the thread pool (a group commit), and `sync` (and closing the log) fsyncs at once. The file is
 * opened at the first line (commands that only read never create it) and stays open. A write
 * cut short (a full disk) is truncated away, so the next line starts whole; its error goes to the
 * next `flush`, `sync` or `log`.
 */
export const makeFileAudit = (options: FileAuditOptions) =>
  Effect.gen(function*() {
    const fail = (error: unknown) => new AuditWriteError({ path: options.path, reason: reasonOf(error) })
    // The writer's state. Each change to it happens within one synchronous step (an
    // `Effect.sync` or `Effect.suspend` body), so fibers never see it half changed.
    let size = yield* Effect.sync(() => {
      try {
        return NFS.statSync(options.path, { throwIfNoEntry: false })?.size ?? 0
      } catch {
        return 0 // not reachable (a path through a file): the first write says why
      }
    })
    let fd: number | undefined
    /** A write error not yet reported to anyone. */
    let failure: AuditWriteError | undefined
    /** Lines written to `fd` since its last fsync. */
    let unsynced = false
    /** Descriptors of rotated files, fsynced and closed by the next fsync (one may be running on them). */
    let retired: Array<number> = []
    let fsyncDue = false

    const takeFailure = Effect.suspend(() => {
      const error = failure
      failure = undefined
      return error === undefined ? Effect.void : Effect.fail(error)
    })

    const openLog = (): number => {
      if (fd !== undefined) return fd
      NFS.mkdirSync(dirname(options.path), { recursive: true })
      fd = NFS.openSync(options.path, "a")
      return fd
    }

    const rotate = () => {
      if (fd !== undefined) retired.push(fd)
      fd = undefined
      const rotated = rotatedPaths(options.path, options.maxFiles)
      const oldest = rotated.at(-1)
      if (oldest === undefined) {
        // max_files 0: keep no history, start the file again.
        NFS.rmSync(options.path, { force: true })
      } else {
        NFS.rmSync(oldest, { force: true })
        for (let i = rotated.length - 1; i > 0; i--) {
          const from = rotated[i - 1]
          const to = rotated[i]
          if (from !== undefined && to !== undefined && NFS.existsSync(from)) NFS.renameSync(from, to)
        }
        NFS.renameSync(options.path, rotated[0] ?? oldest)
      }
      size = 0
    }

    /** Appends one line in one write, starting a new file first where the size limit says so; a write cut short is truncated away. */
    const append = (line: Uint8Array) => {
      if (size > 0 && size + line.length > options.maxSizeBytes) rotate()
      const handle = openLog()
      let written = 0
      try {
        while (written < line.length) written += NFS.writeSync(handle, line, written, line.length - written)
      } catch (error) {
        if (written > 0) {
          try {
            NFS.ftruncateSync(handle, size)
          } catch {
            // The write's own error is what the caller hears; a line left torn is reported by
            // the reader as damaged, never taken for a whole one.
          }
        }
        throw error
      }
      size += line.length
      unsynced = true
    }

    /** After lines were written, one fsync `idleSync` later covers them all, off every caller's path. */
    const fsyncWake = yield* Queue.sliding<void>(1)
    const remindToFsync = Effect.suspend(() => {
      if ((!unsynced && retired.length === 0) || fsyncDue) return Effect.void
      fsyncDue = true
      return Queue.offer(fsyncWake, undefined)
    })

    /** One fsync at a time: every line written before it started is durable when it ends. */
    const syncing = yield* Effect.makeSemaphore(1)
    const fsyncWritten = syncing.withPermits(1)(Effect.suspend(() => {
      const closing = retired
      const targets = unsynced && fd !== undefined ? [...closing, fd] : closing
      retired = []
      unsynced = false
      if (targets.length === 0) return Effect.void
      return Effect.forEach(targets, fdatasync, { discard: true }).pipe(
        Effect.tapError(() => Effect.sync(() => (unsynced = true))),
        Effect.ensuring(Effect.forEach(closing, (retiredFd) =>
          Effect.catchAll(close(retiredFd), (error) => Effect.sync(() => (failure = fail(error)))), { discard: true })),
        Effect.mapError(fail)
      )
    }))

    // Runs after the fsync fiber below was interrupted (finalizers run last-added first): what
    // was written is made durable. Best effort: a failure has no one left to hear it.
    yield* Effect.addFinalizer(() =>
      Effect.ignore(fsyncWritten).pipe(
        Effect.zipRight(Effect.suspend(() => {
          const open = fd
          fd = undefined
          return open === undefined ? Effect.void : Effect.ignore(close(open))
        }))
      )
    )
    yield* Effect.forkScoped(Effect.forever(
      Queue.take(fsyncWake).pipe(
        Effect.zipRight(Effect.sleep(idleSync)),
        Effect.zipRight(Effect.sync(() => (fsyncDue = false))),
        Effect.zipRight(Effect.catchAll(fsyncWritten, (error) => Effect.sync(() => (failure = error))))
      )
    ))

    const flush = Effect.zipRight(remindToFsync, takeFailure)

    return Audit.of({
      // One step: a save's lines are on its path.
      log: (event, data) =>
        Effect.withFiberRuntime((fiber) => {
          // An earlier write error is reported here, to the next line, when no flush took it.
          const error = failure
          failure = undefined
          if (error !== undefined) return Effect.fail(error)
          try {
            append(Buffer.from(formatAuditLine(entryIn(fiber, event, data))))
          } catch (writeError) {
            // Kept for the next `flush` (a save's, which then saves nothing) or the next line.
            failure = fail(writeError)
          }
          return remindToFsync
        }),
      flush,
      sync: Effect.zipRight(flush, fsyncWritten)
    })
  })

/** A line of the log that is not a valid entry: reported, never silently dropped. */
export interface AuditBadLine {
  readonly file: string
  readonly line: number
  readonly text: string
}

export interface AuditRead {
  readonly entries: ReadonlyArray<AuditEntry>
  readonly bad: ReadonlyArray<AuditBadLine>
}

export interface AuditReaderShape {
  /** The log, oldest first; with `taskPrefix`, only the lines of tasks whose id starts with it. */
  readonly read: (filter?: { readonly taskPrefix?: string }) => Effect.Effect<AuditRead, AuditReadError>
}

/** Reads the audit log back: for the `log` and `stats` commands only. */
export class AuditReader extends Context.Tag("AuditReader")<AuditReader, AuditReaderShape>() {}

const decodeEntry = Schema.decodeUnknownOption(fromJsonText(AuditEntry))

/**
 * Reads the log file and its rotated files, oldest first. For the `log` and `stats` commands only.
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
    return { entries, bad } satisfies AuditRead
  })

/** Keeps the lines of tasks whose id starts with `prefix` (all lines without one). */
export const forTaskPrefix = (read: AuditRead, prefix: string | undefined): AuditRead =>
  prefix === undefined ? read : { ...read, entries: read.entries.filter((entry) => entry.task_id?.startsWith(prefix) === true) }

/** The live layer: the file (and its limits) from the config, or the Postgres store's table when `store` is a URL. */
export const AuditLive: Layer.Layer<Audit, StoreUnavailable, AppConfig | FileSystem.FileSystem | Path.Path> = Layer.scoped(
  Audit,
  Effect.gen(function*() {
    const backend = yield* StoreBackend
    if (backend._tag === "Postgres") return backend.store.audit
    const { config } = yield* AppConfig
    return yield* makeFileAudit({
      path: config.audit.path,
      maxSizeBytes: config.audit.max_size_mb * 1024 * 1024,
      maxFiles: config.audit.max_files
    })
  })
).pipe(Layer.provide(StoreBackendLive))

/** The live reader: the configured file and its rotated files, or the Postgres store's table. */
export const AuditReaderLive: Layer.Layer<AuditReader, StoreUnavailable, AppConfig | FileSystem.FileSystem | Path.Path> = Layer.effect(
  AuditReader,
  Effect.gen(function*() {
    const backend = yield* StoreBackend
    if (backend._tag === "Postgres") return backend.store.reader
    const { config } = yield* AppConfig
    const fs = yield* FileSystem.FileSystem
    return AuditReader.of({
      read: (filter) =>
        readAuditLog({ path: config.audit.path, maxFiles: config.audit.max_files }).pipe(
          Effect.map((read) => forTaskPrefix(read, filter?.taskPrefix)),
          Effect.provideService(FileSystem.FileSystem, fs)
        )
    })
  })
).pipe(Layer.provide(StoreBackendLive))

/** What the in-memory audit has recorded, for tests. */
export class AuditMemory extends Context.Tag("AuditMemory")<AuditMemory, {
  readonly entries: Effect.Effect<ReadonlyArray<AuditEntry>>
}>() {}

/** An audit that keeps its lines in memory (as the decoded JSON a file would hold), readable with `AuditReader` too. */
export const AuditTest: Layer.Layer<Audit | AuditMemory | AuditReader> = Layer.effectContext(
  Effect.gen(function*() {
    const entries = yield* Ref.make<ReadonlyArray<AuditEntry>>([])
    const audit = Audit.of({
      log: (event, data) =>
        Effect.gen(function*() {
          const entry = yield* makeEntry(event, data)
          const roundTripped = Schema.decodeUnknownSync(fromJsonText(AuditEntry))(formatAuditLine(entry))
          yield* Ref.update(entries, (all) => [...all, roundTripped])
        }),
      flush: Effect.void,
      sync: Effect.void
    })
    const reader = AuditReader.of({
      read: (filter) => Effect.map(Ref.get(entries), (all) => forTaskPrefix({ entries: all, bad: [] }, filter?.taskPrefix))
    })
    return Context.make(Audit, audit).pipe(Context.add(AuditMemory, { entries: Ref.get(entries) }), Context.add(AuditReader, reader))
  })
)
