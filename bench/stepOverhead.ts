/**
 * Step overhead: what one agent transition costs in the store.
 * - File store: the `task.transition` line appended to the audit log, then the task's record
 *   appended to its journal (one write, one fsync on a handle kept open); the baseline writes the
 *   same bytes with bare blocking node:fs calls (tmp file, write, fsync, rename, append).
 * - Postgres store (a server started for the bench, fsync on): the one statement that replaces
 *   the task row (checking its seq) and inserts the audit line, through `@effect/sql`; the
 *   baseline is a bare `INSERT … ON CONFLICT` of the same bytes through the `pg` driver.
 */
import { FileSystem, Path } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Option } from "effect"
import pg from "pg"
import { appendFileSync, closeSync, fsyncSync, openSync, renameSync, writeFileSync } from "node:fs"
import type { Node } from "../src/core/graph.ts"
import { newTask, type Task } from "../src/core/task.ts"
import { formatAuditLine, inTask, makeFileAudit } from "../src/layers/Audit.ts"
import { makeFileStateStore } from "../src/layers/store/fileState.ts"
import { makePostgresStore } from "../src/layers/store/postgres.ts"
import { postgresMissing, startPostgres } from "../test/support/postgres.ts"
import { interleavedMedians, ratioRow } from "./measure.ts"
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

/** A task in the middle of its graph: half the nodes complete with results (about 10 KB of JSON). */
export const sampleTask: Task = {
  ...newTask("5f0c2d4e-8a1b-4c3d-9e7f-0a1b2c3d4e5f", "Summarise the regional sales CSVs in ~/data into a report", created),
  state: "graph_exec",
  steps: 12,
  plan_attempts: 1,
  model: "qwen2.5-coder-7b-instruct",
  graph: {
    nodes: Array.from({ length: 20 }, (_, i) => planNode(i, i < 10)),
    metadata: { prompt: "Summarise the regional sales CSVs in ~/data into a report", created_at: created, model: "qwen2.5-coder-7b-instruct" }
  }
}

/** What `Agent.step` logs with the save. */
const transition = { from: "graph_exec", to: "graph_exec", reason: "node n10 complete", step: 12, skill: null }

export const stepOverheadBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-" })
    const auditPath = path.join(dir, "audit", "audit.jsonl")
    const audit = yield* makeFileAudit({ path: auditPath, maxSizeBytes: 1024 * 1024 * 1024, maxFiles: 1 })
    const state = yield* makeFileStateStore({ dir: path.join(dir, "state"), audit })

    // The same bytes, written with nothing in between: no encoding, no checks, no Effect.
    const text = JSON.stringify({ seq: 12, task: sampleTask })
    const line = formatAuditLine({
      ts: new Date().toISOString(),
      event: "task.transition",
      task_id: sampleTask.id,
      data: { ...transition, seq: 12 }
    })
    const bareFile = path.join(dir, "bare_task.json")
    const bareAudit = path.join(dir, "bare_audit.jsonl")
    const bareTransition = Effect.sync(() => {
      const fd = openSync(`${bareFile}.tmp`, "w")
      writeFileSync(fd, text)
      fsyncSync(fd)
      closeSync(fd)
      renameSync(`${bareFile}.tmp`, bareFile)
      appendFileSync(bareAudit, line)
    })
    const agentTransition = state.save(sampleTask, [{ event: "task.transition", data: transition }]).pipe(inTask(sampleTask.id))

    // The first writes create the files, and the first few run before the JIT has compiled the
    // Effect runtime's hot paths: neither is what a step costs in a running agent.
    const [warmups, runs] = size === "full" ? [30, 100] : [1, 3]
    yield* Effect.repeatN(Effect.zip(agentTransition, bareTransition), warmups)
    const timings = yield* interleavedMedians({ agent: agentTransition, bare: bareTransition }, runs)

    return [
      ratioRow({
        figure: `step overhead: State.save with its audit line, ${(text.length / 1024).toFixed(0)} KB task`,
        value: timings.agent,
        baseline: timings.bare,
        baselineLabel: "bare writeFileSync+fsyncSync+renameSync+appendFileSync",
        unit: "ms",
        target: 1.5
      }),
      ...Option.toArray(yield* postgresRow(size, text, line))
    ]
  }).pipe(Effect.scoped, Effect.provide(NodeContext.layer), Effect.orDie)

/** The same transition on the Postgres store, against a bare upsert of the same bytes; `None` without a server to start. */
const postgresRow = (size: BenchSize, text: string, line: string) =>
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
    const bareUpsert = Effect.promise(() =>
      client.query("INSERT INTO bare (id, doc, line) VALUES ($1, $2::json, $3::json) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, line = EXCLUDED.line", [
        sampleTask.id,
        text,
        line
      ])
    )
    const agentTransition = state.save(sampleTask, [{ event: "task.transition", data: transition }]).pipe(inTask(sampleTask.id))
    const [warmups, runs] = size === "full" ? [30, 100] : [1, 3]
    yield* Effect.repeatN(Effect.zip(agentTransition, bareUpsert), warmups)
    const timings = yield* interleavedMedians({ agent: agentTransition, bare: bareUpsert }, runs)
    return Option.some(ratioRow({
      figure: `step overhead on Postgres: State.save with its audit line, ${(text.length / 1024).toFixed(0)} KB task`,
      value: timings.agent,
      baseline: timings.bare,
      baselineLabel: "bare INSERT … ON CONFLICT of the same bytes (pg driver)",
      unit: "ms",
      target: 2
    }))
  })
