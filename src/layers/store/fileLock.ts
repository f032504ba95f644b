/**
 * A lock file naming its holder (`{pid, since, command, token}`), for the file store's lock per
 * task. Taking it is atomic: the record is written whole to a private file, then hard-linked to
 * the lock's name, which fails when the name exists — so no one ever reads a half-written lock.
 * A lock whose process is gone (SIGKILL, power loss) is stale and is taken over; a takeover is
 * itself guarded by a second lock file, so two processes that both found the same stale lock
 * cannot both end up holding it.
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Option, Schema } from "effect"
import { fromJsonText } from "../../core/jsonText.ts"
import { StateIoError, StateLocked } from "../State.ts"

export const LockRecord = Schema.Struct({
  pid: Schema.Number,
  since: Schema.String,
  command: Schema.String,
  /** When the holding process started (`performance.timeOrigin`): tells it from an earlier process with the same pid. */
  started: Schema.optional(Schema.Number),
  /** Tells this holder from another one in the same process. */
  token: Schema.optional(Schema.String)
})
export type LockRecord = typeof LockRecord.Type
const decodeLock = Schema.decodeUnknownOption(fromJsonText(LockRecord))

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

const isAlreadyExists = (error: PlatformError): boolean => error._tag === "SystemError" && error.reason === "AlreadyExists"

const unknownHolder: LockRecord = { pid: -1, since: "unknown", command: "unreadable lock file" }

export interface FileLockOptions {
  /** The current process id, and how to tell whether another one is alive (injectable for tests). */
  readonly pid: number
  readonly isAlive: (pid: number) => boolean
  /** When this process started; a record with our pid and another start time is an earlier process's. */
  readonly started: number
}

/** Takes `file` for `command`; the returned effect releases it (best effort: a lock left behind names a dead pid). */
export const acquireFileLock = (file: string, command: string, options: FileLockOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const ioError = (error: { readonly message: string }) => new StateIoError({ path: file, operation: "lock", reason: error.message })
    const mine: LockRecord = { pid: options.pid, since: new Date().toISOString(), command, started: options.started, token: crypto.randomUUID() }

    /** Creates `target` holding `mine`, atomically; false when it exists. */
    const create = (target: string) =>
      Effect.gen(function*() {
        const draft = `${target}.${options.pid}.${mine.token}`
        yield* fs.writeFileString(draft, JSON.stringify(mine))
        return yield* fs.link(draft, target).pipe(
          Effect.as(true),
          Effect.catchIf(isAlreadyExists, () => Effect.succeed(false)),
          Effect.ensuring(fs.remove(draft, { force: true }).pipe(Effect.ignore))
        )
      }).pipe(Effect.mapError(ioError))

    const holderOf = (target: string) =>
      fs.readFileString(target).pipe(
        Effect.map(decodeLock),
        Effect.orElseSucceed(() => Option.none<LockRecord>())
      )

    /** A holder that still runs: another live process, or another holder in this one. */
    const liveOther = (holder: Option.Option<LockRecord>) =>
      Option.filter(holder, (record) =>
        record.pid === options.pid ? record.started === options.started && record.token !== mine.token : options.isAlive(record.pid))

    const locked = (holder: LockRecord) => new StateLocked({ path: file, pid: holder.pid, since: holder.since, command: holder.command })

    const takeOver = (stale: Option.Option<LockRecord>) =>
      Effect.gen(function*() {
        const guard = `${file}.takeover`
        if (!(yield* create(guard))) {
          const taking = liveOther(yield* holderOf(guard))
          if (Option.isSome(taking)) return yield* locked(Option.getOrElse(stale, () => taking.value))
          yield* fs.remove(guard, { force: true }).pipe(Effect.mapError(ioError))
          if (!(yield* create(guard))) return yield* locked(Option.getOrElse(stale, () => unknownHolder))
        }
        yield* Effect.gen(function*() {
          // Between our look and the guard, someone else may have taken it over already.
          const now = yield* holderOf(file)
          const changed = Option.isSome(now) && (Option.isNone(stale) || now.value.token !== stale.value.token || now.value.pid !== stale.value.pid)
          const live = liveOther(now)
          if (changed && Option.isSome(live)) return yield* locked(live.value)
          yield* fs.remove(file, { force: true }).pipe(Effect.mapError(ioError))
          if (!(yield* create(file))) return yield* locked(Option.getOrElse(yield* holderOf(file), () => unknownHolder))
        }).pipe(Effect.ensuring(fs.remove(guard, { force: true }).pipe(Effect.ignore)))
      })

    if (!(yield* create(file))) {
      const holder = yield* holderOf(file)
      const live = liveOther(holder)
      if (Option.isSome(live)) return yield* locked(live.value)
      // Stale: its process is gone, the file is unreadable, or an earlier process had our pid.
      yield* takeOver(holder)
    }

    const release = holderOf(file).pipe(
      Effect.flatMap((holder) =>
        Option.isSome(holder) && holder.value.token === mine.token ? fs.remove(file, { force: true }) : Effect.void
      ),
      Effect.ignore
    )
    return { record: mine, release }
  })
