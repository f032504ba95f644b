/**
 * The Postgres store: tasks, their locks and the audit log in one database, for several
 * processes (and machines) at once. Tables come from `@effect/sql`'s `Migrator`, run under an
 * advisory lock so that processes starting together do not race.
 *
 * A transition is one statement: the task row is replaced only if its `seq` is still the one
 * this process last saw (so a second writer is caught, not overwritten), and the transition's
 * audit lines are inserted by the same statement — both commit, or neither. A task's lock is a
 * session advisory lock on a connection held while the task is driven: when the process dies,
 * the server drops the connection and the lock with it. Who holds it is written beside it, for
 * the message a second driver gets.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Clock, Effect, Either, Option, Redacted, Ref, Schema } from "effect"
import { hostname } from "node:os"
import { describeStore } from "../../core/config.ts"
import { fromJsonText } from "../../core/jsonText.ts"
import { formatParseError } from "../../core/schemaIssues.ts"
import { Task, TaskSummary } from "../../core/task.ts"
import {
  Audit,
  AuditEntry,
  type AuditEvent,
  AuditReadError,
  AuditReader,
  auditDataJson,
  AuditWriteError,
  makeEntry
} from "../Audit.ts"
import { StateConflict, StateCorrupt, StateIoError, StateLocked, type StateShape, type TaskList } from "../State.ts"
import { type PostgresStore, StoreUnavailable } from "./backend.ts"
import { makeTaskEncoder } from "./taskJson.ts"
import { makeTaskSlots } from "./taskSlots.ts"

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` */
  readonly url: string
  readonly maxConnections: number
}

/** The schema, one migration per change; never edit one that has shipped, add the next. */
export const migrations = Migrator.fromRecord({
  "1_tasks_locks_audit": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE luallm_tasks (
      id text PRIMARY KEY,
      seq integer NOT NULL,
      state text NOT NULL,
      prompt text NOT NULL,
      created_at text NOT NULL,
      updated_at text NOT NULL,
      doc json NOT NULL
    )`
    yield* sql`CREATE INDEX luallm_tasks_updated ON luallm_tasks (updated_at DESC)`
    yield* sql`CREATE TABLE luallm_task_locks (
      task_id text PRIMARY KEY,
      pid integer NOT NULL,
      host text NOT NULL,
      command text NOT NULL,
      since text NOT NULL
    )`
    yield* sql`CREATE TABLE luallm_audit (
      id bigserial PRIMARY KEY,
      ts text NOT NULL,
      event text NOT NULL,
      task_id text,
      data json NOT NULL
    )`
    yield* sql`CREATE INDEX luallm_audit_task ON luallm_audit (task_id, id)`
  })
})

/** What the server said, without the driver's wrapping. */
const reasonOf = (error: SqlError): string => {
  const cause: unknown = error.cause
  return cause instanceof Error && cause.message !== "" ? cause.message : error.message
}

/** `text` columns cannot hold NUL; a prompt that does is stored with U+FFFD there (the `doc` keeps it exact). */
const asText = (text: string): string => text.replaceAll("\u0000", "\uFFFD")


const Rows = <A, I>(row: Schema.Schema<A, I>) => Schema.decodeUnknown(Schema.Array(row))
const decodeSeq = Rows(Schema.Struct({ seq: Schema.Number }))
const decodeSeqNow = Schema.decodeUnknownEither(Schema.Array(Schema.Struct({ seq: Schema.Number })))
const decodeDoc = Rows(Schema.Struct({ doc: Schema.String }))
/** A task's `doc`, read back as text (`doc::text`) and decoded like any JSON from outside. */
const decodeTask = Schema.decodeUnknownEither(fromJsonText(Task))
/** An audit row, its `data` read back as text (`data::text`) and decoded like a log file's line. */
const decodeEntry = Schema.decodeUnknownEither(Schema.Struct({ ...AuditEntry.fields, data: fromJsonText(AuditEntry.fields.data) }))
const decodeSummary = Schema.decodeUnknownEither(TaskSummary)
const decodeHolder = Rows(Schema.Struct({ pid: Schema.Number, host: Schema.String, command: Schema.String, since: Schema.String }))
const decodeFlag = Schema.decodeUnknown(Schema.Array(Schema.Tuple(Schema.Boolean)))

export const makePostgresStore = (options: PostgresStoreOptions) =>
  Effect.gen(function*() {
    const location = describeStore(options.url)
    const unavailable = (error: SqlError | Migrator.MigrationError) =>
      new StoreUnavailable({ url: location, reason: error._tag === "SqlError" ? reasonOf(error) : error.message })
    const reactivity = yield* Reactivity.make
    const sql = yield* PgClient.make({
      url: Redacted.make(options.url),
      maxConnections: options.maxConnections,
      applicationName: "luallm-agent"
    }).pipe(Effect.provideService(Reactivity.Reactivity, reactivity), Effect.mapError(unavailable))

    // Processes that start together take turns: the migrator's own table is created unguarded.
    yield* Effect.scoped(Effect.gen(function*() {
      const connection = yield* sql.reserve
      yield* connection.executeRaw("SELECT pg_advisory_lock(hashtextextended('luallm-agent:migrations', 0))", [])
      yield* Migrator.make({})({ loader: migrations, table: "luallm_migrations" }).pipe(
        Effect.provideService(SqlClient.SqlClient, sql),
        Effect.ensuring(Effect.ignore(connection.executeRaw("SELECT pg_advisory_unlock(hashtextextended('luallm-agent:migrations', 0))", [])))
      )
    })).pipe(Effect.mapError(unavailable))

    const ioError = (target: string, operation: StateIoError["operation"]) => (error: SqlError) =>
      new StateIoError({ path: target, operation, reason: reasonOf(error) })
    const rowError = (target: string, operation: StateIoError["operation"]) => (error: { readonly message: string }) =>
      new StateIoError({ path: target, operation, reason: `unexpected rows: ${error.message}` })
    const taskPath = (id: string) => `${location} (luallm_tasks, task ${id})`
    const taskJson = makeTaskEncoder()

    /**
     * Audit entries as the rows of a `VALUES` list, `(n, ts, event, task_id, data)`, in order;
     * `data` serialised as the file store writes it.
     */
    const auditRows = (entries: ReadonlyArray<AuditEntry>) =>
      sql.csv(entries.map((entry, n) => sql`(${n}::int, ${entry.ts}, ${entry.event}, ${entry.task_id}, ${auditDataJson(entry.data)}::json)`))
    const auditColumns = sql`AS line(n, ts, event, task_id, data)`

    /** The last `seq` this process saved (or read) per task. */
    const known = yield* makeTaskSlots<number>()
    /** Tasks whose lock a fiber of this process holds. */
    const held = yield* Ref.make(new Map<string, { readonly pid: number; readonly since: string; readonly command: string }>())

    const currentSeq = (id: string) =>
      sql`SELECT seq FROM luallm_tasks WHERE id = ${id}`.pipe(
        Effect.mapError(ioError(taskPath(id), "read")),
        Effect.flatMap((rows) => Effect.mapError(decodeSeq(rows), rowError(taskPath(id), "read"))),
        Effect.map((rows) => rows[0]?.seq ?? 0)
      )

    const save = (task: Task, events: ReadonlyArray<AuditEvent> = []) =>
      known.withSlot(task.id, (slot) =>
        Effect.gen(function*() {
          const cached = yield* Ref.get(slot)
          const previous = Option.isSome(cached) ? cached.value : yield* currentSeq(task.id)
          const seq = previous + 1
          // The lines are the task's (as `inTask(task.id)` would stamp them) and the transition's.
          const ts = new Date(yield* Clock.currentTimeMillis).toISOString()
          const entries = events.map((event): AuditEntry => ({ ts, event: event.event, task_id: task.id, data: { ...event.data, seq } }))
          // One statement, one round trip: the row is replaced only if its seq is still `previous`,
          // and the audit rows are inserted only if it was (joined with `saved`), in their order.
          const logged = entries.length === 0 ? sql`` : sql`, logged AS (
              INSERT INTO luallm_audit (ts, event, task_id, data)
              SELECT line.ts, line.event, line.task_id, line.data
              FROM saved, (VALUES ${auditRows(entries)}) ${auditColumns}
              ORDER BY line.n
            )`
          const rows = yield* sql`
            WITH saved AS (
              INSERT INTO luallm_tasks (id, seq, state, prompt, created_at, updated_at, doc)
              VALUES (${task.id}, ${seq}, ${task.state}, ${asText(task.prompt)}, ${task.created_at}, ${task.updated_at}, ${taskJson(task)}::json)
              ON CONFLICT (id) DO UPDATE
                SET seq = EXCLUDED.seq, state = EXCLUDED.state, updated_at = EXCLUDED.updated_at, doc = EXCLUDED.doc
                WHERE luallm_tasks.seq = ${previous}
              RETURNING seq
            )${logged}
            SELECT seq FROM saved`.pipe(
            Effect.mapError(ioError(taskPath(task.id), "write")),
            Effect.flatMap((rows) => Either.mapLeft(decodeSeqNow(rows), rowError(taskPath(task.id), "write")))
          )
          if (rows.length === 0) {
            yield* Ref.set(slot, Option.none())
            return yield* new StateConflict({ taskId: task.id, expectedSeq: previous, location })
          }
          yield* Ref.set(slot, Option.some(seq))
          return seq
        })
      )

    const load = (id: string) =>
      Effect.gen(function*() {
        const rows = yield* sql`SELECT doc::text AS doc FROM luallm_tasks WHERE id = ${id}`.pipe(
          Effect.mapError(ioError(taskPath(id), "read")),
          Effect.flatMap((rows) => Effect.mapError(decodeDoc(rows), rowError(taskPath(id), "read")))
        )
        const [row] = rows
        if (row === undefined) return Option.none<Task>()
        const decoded = decodeTask(row.doc)
        if (decoded._tag === "Left") {
          return yield* new StateCorrupt({ path: taskPath(id), reason: formatParseError(decoded.left), taskId: id })
        }
        return Option.some(decoded.right)
      })

    const list = Effect.gen(function*() {
      const rows: ReadonlyArray<unknown> = yield* sql`
        SELECT id, state, prompt, created_at, updated_at, seq FROM luallm_tasks ORDER BY updated_at DESC, id`.pipe(
        Effect.mapError(ioError(`${location} (luallm_tasks)`, "read"))
      )
      const tasks: Array<TaskSummary> = []
      const damaged: Array<StateCorrupt> = []
      for (const row of rows) {
        const decoded = decodeSummary(row)
        if (decoded._tag === "Right") tasks.push(decoded.right)
        else {
          const id = typeof row === "object" && row !== null && "id" in row && typeof row.id === "string" ? row.id : null
          damaged.push(new StateCorrupt({ path: taskPath(id ?? "?"), reason: formatParseError(decoded.left), taskId: id }))
        }
      }
      return { tasks, damaged } satisfies TaskList
    })

    const remove = (id: string) =>
      Effect.zipRight(
        known.drop(id, () => Effect.void),
        sql`DELETE FROM luallm_tasks WHERE id = ${id}`.pipe(Effect.asVoid, Effect.mapError(ioError(taskPath(id), "remove")))
      )

    const lock = (id: string, command: string) =>
      Effect.gen(function*() {
        const path = `${location} (luallm_task_locks, task ${id})`
        const mine = (yield* Ref.get(held)).get(id)
        if (mine !== undefined) return yield* new StateLocked({ path, ...mine, host: hostname() })
        const connection = yield* sql.reserve.pipe(Effect.mapError(ioError(path, "lock")))
        const taken = yield* connection.executeValues("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", [`luallm-agent:task:${id}`]).pipe(
          Effect.mapError(ioError(path, "lock")),
          Effect.flatMap((rows) => Effect.mapError(decodeFlag(rows), rowError(path, "lock")))
        )
        if (taken[0]?.[0] !== true) {
          const holders = yield* sql`SELECT pid, host, command, since FROM luallm_task_locks WHERE task_id = ${id}`.pipe(
            Effect.mapError(ioError(path, "lock")),
            Effect.flatMap((rows) => Effect.mapError(decodeHolder(rows), rowError(path, "lock")))
          )
          const holder = holders[0] ?? { pid: -1, host: "unknown", command: "unknown", since: "unknown" }
          return yield* new StateLocked({ path, ...holder })
        }
        yield* Effect.addFinalizer(() =>
          Effect.ignore(connection.executeRaw("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [`luallm-agent:task:${id}`]))
        )
        const record = { pid: process.pid, since: new Date().toISOString(), command }
        yield* sql`
          INSERT INTO luallm_task_locks (task_id, pid, host, command, since)
          VALUES (${id}, ${record.pid}, ${hostname()}, ${asText(command)}, ${record.since})
          ON CONFLICT (task_id) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host, command = EXCLUDED.command, since = EXCLUDED.since`.pipe(
          Effect.mapError(ioError(path, "lock"))
        )
        yield* Effect.acquireRelease(
          Ref.update(held, (all) => new Map(all).set(id, record)),
          () =>
            Effect.all([
              Ref.update(held, (all) => {
                const rest = new Map(all)
                rest.delete(id)
                return rest
              }),
              known.drop(id, () => Effect.void),
              Effect.ignore(sql`DELETE FROM luallm_task_locks WHERE task_id = ${id} AND pid = ${record.pid} AND since = ${record.since}`)
            ], { discard: true })
        )
      })

    const state = {
      save,
      load,
      list,
      remove,
      lock,
      location
    } satisfies StateShape

    const audit = Audit.of({
      log: (event, data) =>
        Effect.flatMap(makeEntry(event, data), (entry) =>
          sql`INSERT INTO luallm_audit (ts, event, task_id, data) VALUES (${entry.ts}, ${entry.event}, ${entry.task_id}, ${auditDataJson(entry.data)}::json)`.pipe(
            Effect.asVoid,
            Effect.mapError((error) => new AuditWriteError({ path: `${location} (luallm_audit)`, reason: reasonOf(error) }))
          )),
      // Every insert is committed when `log` returns.
      flush: Effect.void,
      sync: Effect.void
    })

    const reader = AuditReader.of({
      read: (filter) =>
        Effect.gen(function*() {
          const prefix = filter?.taskPrefix
          const rows: ReadonlyArray<unknown> = yield* (prefix === undefined
            ? sql`SELECT ts, event, task_id, data::text AS data FROM luallm_audit ORDER BY id`
            : sql`SELECT ts, event, task_id, data::text AS data FROM luallm_audit WHERE starts_with(task_id, ${prefix}) ORDER BY id`).pipe(
              Effect.mapError((error) => new AuditReadError({ path: `${location} (luallm_audit)`, reason: reasonOf(error) }))
            )
          const entries: Array<AuditEntry> = []
          const bad: Array<{ readonly file: string; readonly line: number; readonly text: string }> = []
          rows.forEach((row, index) => {
            const decoded = decodeEntry(row)
            if (decoded._tag === "Right") entries.push(decoded.right)
            else bad.push({ file: `${location} (luallm_audit)`, line: index + 1, text: JSON.stringify(row).slice(0, 200) })
          })
          return { entries, bad }
        })
    })

    return { state, audit, reader } satisfies PostgresStore
  })
