/**
 * The persisted task: `current_task.json` in `state_dir`, written atomically
 * (tmp file, fsync, rename) so a crash leaves either the old or the new state, never half
 * of one; decoded with Schema on load, so a damaged file is a `StateCorrupt` error naming it.
 * An exclusive lock file keeps a second agent process off the same state directory.
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Context, Data, Effect, Layer, Option, Schema, type Scope } from "effect"
import { fromJsonText } from "../core/jsonText.ts"
import { formatParseError } from "../core/schemaIssues.ts"
import { Task } from "../core/task.ts"
import { AppConfig } from "./Config.ts"

export class StateCorrupt extends Data.TaggedError("StateCorrupt")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `The saved task ${this.path} is damaged (${this.reason}). Inspect or move the file away, or run \`luallm-agent reset\` to discard it; the audit log still has the task's history.`
  }
}

export class StateIoError extends Data.TaggedError("StateIoError")<{
  readonly path: string
  readonly operation: "read" | "write" | "remove" | "lock"
  readonly reason: string
}> {
  override get message() {
    return `Could not ${this.operation} ${this.path}: ${this.reason}. Check that state_dir is writable and the disk has space; the previously saved task is left as it was.`
  }
}

export class StateLocked extends Data.TaggedError("StateLocked")<{
  readonly path: string
  readonly pid: number
  readonly since: string
  readonly command: string
}> {
  override get message() {
    return `Another luallm-agent process (pid ${this.pid}, \`${this.command}\`, since ${this.since}) is using this state directory (lock ${this.path}). Wait for it to finish or stop it; if pid ${this.pid} is not running any more, the lock is stale and is taken over automatically.`
  }
}

export interface StateShape<A> {
  /** Atomically replaces the saved task. */
  readonly save: (task: A) => Effect.Effect<void, StateIoError>
  /** None when no task is saved. */
  readonly load: Effect.Effect<Option.Option<A>, StateCorrupt | StateIoError>
  readonly clear: Effect.Effect<void, StateIoError>
  readonly exists: Effect.Effect<boolean, StateIoError>
  /** Holds the state directory's lock until the scope closes; fails fast when another live process holds it. */
  readonly lock: (command: string) => Effect.Effect<void, StateLocked | StateIoError, Scope.Scope>
  readonly path: string
}

export class State extends Context.Tag("State")<State, StateShape<Task>>() {}

export const LockRecord = Schema.Struct({ pid: Schema.Number, since: Schema.String, command: Schema.String })
const decodeLock = Schema.decodeUnknownOption(fromJsonText(LockRecord))

const isNotFound = (error: PlatformError): boolean => error._tag === "SystemError" && error.reason === "NotFound"

/** Whether a process is alive. Signal 0 checks existence; EPERM means it exists but is not ours. */
export const isProcessAlive = (pid: number): boolean => {
  // 0 and negative pids address process groups, never one holder.
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return typeof error === "object" && error !== null && "code" in error && error.code === "EPERM"
  }
}

export interface StateStoreOptions {
  readonly dir: string
  readonly fileName?: string
  /** The current process id, and how to tell whether another one is alive (injectable for tests). */
  readonly pid?: number
  readonly isAlive?: (pid: number) => boolean
}

/** A state store for documents of `schema`, in `options.dir`. */
export const makeStateStore = <A, I>(schema: Schema.Schema<A, I>, options: StateStoreOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = path.join(options.dir, options.fileName ?? "current_task.json")
    const tmp = `${file}.tmp`
    const lockFile = path.join(options.dir, "agent.lock")
    const pid = options.pid ?? process.pid
    const isAlive = options.isAlive ?? isProcessAlive
    const encode = Schema.encode(fromJsonText(schema, { space: 2 }))
    const decode = Schema.decodeUnknownEither(fromJsonText(schema))
    const ioError = (target: string, operation: StateIoError["operation"]) => (error: { readonly message: string }) =>
      new StateIoError({ path: target, operation, reason: error.message })

    const ensureDir = fs.makeDirectory(options.dir, { recursive: true }).pipe(Effect.mapError(ioError(options.dir, "write")))

    const writeTmp = (bytes: Uint8Array) =>
      Effect.scoped(
        Effect.gen(function*() {
          const handle = yield* fs.open(tmp, { flag: "w" })
          yield* handle.writeAll(bytes)
          yield* handle.sync
        })
      )

    const save = (task: A) =>
      Effect.gen(function*() {
        const bytes = new TextEncoder().encode(yield* encode(task).pipe(Effect.orDie))
        // The directory exists after the first save: make it only when the tmp file cannot be
        // created for want of it, rather than pay a mkdir on every transition.
        yield* writeTmp(bytes).pipe(
          Effect.catchIf(isNotFound, () => Effect.zipRight(ensureDir, writeTmp(bytes))),
          Effect.catchTag("SystemError", "BadArgument", (error) => Effect.fail(ioError(tmp, "write")(error)))
        )
        yield* fs.rename(tmp, file).pipe(Effect.mapError(ioError(file, "write")))
      })

    const load = Effect.gen(function*() {
      const present = yield* fs.exists(file).pipe(Effect.mapError(ioError(file, "read")))
      if (!present) return Option.none<A>()
      const text = yield* fs.readFileString(file).pipe(Effect.mapError(ioError(file, "read")))
      const decoded = decode(text)
      if (decoded._tag === "Left") {
        const reason = text.trim() === "" ? "the file is empty" : formatParseError(decoded.left)
        return yield* new StateCorrupt({ path: file, reason })
      }
      return Option.some(decoded.right)
    })

    const clear = Effect.all([fs.remove(file, { force: true }), fs.remove(tmp, { force: true })], { discard: true }).pipe(
      Effect.mapError(ioError(file, "remove"))
    )

    const writeLock = (command: string) =>
      Effect.gen(function*() {
        const record = JSON.stringify({ pid, since: new Date().toISOString(), command })
        // "wx" fails when the file exists: the atomic test-and-set of the lock.
        yield* fs.writeFileString(lockFile, record, { flag: "wx" })
      })

    const readHolder = fs.readFileString(lockFile).pipe(
      Effect.map(decodeLock),
      Effect.orElseSucceed(() => Option.none<typeof LockRecord.Type>())
    )

    const isAlreadyExists = (error: PlatformError): boolean =>
      error._tag === "SystemError" && error.reason === "AlreadyExists"

    /** One attempt at the lock; on contention, says who holds it. */
    const tryLock = (command: string) =>
      writeLock(command).pipe(
        Effect.as(Option.none<typeof LockRecord.Type>()),
        Effect.catchAll((error): Effect.Effect<Option.Option<typeof LockRecord.Type>, StateIoError> =>
          isAlreadyExists(error)
            ? Effect.map(readHolder, (holder) =>
              Option.some(Option.getOrElse(holder, () => ({ pid: -1, since: "unknown", command: "unreadable lock file" }))))
            : Effect.fail(ioError(lockFile, "lock")(error))
        )
      )

    const acquire = (command: string): Effect.Effect<void, StateLocked | StateIoError> =>
      Effect.gen(function*() {
        yield* ensureDir
        const holder = yield* tryLock(command)
        if (Option.isNone(holder)) return
        if (holder.value.pid !== pid && isAlive(holder.value.pid)) {
          return yield* new StateLocked({ path: lockFile, ...holder.value })
        }
        // A stale lock (its process is gone, or the file is unreadable): take it over once.
        yield* fs.remove(lockFile, { force: true }).pipe(Effect.mapError(ioError(lockFile, "lock")))
        const again = yield* tryLock(command)
        if (Option.isSome(again)) return yield* new StateLocked({ path: lockFile, ...again.value })
      })

    // Releasing is best effort on purpose: a lock left behind names a dead pid and is taken over.
    const release = fs.readFileString(lockFile).pipe(
      Effect.flatMap((text) =>
        Option.match(decodeLock(text), {
          onNone: () => Effect.void,
          onSome: (holder) => (holder.pid === pid ? fs.remove(lockFile, { force: true }) : Effect.void)
        })
      ),
      Effect.ignore
    )

    return {
      path: file,
      save,
      load,
      clear,
      exists: fs.exists(file).pipe(Effect.mapError(ioError(file, "read"))),
      lock: (command: string) => Effect.acquireRelease(acquire(command), () => release)
    } satisfies StateShape<A>
  })

/** The live layer: `current_task.json` in the configured `state_dir`. */
export const StateLive: Layer.Layer<State, never, AppConfig | FileSystem.FileSystem | Path.Path> = Layer.effect(
  State,
  Effect.flatMap(AppConfig, ({ config }) => makeStateStore(Task, { dir: config.state_dir }))
)
