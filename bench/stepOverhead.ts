/**
 * Step overhead: what one agent transition costs in the store, against the bare operations the
 * issue names, on the same bytes.
 * - File store: `State.save` of the next version of a task (one node changed, the others the
 *   same objects, as the executor's snapshots are) with its `task.transition` audit line; the
 *   baseline writes the same record and line with bare blocking node:fs calls and nothing else:
 *   tmp file, write, fsync, close, rename, append.
 * - Postgres store (a server started for the bench, fsync on): the same save, one statement that
 *   replaces the task row (checking its seq) and inserts the audit line, through `@effect/sql`;
 *   the baseline is a bare `INSERT … ON CONFLICT` of the same bytes through the `pg` driver.
 * The two sides alternate (`alternating`); the row gives the medians of every operation, their
 * 10th–90th percentiles, and the spread of the rounds' ratios.
 */
import { FileSystem, Path } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Option } from "effect"
import pg from "pg"
import { appendFileSync, closeSync, fsyncSync, openSync, renameSync, writeFileSync } from "node:fs"
import type { Graph, Node } from "../src/core/graph.ts"
import { newTask, type Task } from "../src/core/task.ts"
import { formatAuditLine, inTask, makeFileAudit } from "../src/layers/Audit.ts"
import { makeFileStateStore } from "../src/layers/store/fileState.ts"
import { makePostgresStore } from "../src/layers/store/postgres.ts"
import { postgresMissing, startPostgres } from "../test/support/postgres.ts"
import { alternating, pairedRow } from "./measure.ts"
import type { BenchRow, BenchSize } from "./types.ts"

const created = "2025-01-01T00:00:00.000Z"

/** A model's answer as a node result: a few hundred characters of prose. */
const answer = (id: string) => `Summary for ${id}: ${"the quarterly figures rose in the north and fell in the south; ".repeat(5)}`

/** Node `i` of a 20-node plan: skill reads, llm_call summaries over them, a decision. */
const planNode = (i: number, done: boolean): Node => {
  const common = {
    id: `n${i}`,
    depends_on: i < 5 ? [] : [`n${i - 5}`],
    status: done ? "complete" : "pending",
    retries: 0,
    max_retries: 2,
    ...(done ? { result: answer(`n${i}`) } : {})
  } as const
  if (i < 5) {
    return { ...common, action: "skill", skill_name: "read_csv", skill_args: { path: `~/data/region_${i}.csv`, header: true } }
  }
  if (i === 19) return { ...common, action: "decision", condition: "length(n14) > 100", if_true: "n18", if_false: "n17" }
  return { ...common, action: "llm_call", prompt_template: `Summarise the rows below in three sentences.\n\n{n${i - 5}}` }
}

const sampleGraph: Graph = {
  nodes: Array.from({ length: 20 }, (_, i) => planNode(i, i < 10)),
  metadata: { prompt: "Summarise the regional sales CSVs in ~/data into a report", created_at: created, model: "qwen2.5-coder-7b-instruct" }
}

/** A task in the middle of its graph: half the nodes complete with results (about 7 KB of JSON). */
export const sampleTask: Task = {
  ...newTask("5f0c2d4e-8a1b-4c3d-9e7f-0a1b2c3d4e5f", "Summarise the regional sales CSVs in ~/data into a report", created),
  state: "graph_exec",
  steps: 12,
  plan_attempts: 1,
  model: "qwen2.5-coder-7b-instruct",
  graph: sampleGraph
}

/**
 * `count` successive versions of the sample task, as a running graph saves them: each changes one
 * node of the second half (its status and result) and its step, and shares every other node
 * object with the version before.
 */
const versionsOf = (count: number): ReadonlyArray<Task> => {
  const versions: Array<Task> = []
  let nodes = sampleGraph.nodes
  for (let i = 0; i < count; i++) {
    const changed = 10 + (i % 10)
    nodes = nodes.map((node, k) =>
      k === changed ? { ...node, status: i % 20 < 10 ? "complete" : "pending", result: answer(`n${changed} (version ${i})`) } : node
    )
    versions.push({ ...sampleTask, steps: sampleTask.steps + i + 1, updated_at: new Date(Date.parse(created) + i).toISOString(), graph: { ...sampleGraph, nodes } })
  }
  return versions
}

/** What `Agent.step` logs with the save. */
const transition = { from: "graph_exec", to: "graph_exec", reason: "node complete", step: 12, skill: null }

/** Operation `i`'s task version, record text and audit line: the bytes both sides write. */
interface Transition {
  readonly task: Task
  readonly record: string
  readonly line: string
}

const transitionsOf = (count: number): ReadonlyArray<Transition> =>
  versionsOf(count).map((task, i) => ({
    task,
    record: `${JSON.stringify({ seq: i + 1, task })}\n`,
    line: formatAuditLine({ ts: new Date().toISOString(), event: "task.transition", task_id: task.id, data: { ...transition, step: task.steps, seq: i + 1 } })
  }))

const sizeOf = (size: BenchSize) =>
  size === "full" ? { warmups: 200, rounds: 40, perRound: 10 } : { warmups: 1, rounds: 2, perRound: 2 }

export const stepOverheadBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-" })
    const audit = yield* makeFileAudit({ path: path.join(dir, "audit", "audit.jsonl"), maxSizeBytes: 1024 * 1024 * 1024, maxFiles: 1 })
    const state = yield* makeFileStateStore({ dir: path.join(dir, "state"), audit })
    const options = sizeOf(size)
    const transitions = transitionsOf(options.warmups + options.rounds * options.perRound)
    const at = (i: number): Transition => transitions[i % transitions.length] ?? transitions[0] ?? { task: sampleTask, record: "", line: "" }

    // The same bytes, written with nothing in between: no encoding, no checks, no Effect.
    const bareFile = path.join(dir, "bare_task.json")
    const bareAudit = path.join(dir, "bare_audit.jsonl")
    const bare = (i: number) =>
      Effect.sync(() => {
        const { line, record } = at(i)
        const fd = openSync(`${bareFile}.tmp`, "w")
        writeFileSync(fd, record)
        fsyncSync(fd)
        closeSync(fd)
        renameSync(`${bareFile}.tmp`, bareFile)
        appendFileSync(bareAudit, line)
      })
    const save = (i: number) => {
      const { task } = at(i)
      return state.save(task, [{ event: "task.transition", data: { ...transition, step: task.steps } }]).pipe(inTask(task.id))
    }
    const timings = yield* alternating(save, bare, options)
    return [
      pairedRow(timings, {
        figure: `step overhead: State.save with its audit line, ${(at(0).record.length / 1024).toFixed(0)} KB task`,
        baselineLabel: "bare writeFileSync+fsyncSync+renameSync+appendFileSync of the same bytes",
        unit: "ms",
        target: 1.5
      }),
      ...Option.toArray(yield* postgresRow(size, at))
    ]
  }).pipe(Effect.scoped, Effect.provide(NodeContext.layer), Effect.orDie)

/** The same transitions on the Postgres store, against a bare upsert of the same bytes; `None` without a server to start. */
const postgresRow = (size: BenchSize, at: (i: number) => Transition) =>
  Effect.gen(function*() {
    if (postgresMissing !== undefined) {
      yield* Effect.logWarning(`no Postgres row: ${postgresMissing}`)
      return Option.none<BenchRow>()
    }
    const server = yield* startPostgres({ fsync: true })
    const url = yield* server.createDatabase
    const { state } = yield* makePostgresStore({ url, maxConnections: 4 })
    const client = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        await client.query("CREATE TABLE bare (id text PRIMARY KEY, doc json NOT NULL, line json NOT NULL)")
        return client
      }),
      (client) => Effect.promise(() => client.end())
    )
    const bare = (i: number) => {
      const { line, record, task } = at(i)
      return Effect.promise(() =>
        client.query("INSERT INTO bare (id, doc, line) VALUES ($1, $2::json, $3::json) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, line = EXCLUDED.line", [
          task.id,
          record,
          line
        ])
      )
    }
    const save = (i: number) => {
      const { task } = at(i)
      return state.save(task, [{ event: "task.transition", data: { ...transition, step: task.steps } }]).pipe(inTask(task.id))
    }
    const timings = yield* alternating(save, bare, sizeOf(size))
    return Option.some(pairedRow(timings, {
      figure: `step overhead on Postgres: State.save with its audit line, ${(at(0).record.length / 1024).toFixed(0)} KB task`,
      baselineLabel: "bare INSERT … ON CONFLICT of the same bytes (pg driver)",
      unit: "ms",
      target: 2
    }))
  })
