/**
 * The file store: one journal per task, `state_dir/tasks/<id>.jsonl`, and one lock file per
 * task, `state_dir/tasks/<id>.lock` (see `fileLock.ts`).
 *
 * A transition is one line appended to the task's journal, `{"seq":N,"task":{…}}`, through a
 * descriptor kept open while the task is driven and opened with `O_DSYNC`: one write, which
 * returns once the record is on the disk (`fileIo.ts`). The audit lines logged so far, the
 * transition's own among them, are written first (`Audit.flush`, write-ahead, into the page
 * cache), so the log is never behind the saved task, also when the process is killed; the audit
 * log is not fsynced per transition (that doubled the cost of one): it fsyncs the lines of a
 * moment together a moment later, off the task's path, and when it is closed (see `Audit`).
 * Why it is crash safe: a record is whole once its line ends; loading takes the last line that ends, so a record cut short (a full disk, a power loss) leaves the previous
 * one as the task, and the next open cuts the unfinished line away. When a journal grows past
 * `compactBytes` it is rewritten to its last record (tmp file, fsync, rename), so it stays small.
 *
 * A first-wave `current_task.json` is moved into a journal when the store starts; if that cannot
 * be done (a read-only disk), it is still read, so a user mid-task is never stranded.
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, FiberRef, Option, Ref, Schema } from "effect"
import { fromJsonText } from "../../core/jsonText.ts"
import { formatParseError } from "../../core/schemaIssues.ts"
import { Task, TaskSummary } from "../../core/task.ts"
import { type AuditEvent, type AuditShape, CurrentTaskId, inTask } from "../Audit.ts"
import { StateCorrupt, StateIoError, StateLocked, type StateShape, type TaskList } from "../State.ts"
import { appendDurably, close, openDurableAppend, syncDirectory, truncate } from "./fileIo.ts"
import { acquireFileLock, isProcessAlive, LockRecord } from "./fileLock.ts"
import { makeTaskEncoder } from "./taskJson.ts"
import { makeTaskSlots } from "./taskSlots.ts"

export interface FileStateOptions {
  /** `state_dir`: journals and locks go to its `tasks/` directory. */
  readonly dir: string
  /** The audit log the transitions' lines go to, synced with every save. */
  readonly audit: AuditShape
  /** The current process id, and how to tell whether another one is alive (injectable for tests). */
  readonly pid?: number
  readonly isAlive?: (pid: number) => boolean
  /** A journal larger than this (and than 8 of its records) is rewritten to its last record. */
  readonly compactBytes?: number
}

const JournalRecord = Schema.Struct({ seq: Schema.Number, task: Task })
const decodeRecord = Schema.decodeUnknownEither(fromJsonText(JournalRecord))
const decodeSummary = Schema.decodeUnknownEither(
  fromJsonText(Schema.Struct({ seq: Schema.Number, task: TaskSummary.pipe(Schema.omit("seq")) }))
)
const decodeLegacy = Schema.decodeUnknownEither(fromJsonText(Task))
const decodeLegacyLock = Schema.decodeUnknownOption(fromJsonText(LockRecord))

/** Task ids become file names: letters, digits, `-`, `_` and `.` (not leading), never a path. */
const isSafeId = (id: string): boolean => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id)

const isNotFound = (error: PlatformError): boolean => error._tag === "SystemError" && error.reason === "NotFound"


/** The end of a journal: its size, and its last whole line with the offset just past it. */
interface Tail {
  readonly size: number
  readonly lastLine: Option.Option<string>
  /** Where the last whole line ends: the length to cut a torn tail back to. */
  readonly end: number
}

/** Reads the last whole line of `file` from its end, a growing chunk at a time. */
const readTail = (fs: FileSystem.FileSystem, file: string) =>
  Effect.scoped(Effect.gen(function*() {
    const handle = yield* fs.open(file, { flag: "r" })
    const size = Number((yield* handle.stat).size)
    for (let chunk = Math.min(size, 64 * 1024); ; chunk = Math.min(size, chunk * 4)) {
      const start = size - chunk
      yield* handle.seek(start, "start")
      const bytes = Option.getOrElse(yield* handle.readAlloc(chunk), () => new Uint8Array(0))
      const lastNewline = bytes.lastIndexOf(10)
      const previous = lastNewline <= 0 ? -1 : bytes.lastIndexOf(10, lastNewline - 1)
      if (lastNewline !== -1 && (previous !== -1 || start === 0)) {
        const line = new TextDecoder().decode(bytes.subarray(previous + 1, lastNewline))
        return { size, lastLine: Option.some(line), end: start + lastNewline + 1 } satisfies Tail
      }
      if (start === 0) return { size, lastLine: Option.none(), end: 0 } satisfies Tail
    }
  }))

/** A task's journal opened for durable appends (`fileIo.ts`), with what the next save needs. */
interface Journal {
  readonly fd: number
  readonly seq: number
  /** Where the last whole record ends: a record cut short is cut back to it. */
  readonly size: number
}

export const makeFileStateStore = (options: FileStateOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.join(options.dir, "tasks")
    const legacyFile = path.join(options.dir, "current_task.json")
    const lockOptions = { pid: options.pid ?? process.pid, isAlive: options.isAlive ?? isProcessAlive, started: performance.timeOrigin }
    const compactBytes = options.compactBytes ?? 1024 * 1024
    const journalPath = (id: string) => path.join(dir, `${id}.jsonl`)
    const taskJson = makeTaskEncoder()
    /** A record's line: `{"seq":N,"task":{…}}`, the same text as `JSON.stringify({ seq, task })`; every field of a task is plain JSON, so it decodes back to the task (`load` decodes with the schema, as anything read from disk). */
    const recordLine = (seq: number, task: Task): Uint8Array => Buffer.from(`{"seq":${JSON.stringify(seq)},"task":${taskJson(task)}}\n`)
    const ioError = (target: string, operation: StateIoError["operation"]) => (error: { readonly message: string }) =>
      new StateIoError({ path: target, operation, reason: error.message })
    const unsafeId = (id: string, operation: StateIoError["operation"]) =>
      new StateIoError({ path: path.join(dir, id), operation, reason: "a task id is letters, digits, '-', '_' and '.', never a path" })
    // A journal's records were made durable by their writes: an error closing it loses none of them.
    const closeFd = (fd: number) => Effect.ignore(close(fd))

    /** Journals opened by this store, by task id. */
    const journals = yield* makeTaskSlots<Journal>()
    /** Tasks whose lock a fiber of this store holds. */
    const held = yield* Ref.make(new Map<string, LockRecord>())
    const closeJournal = (id: string) => journals.drop(id, (journal) => closeFd(journal.fd))
    yield* Effect.addFinalizer(() => Effect.flatMap(journals.ids, (ids) => Effect.forEach(ids, closeJournal, { discard: true })))

    const decodeTail = (id: string, file: string, tail: Tail) =>
      Effect.gen(function*() {
        if (Option.isNone(tail.lastLine)) {
          return yield* new StateCorrupt({ path: file, reason: "it holds no whole record", taskId: id })
        }
        const decoded = decodeRecord(tail.lastLine.value)
        if (decoded._tag === "Left") return yield* new StateCorrupt({ path: file, reason: formatParseError(decoded.left), taskId: id })
        if (decoded.right.task.id !== id) {
          return yield* new StateCorrupt({ path: file, reason: `it holds task ${decoded.right.task.id}, not ${id}`, taskId: id })
        }
        return decoded.right
      })

    /**
     * Opens the journal for durable appends; a torn last line (a write cut short) is cut away
     * first. A new journal's name is made durable in its directory before its first record.
     */
    const openJournal = (id: string) =>
      Effect.gen(function*() {
        const file = journalPath(id)
        const tail = yield* readTail(fs, file).pipe(
          Effect.map(Option.some),
          Effect.catchIf(isNotFound, () => Effect.succeed(Option.none<Tail>()))
        )
        if (Option.isNone(tail)) yield* fs.makeDirectory(dir, { recursive: true })
        if (Option.isSome(tail) && tail.value.end < tail.value.size) yield* fs.truncate(file, tail.value.end)
        const seq = Option.match(Option.flatMap(tail, (t) => t.lastLine), {
          onNone: () => 0,
          // A last record that does not decode is superseded by the next save.
          onSome: (line) => Option.match(Option.getRight(decodeRecord(line)), { onNone: () => 0, onSome: (record) => record.seq })
        })
        const fd = yield* openDurableAppend(file)
        if (Option.isNone(tail)) yield* syncDirectory(dir).pipe(Effect.tapError(() => closeFd(fd)))
        return { fd, seq, size: Option.match(tail, { onNone: () => 0, onSome: (t) => t.end }) } satisfies Journal
      }).pipe(Effect.mapError(ioError(journalPath(id), "write")))

    /** Rewrites a long journal to its last record: tmp file, fsync, rename, fsync of the directory, reopen. */
    const compact = (id: string, journal: Journal, bytes: Uint8Array) =>
      Effect.gen(function*() {
        const file = journalPath(id)
        const tmp = `${file}.tmp`
        yield* Effect.scoped(Effect.gen(function*() {
          const handle = yield* fs.open(tmp, { flag: "w" })
          yield* handle.writeAll(bytes)
          yield* handle.sync
        }))
        yield* fs.rename(tmp, file)
        yield* syncDirectory(dir)
        yield* closeFd(journal.fd)
        return { fd: yield* openDurableAppend(file), seq: journal.seq, size: bytes.length } satisfies Journal
      }).pipe(Effect.mapError(ioError(`${journalPath(id)}.tmp`, "write")))

    /** A save's lines, stamped with its seq and its task (which the fiber driving a task already names). */
    const logLines = (id: string, events: ReadonlyArray<AuditEvent>, seq: number) => {
      const lines = Effect.forEach(events, (event) => options.audit.log(event.event, { ...event.data, seq }), { discard: true })
      return Effect.flatMap(FiberRef.get(CurrentTaskId), (current) => (current === id ? lines : inTask(id)(lines)))
    }

    /**
     * One transition: the audit lines logged so far (this one's among them) are written, then the
     * record is appended and made durable in one write (`appendDurably`). Nothing else touches the
     * disk: no stat, no rename, no directory, no second handle.
     */
    const commit = (slot: Ref.Ref<Option.Option<Journal>>, task: Task, events: ReadonlyArray<AuditEvent>) =>
      Effect.gen(function*() {
        const current = yield* Ref.get(slot)
        const journal = Option.isSome(current)
          ? current.value
          : yield* Effect.tap(openJournal(task.id), (opened) => Ref.set(slot, Option.some(opened)))
        const seq = journal.seq + 1
        const bytes = recordLine(seq, task)
        // The transition's own lines, and every line logged before them, are written first
        // (write-ahead): after a crash, a line may name a transition that was not saved (it is
        // redone, with the same seq), never the reverse — the log is never behind the tasks.
        if (events.length > 0) yield* logLines(task.id, events, seq)
        yield* options.audit.flush
        yield* appendDurably(journal.fd, bytes).pipe(
          // A full disk can take part of the record: cut it off (a journal that had none goes),
          // and forget the handle, so the next save starts from what is on disk.
          Effect.catchAll((error) =>
            Effect.all([
              journal.size === 0 ? fs.remove(journalPath(task.id), { force: true }) : truncate(journal.fd, journal.size),
              closeFd(journal.fd),
              Ref.set(slot, Option.none())
            ], { discard: true }).pipe(Effect.ignore, Effect.zipRight(Effect.fail(ioError(journalPath(task.id), "write")(error))))
          )
        )
        const written: Journal = { ...journal, seq, size: journal.size + bytes.length }
        const next = written.size > compactBytes && written.size > 8 * bytes.length ? yield* compact(task.id, written, bytes) : written
        yield* Ref.set(slot, Option.some(next))
        if (journal.seq === 0) yield* dropLegacy(task.id)
        return seq
      })

    const save = (task: Task, events: ReadonlyArray<AuditEvent> = []) =>
      isSafeId(task.id) ? journals.withSlot(task.id, (slot) => commit(slot, task, events)) : Effect.fail(unsafeId(task.id, "write"))

    const load = (id: string) =>
      Effect.gen(function*() {
        if (!isSafeId(id)) return Option.none<Task>()
        const file = journalPath(id)
        const tail = yield* readTail(fs, file).pipe(
          Effect.map(Option.some),
          Effect.catchIf(isNotFound, () => Effect.succeed(Option.none<Tail>())),
          Effect.mapError(ioError(file, "read"))
        )
        if (Option.isSome(tail)) return Option.some((yield* decodeTail(id, file, tail.value)).task)
        return Option.filter(yield* readLegacy, (task) => task.id === id)
      })

    /** A journal's summary, or why it cannot be read; `None` when it was removed since the directory was read. */
    const summaryOf = (id: string) =>
      Effect.gen(function*() {
        const file = journalPath(id)
        const tail = yield* readTail(fs, file).pipe(
          Effect.map(Option.some),
          Effect.catchIf(isNotFound, () => Effect.succeed(Option.none<Tail>())),
          Effect.mapError(ioError(file, "read"))
        )
        if (Option.isNone(tail)) return Option.none<TaskSummary | StateCorrupt>()
        const line = tail.value.lastLine
        if (Option.isNone(line)) return Option.some(new StateCorrupt({ path: file, reason: "it holds no whole record", taskId: id }))
        const decoded = decodeSummary(line.value)
        if (decoded._tag === "Left") return Option.some(new StateCorrupt({ path: file, reason: formatParseError(decoded.left), taskId: id }))
        return Option.some<TaskSummary | StateCorrupt>({ ...decoded.right.task, seq: decoded.right.seq })
      })

    const list = Effect.gen(function*() {
      const names = yield* fs.readDirectory(dir).pipe(
        Effect.catchIf(isNotFound, () => Effect.succeed<Array<string>>([])),
        Effect.mapError(ioError(dir, "read"))
      )
      const ids = names.filter((name) => name.endsWith(".jsonl")).map((name) => name.slice(0, -".jsonl".length)).filter(isSafeId)
      const found = (yield* Effect.forEach(ids, summaryOf, { concurrency: 16 })).flatMap(Option.toArray)
      const tasks = found.filter((entry): entry is TaskSummary => !(entry instanceof StateCorrupt))
      const damaged = found.filter((entry): entry is StateCorrupt => entry instanceof StateCorrupt)
      const legacy = yield* readLegacy.pipe(
        Effect.map((task) => Option.filter(task, (t) => !ids.includes(t.id))),
        Effect.catchTag("StateCorrupt", (error) => Effect.as(Effect.sync(() => damaged.push(error)), Option.none<Task>()))
      )
      const all = Option.match(legacy, {
        onNone: () => tasks,
        onSome: (task) => [...tasks, { id: task.id, state: task.state, prompt: task.prompt, created_at: task.created_at, updated_at: task.updated_at, seq: 0 }]
      })
      // Newest first; ties (one millisecond) by id, as the Postgres store orders them.
      const order = (a: TaskSummary, b: TaskSummary) => b.updated_at.localeCompare(a.updated_at) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
      return { tasks: [...all].sort(order), damaged } satisfies TaskList
    })

    const remove = (id: string) =>
      Effect.gen(function*() {
        if (!isSafeId(id)) return yield* unsafeId(id, "remove")
        yield* closeJournal(id)
        const file = journalPath(id)
        yield* Effect.all([fs.remove(file, { force: true }), fs.remove(`${file}.tmp`, { force: true })], { discard: true }).pipe(
          Effect.mapError(ioError(file, "remove"))
        )
        yield* dropLegacy(id)
      })

    const lock = (id: string, command: string) =>
      Effect.gen(function*() {
        if (!isSafeId(id)) return yield* unsafeId(id, "lock")
        const file = path.join(dir, `${id}.lock`)
        const holder = (yield* Ref.get(held)).get(id)
        if (holder !== undefined) return yield* new StateLocked({ path: file, pid: holder.pid, since: holder.since, command: holder.command })
        yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(ioError(dir, "lock")))
        const acquired = yield* Effect.acquireRelease(
          acquireFileLock(file, command, lockOptions),
          (lock) => lock.release
        )
        yield* Effect.acquireRelease(
          Ref.update(held, (all) => new Map(all).set(id, acquired.record)),
          () => Effect.zipRight(closeJournal(id), Ref.update(held, (all) => {
            const rest = new Map(all)
            rest.delete(id)
            return rest
          }))
        )
      }).pipe(Effect.provideService(FileSystem.FileSystem, fs))

    // -------------------------------------------------------------------------------------------
    // The first wave's single task file

    const readLegacy = Effect.gen(function*() {
      const text = yield* fs.readFileString(legacyFile).pipe(
        Effect.map(Option.some),
        Effect.catchIf(isNotFound, () => Effect.succeed(Option.none<string>())),
        Effect.mapError(ioError(legacyFile, "read"))
      )
      if (Option.isNone(text)) return Option.none<Task>()
      const decoded = decodeLegacy(text.value)
      if (decoded._tag === "Left") {
        const reason = text.value.trim() === "" ? "the file is empty" : formatParseError(decoded.left)
        return yield* new StateCorrupt({ path: legacyFile, reason, taskId: null })
      }
      return Option.some(decoded.right)
    })

    /** Once a task has a journal, its first-wave file goes (best effort: a leftover is ignored once the journal exists). */
    const dropLegacy = (id: string) =>
      readLegacy.pipe(
        Effect.flatMap((task) =>
          Option.isSome(task) && task.value.id === id
            ? Effect.all([fs.remove(legacyFile, { force: true }), fs.remove(`${legacyFile}.tmp`, { force: true })], { discard: true })
            : Effect.void
        ),
        Effect.ignore
      )

    /** Moves a first-wave task into its journal, unless a first-wave process still holds `agent.lock`. */
    const migrateLegacy = Effect.gen(function*() {
      const task = yield* readLegacy
      if (Option.isNone(task) || !isSafeId(task.value.id)) return
      const holder = yield* fs.readFileString(path.join(options.dir, "agent.lock")).pipe(
        Effect.map(decodeLegacyLock),
        Effect.orElseSucceed(() => Option.none<LockRecord>())
      )
      if (Option.isSome(holder) && holder.value.pid !== lockOptions.pid && lockOptions.isAlive(holder.value.pid)) return
      const file = journalPath(task.value.id)
      if (!(yield* fs.exists(file))) {
        yield* fs.makeDirectory(dir, { recursive: true })
        yield* Effect.scoped(Effect.gen(function*() {
          const handle = yield* fs.open(`${file}.tmp`, { flag: "w" })
          yield* handle.writeAll(recordLine(1, task.value))
          yield* handle.sync
        }))
        yield* fs.rename(`${file}.tmp`, file)
      }
      yield* dropLegacy(task.value.id)
    })
    // A read-only or damaged first-wave file stays where it is and is still read (or reported).
    yield* Effect.ignore(migrateLegacy)

    return {
      save,
      load,
      list,
      remove,
      lock,
      location: options.dir
    } satisfies StateShape
  })
