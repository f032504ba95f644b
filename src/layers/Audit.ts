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
import { FileSystem, Path } from "@effect/platform"
import { Clock, Context, Data, Deferred, Effect, Exit, FiberRef, Layer, Option, Queue, Ref, Schema, Scope } from "effect"
import { fromJsonText } from "../core/jsonText.ts"
import { AppConfig } from "./Config.ts"
import { StoreBackend, StoreBackendLive, type StoreUnavailable } from "./store/backend.ts"

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
   * values that are not become strings. The file store queues the line for its writer, which
   * writes what is queued in one go (a group commit), and fails here with a write error the
   * writer met since it was last reported.
   */
  readonly log: (event: string, data?: AuditData) => Effect.Effect<void, AuditWriteError>
  /** Waits until every line logged so far is written (in the file, handed to the kernel). `State.save` runs it before it saves. */
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
    const reason = error instanceof Error ? error.message : String(error)
    return `${JSON.stringify({ ...entry, data: { unserialisable: reason } })}\n`
  }
}

/** The entry for `event`, stamped with the clock's time and the current fiber's task. */
export const makeEntry = (event: string, data: AuditData | undefined) =>
  Effect.zipWith(Clock.currentTimeMillis, FiberRef.get(CurrentTaskId), (millis, taskId): AuditEntry => ({
    ts: new Date(millis).toISOString(),
    event,
    task_id: taskId,
    data: data ?? {}
  }))

/** The rotated file names, newest first: `audit.jsonl.1`, `audit.jsonl.2`, … */
export const rotatedPaths = (path: string, maxFiles: number): Array<string> =>
  Array.from({ length: maxFiles }, (_, i) => `${path}.${i + 1}`)

export interface FileAuditOptions {
  readonly path: string
  readonly maxSizeBytes: number
  readonly maxFiles: number
}

/** How long after writing lines the file audit's writer fsyncs them (all that were written meanwhile at once). */
const idleSync = "100 millis"

/** What the file audit's writer is asked to do, in order. */
type AuditJob =
  | { readonly _tag: "Line"; readonly bytes: Uint8Array }
  | { readonly _tag: "Flush"; readonly durable: boolean; readonly done: Deferred.Deferred<void, AuditWriteError> }
  /** The writer's own reminder to fsync what it wrote a moment ago. */
  | { readonly _tag: "Fsync" }

/**
 * Audit to a file, with rotation by size. One writer fiber owns the file: `log` queues a line
 * and returns, the writer appends everything queued in one `write` (a group commit), so a
 * task's own progress never waits for the disk. The file is opened at the first line (commands
 * that only read never create it) and stays open. `flush` and `sync` wait for the lines queued
 * before them; `State.save` flushes before it saves, so the log is never behind the saved tasks.
 * A write cut short (a full disk) is truncated away, so the next line starts whole; its error
 * goes to the next `flush`, `sync` or `log`. Lines still queued when a process is killed are
 * lost; lines that a saved transition follows never are. The writer fsyncs what it wrote a
 * moment later (one fsync for every line of that moment), and when the log is closed.
 */
export const makeFileAudit = (options: FileAuditOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const fail = (error: { readonly message: string }) => new AuditWriteError({ path: options.path, reason: error.message })
    const initialSize = yield* fs.stat(options.path).pipe(
      Effect.map((info) => Number(info.size)),
      Effect.orElseSucceed(() => 0)
    )
    const jobs = yield* Queue.unbounded<AuditJob>()
    /** A write error not yet reported to anyone. */
    const failure = yield* Ref.make(Option.none<AuditWriteError>())
    const takeFailure = Effect.flatMap(Ref.getAndSet(failure, Option.none()), Option.match({
      onNone: () => Effect.void,
      onSome: Effect.fail
    }))

    const scope = yield* Effect.scope
    // The writer's own state: only the writer fiber touches it (and the finalizer, after it stopped).
    let size = initialSize
    let unsynced = false
    let fsyncDue = false
    let open = Option.none<{ readonly file: FileSystem.File; readonly scope: Scope.CloseableScope }>()

    const close = Effect.suspend(() => {
      const current = open
      open = Option.none()
      return Option.match(current, { onNone: () => Effect.void, onSome: (o) => Scope.close(o.scope, Exit.void) })
    })
    const file = Effect.suspend(() =>
      Option.match(open, {
        onSome: (o) => Effect.succeed(o.file),
        onNone: () =>
          Effect.gen(function*() {
            yield* fs.makeDirectory(path.dirname(options.path), { recursive: true })
            const scope = yield* Scope.make()
            const handle = yield* Scope.extend(fs.open(options.path, { flag: "a" }), scope)
            open = Option.some({ file: handle, scope })
            return handle
          })
      })
    )

    const rotate = Effect.gen(function*() {
      yield* close
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
      size = 0
    })

    /** Appends `bytes` (whole lines) in one write; a write cut short is truncated away. */
    const append = (bytes: Uint8Array) =>
      Effect.gen(function*() {
        const before = size
        const handle = yield* file
        yield* handle.writeAll(bytes).pipe(Effect.tapError(() => fs.truncate(options.path, before).pipe(Effect.ignore)))
        size = before + bytes.length
        unsynced = true
      }).pipe(Effect.mapError(fail))

    /** Writes queued lines, one write per group, starting a new file where the size limit says so. */
    const writeLines = (lines: ReadonlyArray<Uint8Array>) =>
      Effect.gen(function*() {
        let group: Array<Uint8Array> = []
        let groupSize = 0
        const writeGroup = Effect.suspend(() => {
          const bytes = new Uint8Array(groupSize)
          let at = 0
          for (const line of group) {
            bytes.set(line, at)
            at += line.length
          }
          group = []
          groupSize = 0
          return bytes.length === 0 ? Effect.void : append(bytes)
        })
        for (const line of lines) {
          if (size + groupSize > 0 && size + groupSize + line.length > options.maxSizeBytes) {
            yield* writeGroup
            if (size > 0) yield* rotate.pipe(Effect.mapError(fail))
          }
          group.push(line)
          groupSize += line.length
        }
        yield* writeGroup
      })

    const fsync = Effect.suspend(() => {
      if (!unsynced) return Effect.void
      return Option.match(open, {
        onNone: () => Effect.void,
        onSome: (o) => Effect.tap(o.file.sync.pipe(Effect.mapError(fail)), () => Effect.sync(() => (unsynced = false)))
      })
    })

    const keepFailure = (error: AuditWriteError) => Ref.set(failure, Option.some(error))

    /**
     * After lines were written, the writer reminds itself to fsync them a moment later: one fsync
     * per `idleSync` for all the lines of that moment (a group commit), off every caller's path.
     */
    const remindToFsync = Effect.suspend(() => {
      if (!unsynced || fsyncDue) return Effect.void
      fsyncDue = true
      return Effect.asVoid(Effect.forkIn(Effect.zipRight(Effect.sleep(idleSync), Queue.offer(jobs, { _tag: "Fsync" })), scope))
    })

    /** One round of the writer: everything queued, in order. */
    const drain = (batch: ReadonlyArray<AuditJob>) =>
      Effect.gen(function*() {
        let lines: Array<Uint8Array> = []
        const writePending = Effect.suspend(() => {
          const pending = lines
          lines = []
          return writeLines(pending).pipe(Effect.catchAll(keepFailure))
        })
        for (const job of batch) {
          if (job._tag === "Line") {
            lines.push(job.bytes)
            continue
          }
          yield* writePending
          if (job._tag === "Fsync") {
            fsyncDue = false
            yield* fsync.pipe(Effect.catchAll(keepFailure))
            continue
          }
          if (job.durable) yield* fsync.pipe(Effect.catchAll(keepFailure))
          yield* Deferred.complete(job.done, takeFailure)
        }
        yield* writePending
        yield* remindToFsync
      })

    // The writer takes what is queued, all of it, each time.
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(
      Effect.zipWith(Queue.take(jobs), Queue.takeAll(jobs), (first, rest) => [first, ...rest]),
      drain
    )))

    const waitFor = (durable: boolean) =>
      Effect.flatMap(Deferred.make<void, AuditWriteError>(), (done) =>
        Effect.zipRight(Queue.offer(jobs, { _tag: "Flush", durable, done }), Deferred.await(done)))

    // Runs before the writer is interrupted (finalizers run last-added first): what is queued is
    // written and made durable. Best effort: a failure here has no one left to report to.
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        waitFor(true).pipe(Effect.timeout("5 seconds"), Effect.ignore),
        Effect.suspend(() => close)
      )
    )

    return Audit.of({
      log: (event, data) =>
        Effect.gen(function*() {
          yield* takeFailure
          const entry = yield* makeEntry(event, data)
          yield* Queue.offer(jobs, { _tag: "Line", bytes: new TextEncoder().encode(formatAuditLine(entry)) })
        }),
      flush: waitFor(false),
      sync: waitFor(true)
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
