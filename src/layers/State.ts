/**
 * The persisted tasks, keyed by id. Each save is one transition with a sequence number
 * (`seq`, 1 for a new task), committed together with the audit lines it carries; a lock per
 * task keeps a second driver (another process, or another fiber of this one) off a task while
 * different tasks run side by side.
 *
 * Two stores behind this one interface: the file store (the embedded default, a journal per task
 * in `state_dir/tasks/`, `src/layers/store/fileState.ts`) and the Postgres store (`store` set to a
 * `postgres://` URL, `src/layers/store/postgres.ts`). Which one `StateLive` builds is the config's
 * `store` (or `--store`). Choosing a task by id or prefix lives here, once, for both.
 */
import type { FileSystem, Path } from "@effect/platform"
import { Context, Data, Effect, Layer, Option, type Scope } from "effect"
import { isTerminal, type Task, type TaskSummary } from "../core/task.ts"

export { TaskSummary } from "../core/task.ts"
import { Audit, type AuditEvent, type AuditWriteError } from "./Audit.ts"
import { AppConfig } from "./Config.ts"
import { StoreBackend, StoreBackendLive, type StoreUnavailable } from "./store/backend.ts"
import { makeFileStateStore } from "./store/fileState.ts"

export { StoreUnavailable } from "./store/backend.ts"

const isDatabase = (location: string): boolean => /^postgres(ql)?:\/\//.test(location)
const shortId = (id: string): string => id.slice(0, 8)

export class StateCorrupt extends Data.TaggedError("StateCorrupt")<{
  readonly path: string
  readonly reason: string
  /** The task it holds, when its id is known (from the file name or the row). */
  readonly taskId: string | null
}> {
  override get message() {
    const discard = this.taskId === null
      ? "move it away"
      : `discard the task with \`luallm-agent reset --task ${shortId(this.taskId)}\` (\`Agent.reset("${shortId(this.taskId)}")\` in an app)`
    return `The saved task ${this.path} is damaged (${this.reason}). Inspect it, or ${discard}; the audit log still has the task's history.`
  }
}

export class StateIoError extends Data.TaggedError("StateIoError")<{
  readonly path: string
  readonly operation: "read" | "write" | "remove" | "lock"
  readonly reason: string
}> {
  override get message() {
    return isDatabase(this.path)
      ? `Could not ${this.operation} ${this.path}: ${this.reason}. Check that the database server is reachable and has space; the previously saved task is left as it was.`
      : `Could not ${this.operation} ${this.path}: ${this.reason}. Check that state_dir is writable and the disk has space; the previously saved task is left as it was.`
  }
}

export class StateLocked extends Data.TaggedError("StateLocked")<{
  readonly path: string
  readonly pid: number
  readonly since: string
  readonly command: string
  /** The holder's machine, when the lock is shared between machines (the Postgres store). */
  readonly host?: string
}> {
  override get message() {
    const where = this.host === undefined ? "" : ` on ${this.host}`
    return `Another luallm-agent process (pid ${this.pid}${where}, \`${this.command}\`, since ${this.since}) is driving this task (lock ${this.path}). Wait for it to finish or stop it; when pid ${this.pid} is not running any more, its lock is stale and is taken over automatically.`
  }
}

export class StateConflict extends Data.TaggedError("StateConflict")<{
  readonly taskId: string
  readonly expectedSeq: number
  readonly location: string
}> {
  override get message() {
    return `Task ${shortId(this.taskId)} was saved by someone else after transition ${this.expectedSeq} while this process drove it (in ${this.location}); this process stopped without overwriting it. See where it stands with \`luallm-agent status --task ${shortId(this.taskId)}\`.`
  }
}

export class TaskNotFound extends Data.TaggedError("TaskNotFound")<{ readonly id: string; readonly location: string }> {
  override get message() {
    return `No task ${this.id} in ${this.location}. \`luallm-agent tasks\` lists the saved tasks (\`Agent.tasks\` in an app).`
  }
}

export class TaskAmbiguous extends Data.TaggedError("TaskAmbiguous")<{ readonly id: string; readonly matches: ReadonlyArray<string> }> {
  override get message() {
    return `"${this.id}" matches several tasks (${this.matches.join(", ")}). Give more characters of the id.`
  }
}

export interface TaskList {
  /** Most recently updated first. */
  readonly tasks: ReadonlyArray<TaskSummary>
  /** Saved tasks that cannot be read, each with its id when known. */
  readonly damaged: ReadonlyArray<StateCorrupt>
}

export interface StateShape {
  /**
   * Saves `task` as its next transition and commits `events` (audit lines, each stamped with
   * the transition's `seq`) with it; returns the new `seq`.
   */
  readonly save: (
    task: Task,
    events?: ReadonlyArray<AuditEvent>
  ) => Effect.Effect<number, StateIoError | StateConflict | AuditWriteError>
  /** The task's last saved transition; `None` when no task has that id. */
  readonly load: (id: string) => Effect.Effect<Option.Option<Task>, StateCorrupt | StateIoError>
  readonly list: Effect.Effect<TaskList, StateIoError>
  /** Discards a task (its audit lines stay). */
  readonly remove: (id: string) => Effect.Effect<void, StateIoError>
  /** Holds the task's lock until the scope closes; fails fast when another driver (process or fiber) holds it. */
  readonly lock: (id: string, command: string) => Effect.Effect<void, StateLocked | StateIoError, Scope.Scope>
  /** Where the tasks are kept, for messages: the state directory or the database URL (password hidden). */
  readonly location: string
}

export class State extends Context.Tag("State")<State, StateShape>() {}

/** A task id, or an unambiguous prefix of at least 4 characters, among `ids`. */
export const matchTaskId = (
  ids: ReadonlyArray<string>,
  wanted: string,
  location: string
): Effect.Effect<string, TaskNotFound | TaskAmbiguous> => {
  const exact = ids.filter((id) => id === wanted)
  const matches = exact.length > 0 ? exact : wanted.length >= 4 ? ids.filter((id) => id.startsWith(wanted)) : []
  const [only, ...others] = matches
  if (only === undefined) return Effect.fail(new TaskNotFound({ id: wanted, location }))
  if (others.length > 0) return Effect.fail(new TaskAmbiguous({ id: wanted, matches }))
  return Effect.succeed(only)
}

const idsOf = (list: TaskList): ReadonlyArray<string> =>
  [...list.tasks.map((task) => task.id), ...list.damaged.flatMap((damaged) => (damaged.taskId === null ? [] : [damaged.taskId]))]

/** The full id of the task `wanted` names (an id or a prefix), damaged ones included. */
export const resolveTaskId = (wanted: string) =>
  Effect.gen(function*() {
    const state = yield* State
    return yield* matchTaskId(idsOf(yield* state.list), wanted, state.location)
  })

/**
 * The task a command acts on when it names none: the most recently updated unfinished task,
 * else the most recently updated one (so a one-task user sees the task they just ran).
 */
export const defaultTask = (list: TaskList): Option.Option<TaskSummary> =>
  Option.orElse(
    Option.fromNullable(list.tasks.find((task) => !isTerminal(task))),
    () => Option.fromNullable(list.tasks[0])
  )

/** The tasks that are not finished, most recent first. */
export const unfinishedTasks = (list: TaskList): ReadonlyArray<TaskSummary> => list.tasks.filter((task) => !isTerminal(task))

/** The live layer: the file store in `state_dir`, or the Postgres store when `store` is a URL. */
export const StateLive: Layer.Layer<State, StoreUnavailable, AppConfig | Audit | FileSystem.FileSystem | Path.Path> = Layer.scoped(
  State,
  Effect.gen(function*() {
    const backend = yield* StoreBackend
    if (backend._tag === "Postgres") return backend.store.state
    const { config } = yield* AppConfig
    const audit = yield* Audit
    return yield* makeFileStateStore({ dir: config.state_dir, audit })
  })
).pipe(Layer.provide(StoreBackendLive))
