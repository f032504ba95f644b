/**
 * The task cluster under a runner's death (`npm run cluster-soak [-- --tasks 20 --runners 3]`):
 * one PostgreSQL server (test/support/postgres.ts), several `luallm-agent worker` processes on
 * 127.0.0.1 (the bundled CLI, replaying a recorded model), tasks sent to the cluster, and the
 * runner that drives the most tasks killed with SIGKILL while it works. Then every task must
 * complete exactly once, which the store shows:
 *
 * - each task is saved `complete` with the result of its plan, and its answer came back;
 * - its audit has one `task.start` and one `task.complete`, and its transitions form one chain
 *   (`pending → planning → graph_exec → complete`) with sequence numbers that only grow;
 * - the tasks the dead runner held were driven again by another runner (a `cluster.drive` line
 *   after the kill) without anyone sending them anything;
 * - a node's side effect (a line in the marks file) happened once, except for a node that was
 *   not yet saved as complete when its drive stopped: that one may run again (at least once,
 *   as after a crash of one process), at most once per drive of its task. A node saved as
 *   complete when the runner died never runs again.
 *
 * Each task is a chain of `mark` nodes. A mark appends its tag to the marks file and, once the
 * workspace is set up, works a while, so that the kill lands mid-node. The workspace's model is
 * recorded once (`prepareWorkspace`, with `soak.ts`), and every worker replays it.
 *
 * `runClusterSoak` is shared with test/reliability/cluster.test.ts, which runs a short form.
 */
import { Command as Cli, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { Console, Data, Duration, Effect, Either, Layer, Option, Schedule, Schema } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { createWriteStream } from "node:fs"
import type { AgentConfig } from "../src/core/config.ts"
import { Task } from "../src/core/task.ts"
import { type AuditEntry, AuditReader } from "../src/layers/Audit.ts"
import { type ClusterOutcome, TaskCluster, TaskClusterLive } from "../src/layers/Cluster.ts"
import { clusterSql } from "../src/layers/cluster/sharding.ts"
import { AppConfigFrom } from "../src/layers/Config.ts"
import { FakeReply } from "../src/layers/Llm.ts"
import { State } from "../src/layers/State.ts"
import { type PostgresStartFailed, startPostgres } from "../test/support/postgres.ts"
import { cliBin, prepareWorkspace, type ScriptedTask, type Workspace, workspaceStore } from "./soak.ts"

export interface ClusterSoakOptions {
  readonly tasks: number
  readonly runners: number
  /** Mark nodes per task, and how long each works. */
  readonly nodes: number
  readonly nodeMs: number
  /** An empty directory, and the URL of an empty database. */
  readonly dir: string
  readonly url: string
  readonly log: (line: string) => Effect.Effect<void>
}

export interface ClusterSoakReport {
  readonly tasks: number
  readonly runners: number
  /** The killed runner's address and the tasks it held (driving or waiting for a turn). */
  readonly killed: string
  readonly heldByKilled: number
  /** From the kill to the first drive of one of its tasks by another runner. */
  readonly failoverMs: number
  /** From the first task sent to the last answer. */
  readonly totalMs: number
  /** Drives of all tasks (one per task when nothing happens). */
  readonly drives: number
  /** Side effects that happened again: nodes killed after their mark and before their completion was saved. */
  readonly atLeastOnceReruns: number
  readonly problems: ReadonlyArray<string>
}

export class ClusterSoakFailed extends Data.TaggedError("ClusterSoakFailed")<{ readonly problems: number }> {
  override get message() {
    return `The cluster soak found ${this.problems} problem(s), listed above.`
  }
}

export class ClusterSoakStuck extends Data.TaggedError("ClusterSoakStuck")<{ readonly waiting: string }> {
  override get message() {
    return `The cluster soak timed out waiting until ${this.waiting}; see the workers' logs in its directory.`
  }
}

// ---------------------------------------------------------------------------------------------
// The workspace: N tasks, each a chain of marks

const markSkill = (dataDir: string, ms: number) => `/* @skill {"name": "mark", "version": "1.0.0", "description": "Appends a tag to the marks file, then works a while", "paths": ["${dataDir}/**"], "public_functions": ["run"], "args": {"tag": "string"}} */
export function run({ tag }) {
  fs.appendFile("${dataDir}/marks.txt", tag + "\\n")
  if (fs.exists("${dataDir}/slow")) {
    const until = Date.now() + ${ms}
    while (Date.now() < until) {}
  }
  return tag
}
`

const promptOf = (task: number) => `Mark the chain of task ${task}.`
const tagOf = (task: number, node: number) => `t${task}.n${node}`
const nodeIds = (nodes: number) => Array.from({ length: nodes }, (_, j) => `n${j}`)

const planOf = (task: number, nodes: number) =>
  JSON.stringify({
    nodes: nodeIds(nodes).map((id, j) => ({
      id,
      action: "skill",
      skill_name: "mark",
      skill_args: { tag: tagOf(task, j) },
      depends_on: j === 0 ? [] : [`n${j - 1}`]
    }))
  })

const soakTasks = (options: ClusterSoakOptions) => (dataDir: string): ScriptedTask => {
  const prompts = Array.from({ length: options.tasks }, (_, i) => promptOf(i))
  return {
    prompt: prompts[0] ?? promptOf(0),
    morePrompts: prompts.slice(1),
    skills: [{ name: "mark", code: markSkill(dataDir, options.nodeMs) }],
    script: prompts.map((prompt, i) => FakeReply.content(planOf(i, options.nodes), { when: `Request: ${prompt}` }))
  }
}

/** Runners that notice a dead one within seconds: a short lease, frequent health checks. */
const clusterConfig = (config: AgentConfig): AgentConfig => ({
  ...config,
  cluster: { ...config.cluster, lease_seconds: 6, health_check_seconds: 2 },
  limits: { ...config.limits, max_concurrent_tasks: 2, skill_timeout_seconds: 60 }
})

// ---------------------------------------------------------------------------------------------
// The workers

export interface Worker {
  readonly process: ChildProcess
  readonly index: number
  /** The address it registered, once it said so. */
  address: string | null
}

/** `luallm-agent worker` in the workspace, its output in `worker-<index>.log`; killed when the scope closes. */
export const startWorker = (ws: Workspace, index: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [cliBin, ...ws.globalArgs, "worker"], {
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: ws.dir, NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const worker: Worker = { process: child, index, address: null }
      const log = createWriteStream(`${ws.dir}/worker-${index}.log`)
      child.stdout.pipe(log)
      child.stderr.on("data", (chunk: Buffer) => {
        const text = chunk.toString("utf8")
        log.write(text)
        const said = /worker (\S+): a runner of the task cluster/.exec(text)
        if (said?.[1] !== undefined) worker.address = said[1]
      })
      return worker
    }),
    (worker) => Effect.sync(() => worker.process.kill("SIGKILL"))
  )

/**
 * `count` workers, once each has said its address and all are registered and healthy, and a
 * moment more, for every runner to see the others and take its shards before work arrives.
 */
export const startWorkers = (ws: Workspace, count: number) =>
  Effect.gen(function*() {
    const workers = yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => startWorker(ws, i))
    const client = yield* Layer.build(TaskClusterLive.pipe(Layer.provide(AppConfigFrom(ws.config, { home: ws.dir, cwd: ws.dir }))))
    const tasks = yield* TaskCluster.pipe(Effect.provide(client))
    yield* poll(`${count} workers are registered and healthy`, "90 seconds", Effect.map(tasks.runners.pipe(Effect.orDie), (runners) =>
      runners.filter((r) => r.healthy).length === count && workers.every((w) => w.address !== null) ? Option.some(runners) : Option.none()))
    yield* Effect.sleep("3 seconds")
    return workers
  })

const poll = <A>(waiting: string, limit: Duration.DurationInput, check: Effect.Effect<Option.Option<A>, never, never>) =>
  check.pipe(
    Effect.flatMap(Option.match({ onNone: () => Effect.fail("not yet"), onSome: Effect.succeed })),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo(limit))),
    Effect.mapError(() => new ClusterSoakStuck({ waiting }))
  )

const Held = Schema.Struct({ task_id: Schema.String, pid: Schema.Number, state: Schema.String, doc: Schema.String })

/** The tasks the workers hold now (their lock rows), with the task's state and saved document. */
const heldTasks = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql`SELECT l.task_id, l.pid, t.state, t.doc::text AS doc FROM luallm_task_locks l JOIN luallm_tasks t ON t.id = l.task_id`
  return yield* Schema.decodeUnknown(Schema.Array(Held))(rows)
}).pipe(Effect.orDie)

const decodeTask = Schema.decodeUnknownEither(Schema.parseJson(Task))
const completeNodes = (doc: string): ReadonlyArray<string> =>
  Either.match(decodeTask(doc), { onLeft: () => [], onRight: (task) => (task.graph?.nodes ?? []).filter((n) => n.status === "complete").map((n) => n.id) })

const readMarks = (ws: Workspace) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(`${ws.dataDir}/marks.txt`)).pipe(
    Effect.orElseSucceed(() => ""),
    Effect.map((text) => {
      const counts = new Map<string, number>()
      for (const tag of text.split("\n").filter((line) => line !== "")) counts.set(tag, (counts.get(tag) ?? 0) + 1)
      return counts
    })
  )

// ---------------------------------------------------------------------------------------------
// The checks

const DriveData = Schema.Struct({ runner: Schema.String, message: Schema.String })
const TransitionData = Schema.Struct({ from: Schema.String, to: Schema.String, seq: Schema.Number })
const expectedChain = [["pending", "planning"], ["planning", "graph_exec"], ["graph_exec", "complete"]]

interface Kill {
  readonly at: number
  readonly address: string
  /** The tasks it held, and the nodes each had saved as complete then. */
  readonly held: ReadonlyMap<string, ReadonlyArray<string>>
  /** The marks file then. */
  readonly marks: ReadonlyMap<string, number>
}

/** What one task's audit lines, saved state and marks say; problems are pushed to `problems`. */
const checkTask = (
  options: ClusterSoakOptions,
  index: number,
  id: string,
  lines: ReadonlyArray<AuditEntry>,
  saved: Option.Option<Task>,
  marks: ReadonlyMap<string, number>,
  kill: Kill,
  problems: Array<string>
) => {
  const where = `task ${index} (${id.slice(0, 8)})`
  const events = (name: string) => lines.filter((line) => line.event === name)
  const decode = <A, I>(schema: Schema.Schema<A, I>) => (line: AuditEntry) => Schema.decodeUnknownOption(schema)(line.data)
  if (events("task.start").length !== 1) problems.push(`${where}: ${events("task.start").length} task.start lines, not 1`)
  if (events("task.complete").length !== 1) problems.push(`${where}: ${events("task.complete").length} task.complete lines, not 1`)
  const transitions = events("task.transition").flatMap((line) => Option.toArray(decode(TransitionData)(line)))
  const chain = transitions.map((t) => [t.from, t.to])
  if (JSON.stringify(chain) !== JSON.stringify(expectedChain)) problems.push(`${where}: its transitions are ${JSON.stringify(chain)}, not ${JSON.stringify(expectedChain)}`)
  const seqs = [1, ...transitions.map((t) => t.seq)]
  if (seqs.some((seq, i) => i > 0 && seq <= (seqs[i - 1] ?? 0))) problems.push(`${where}: sequence numbers ${seqs.join(", ")} do not only grow`)
  const result = { [`n${options.nodes - 1}`]: tagOf(index, options.nodes - 1) }
  Option.match(saved, {
    onNone: () => problems.push(`${where}: not saved`),
    onSome: (task) => {
      if (task.state !== "complete" || JSON.stringify(task.result) !== JSON.stringify(result)) {
        problems.push(`${where}: saved ${task.state} with ${JSON.stringify(task.result)}, not complete with ${JSON.stringify(result)}`)
      }
    }
  })
  const drives = events("cluster.drive").flatMap((line) => Option.toArray(Option.map(decode(DriveData)(line), (data) => ({ ...data, at: Date.parse(line.ts) }))))
  const heldNodes = kill.held.get(id)
  if (heldNodes !== undefined && !drives.some((drive) => drive.at >= kill.at && drive.runner !== kill.address)) {
    problems.push(`${where}: held by the killed runner ${kill.address}, but no other runner drove it after the kill (drives: ${JSON.stringify(drives)})`)
  }
  let reruns = 0
  nodeIds(options.nodes).forEach((node, j) => {
    const tag = tagOf(index, j)
    const runs = marks.get(tag) ?? 0
    if (runs === 0) problems.push(`${where}: node ${node} never ran`)
    if (runs > drives.length) problems.push(`${where}: node ${node} ran ${runs} times in ${drives.length} drives`)
    if (heldNodes?.includes(node) === true && runs !== (kill.marks.get(tag) ?? 0)) {
      problems.push(`${where}: node ${node} was saved as complete when its runner died, and ran again after (${runs} runs)`)
    }
    reruns += Math.max(0, runs - 1)
  })
  return { drives: drives.length, reruns, firstOtherDrive: drives.filter((d) => d.at >= kill.at && d.runner !== kill.address).map((d) => d.at).sort()[0] }
}

// ---------------------------------------------------------------------------------------------
// The soak

export const runClusterSoak = (options: ClusterSoakOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const ws = yield* prepareWorkspace(options.dir, soakTasks(options), { store: options.url, adjust: clusterConfig })
    // The recording ran every task once: its marks are not the cluster's.
    yield* fs.remove(`${ws.dataDir}/marks.txt`, { force: true })
    yield* fs.writeFileString(`${ws.dataDir}/slow`, "")
    const store = yield* workspaceStore(ws)
    const sql = yield* Layer.build(clusterSql(options.url))
    const client = yield* Layer.build(TaskClusterLive.pipe(Layer.provide(AppConfigFrom(ws.config, { home: ws.dir, cwd: ws.dir }))))

    const workers = yield* startWorkers(ws, options.runners)
    const tasks = yield* TaskCluster.pipe(Effect.provide(client))
    yield* options.log(`${options.runners} workers: ${workers.map((w) => `${w.address} (pid ${w.process.pid})`).join(", ")}`)

    const started = Date.now()
    const submitted = Array.from({ length: options.tasks }, (_, i) => tasks.submit(promptOf(i)))
    const answers = yield* Effect.forkScoped(Effect.forEach(submitted, (task) => Effect.either(task.outcome), { concurrency: "unbounded" }))

    // The victim: the runner driving the most tasks that have done some of their work.
    const victim = yield* poll("a runner drives a task half-way", "120 seconds", Effect.map(heldTasks.pipe(Effect.provide(sql)), (held) => {
      const working = held.filter((row) => row.state === "graph_exec" && completeNodes(row.doc).length > 0)
      const byPid = new Map<number, number>()
      for (const row of working) byPid.set(row.pid, (byPid.get(row.pid) ?? 0) + 1)
      const [pid] = [...byPid.entries()].sort((a, b) => b[1] - a[1])[0] ?? []
      return Option.fromNullable(workers.find((w) => w.process.pid === pid))
    }))
    victim.process.kill("SIGKILL")
    const killedAt = Date.now()
    const held = (yield* heldTasks.pipe(Effect.provide(sql))).filter((row) => row.pid === victim.process.pid)
    const kill: Kill = {
      at: killedAt,
      address: victim.address ?? "?",
      held: new Map(held.map((row) => [row.task_id, completeNodes(row.doc)])),
      marks: yield* readMarks(ws)
    }
    yield* options.log(`killed ${kill.address} (pid ${victim.process.pid}) holding ${held.length} task(s), ${Date.now() - started} ms after the first task was sent`)

    const outcomes = yield* answers.await.pipe(
      Effect.flatten,
      Effect.timeoutFail({ duration: "240 seconds", onTimeout: () => new ClusterSoakStuck({ waiting: "every task is answered" }) })
    )
    const totalMs = Date.now() - started
    const problems: Array<string> = []
    outcomes.forEach((outcome, i) =>
      Either.match(outcome, {
        onLeft: (error) => problems.push(`task ${i}: the cluster answered with an error: ${error.message}`),
        onRight: (answer: ClusterOutcome) => {
          if (answer.task.state !== "complete") problems.push(`task ${i}: answered ${answer.task.state}, not complete`)
        }
      }))

    const marks = yield* readMarks(ws)
    const reader = yield* AuditReader.pipe(Effect.provide(store))
    const state = yield* State.pipe(Effect.provide(store))
    const { bad, entries } = yield* reader.read()
    for (const line of bad) problems.push(`audit line ${line.line} is not a valid entry: ${line.text}`)
    const list = yield* state.list
    for (const damaged of list.damaged) problems.push(`a saved task does not decode: ${damaged.message}`)
    if (list.tasks.length !== options.tasks) problems.push(`${list.tasks.length} tasks are saved where ${options.tasks} were sent`)
    let drives = 0
    let reruns = 0
    const others: Array<number> = []
    for (const [i, task] of submitted.entries()) {
      const lines = entries.filter((entry) => entry.task_id === task.id)
      const checked = checkTask(options, i, task.id, lines, yield* state.load(task.id), marks, kill, problems)
      drives += checked.drives
      reruns += checked.reruns
      if (checked.firstOtherDrive !== undefined && kill.held.has(task.id)) others.push(checked.firstOtherDrive)
    }
    const strays = [...marks.keys()].filter((tag) => !submitted.some((_, i) => tag.startsWith(`t${i}.`)))
    if (strays.length > 0) problems.push(`marks of no task: ${strays.join(", ")}`)
    return {
      tasks: options.tasks,
      runners: options.runners,
      killed: kill.address,
      heldByKilled: kill.held.size,
      failoverMs: others.length === 0 ? -1 : Math.min(...others) - killedAt,
      totalMs,
      drives,
      atLeastOnceReruns: reruns,
      problems
    } satisfies ClusterSoakReport
  }).pipe(Effect.scoped)

export const clusterSoakPassed = (report: ClusterSoakReport): boolean => report.problems.length === 0

export const summarizeClusterSoak = (report: ClusterSoakReport): string =>
  [
    `${report.tasks} tasks on ${report.runners} runners: all answered in ${report.totalMs} ms; ` +
    `${report.killed} killed holding ${report.heldByKilled} task(s), picked up by another runner ${report.failoverMs} ms after the kill`,
    `${report.drives} drives for ${report.tasks} tasks; ${report.atLeastOnceReruns} at-least-once re-runs ` +
    `(nodes killed after their side effect, before their completion was saved); ${report.problems.length} problems`
  ].join("\n")

// ---------------------------------------------------------------------------------------------
// `node dist/clusterSoak.cjs [--tasks N] [--runners N] [--nodes N] [--node-ms N]`

const clusterSoakCommand = Cli.make(
  "cluster-soak",
  {
    tasks: Options.integer("tasks").pipe(Options.withDefault(20), Options.withDescription("How many tasks to send")),
    runners: Options.integer("runners").pipe(Options.withDefault(3), Options.withDescription("How many worker processes")),
    nodes: Options.integer("nodes").pipe(Options.withDefault(5), Options.withDescription("Mark nodes per task")),
    nodeMs: Options.integer("node-ms").pipe(Options.withDefault(150), Options.withDescription("How long each mark works"))
  },
  ({ nodeMs, nodes, runners, tasks }) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-cluster-soak-" })
      const url = yield* Effect.flatMap(startPostgres({ fsync: false }), (server) => server.createDatabase)
      yield* Console.log(`cluster soak: ${tasks} tasks on ${runners} workers, one killed with SIGKILL mid-run, in ${dir}`)
      const report = yield* runClusterSoak({ tasks, runners, nodes, nodeMs, dir, url, log: Console.log })
      for (const problem of report.problems) yield* Console.error(`✗ ${problem}`)
      yield* Console.log(summarizeClusterSoak(report))
      if (!clusterSoakPassed(report)) return yield* new ClusterSoakFailed({ problems: report.problems.length })
    }).pipe(Effect.scoped)
)

// By the entry's name: in a bundle every module's import.meta.url is the bundle's.
const isMain = /(^|[\\/])clusterSoak\.(cjs|ts)$/.test(process.argv[1] ?? "")

if (isMain) {
  Cli.run(clusterSoakCommand, { name: "cluster-soak", version: "1" })(process.argv).pipe(
    Effect.catchIf(
      (error): error is ClusterSoakFailed | ClusterSoakStuck | PostgresStartFailed =>
        error._tag === "ClusterSoakFailed" || error._tag === "ClusterSoakStuck" || error._tag === "PostgresStartFailed",
      (error) => Effect.zipRight(Console.error(`✗ ${error.message}`), Effect.sync(() => (process.exitCode = 1)))
    ),
    Effect.provide(NodeContext.layer),
    NodeRuntime.runMain
  )
}
