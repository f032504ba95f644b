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
import { Clock, Context, Data, Effect, Exit, FiberRef, Layer, Option, Ref, Schema, Scope } from "effect"
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
  /** Appends one line, stamped with the current fiber's task. `data` must be JSON-serialisable; values that are not become strings. */
  readonly log: (event: string, data?: AuditData) => Effect.Effect<void, AuditWriteError>
  /**
   * Makes every line logged so far durable: one fsync for all of them (a group commit), which
   * `Agent` runs whenever a task stops (finished or paused).
   */
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

/**
 * Audit to a file, with rotation by size. The file is opened for appending at the first line
 * (so commands that only read never create it) and stays open: one `write` per line, no
 * open/close around each; one semaphore orders appends, rotations and syncs. Each line goes to
 * the kernel as it is logged, so a killed process loses none that were logged; `sync` (one
 * fsync, skipped when nothing was written since the last) makes them durable.
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
    const size = yield* Ref.make(initialSize)
    const lock = yield* Effect.makeSemaphore(1)
    /** Lines written since the last fsync. */
    const unsynced = yield* Ref.make(false)

    /** The log file opened for appending, with the scope that closes it. */
    const openLog = Effect.gen(function*() {
      yield* fs.makeDirectory(path.dirname(options.path), { recursive: true })
      const scope = yield* Scope.make()
      const file = yield* Scope.extend(fs.open(options.path, { flag: "a" }), scope)
      return { file, scope }
    }).pipe(Effect.mapError(fail))
    const log = yield* Ref.make(Option.none<Effect.Effect.Success<typeof openLog>>())
    const close = Effect.flatMap(Ref.getAndSet(log, Option.none()), Option.match({
      onNone: () => Effect.void,
      onSome: (open) => Scope.close(open.scope, Exit.void)
    }))
    yield* Effect.addFinalizer(() => close)
    const current = Effect.flatMap(Ref.get(log), Option.match({
      onSome: (open) => Effect.succeed(open.file),
      onNone: () => Effect.tap(openLog, (open) => Ref.set(log, Option.some(open))).pipe(Effect.map((open) => open.file))
    }))

    const syncNow = Effect.gen(function*() {
      if (!(yield* Ref.getAndSet(unsynced, false))) return
      const open = yield* Ref.get(log)
      if (Option.isSome(open)) yield* open.value.file.sync.pipe(Effect.mapError(fail), Effect.tapError(() => Ref.set(unsynced, true)))
    })

    const rotate = Effect.gen(function*() {
      yield* syncNow
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
    }).pipe(Effect.mapError(fail))

    const append = (line: string) =>
      Effect.gen(function*() {
        const bytes = new TextEncoder().encode(line)
        if ((yield* Ref.get(size)) > 0 && (yield* Ref.get(size)) + bytes.length > options.maxSizeBytes) {
          yield* rotate
          yield* Ref.set(size, 0)
        }
        const before = yield* Ref.get(size)
        const file = yield* current
        yield* file.writeAll(bytes).pipe(
          // A full disk can take part of a line; cut it off, so the next line starts on its own.
          // If even that fails, the write's own error is the one worth reporting.
          Effect.tapError(() => fs.truncate(options.path, before).pipe(Effect.ignore)),
          Effect.mapError(fail)
        )
        yield* Ref.set(size, before + bytes.length)
        yield* Ref.set(unsynced, true)
      })

    return Audit.of({
      log: (event, data) => Effect.flatMap(makeEntry(event, data), (entry) => lock.withPermits(1)(append(formatAuditLine(entry)))),
      sync: lock.withPermits(1)(syncNow)
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

const decodeEntry = Schema.decodeUnknownOption(Schema.parseJson(AuditEntry))

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
          const roundTripped = Schema.decodeUnknownSync(AuditEntry)(JSON.parse(formatAuditLine(entry)))
          yield* Ref.update(entries, (all) => [...all, roundTripped])
        }),
      sync: Effect.void
    })
    const reader = AuditReader.of({
      read: (filter) => Effect.map(Ref.get(entries), (all) => forTaskPrefix({ entries: all, bad: [] }, filter?.taskPrefix))
    })
    return Context.make(Audit, audit).pipe(Context.add(AuditMemory, { entries: Ref.get(entries) }), Context.add(AuditReader, reader))
  })
)
