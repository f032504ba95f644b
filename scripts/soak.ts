/**
 * The crash-safety soak (`npm run soak [-- --kills N --seed S --store postgres --verbose]`): runs
 * the bundled CLI on a ten-node task (eight skill nodes, two of them parallel, a decision and an
 * llm_call) and kills it with SIGKILL at seeded random moments, then `resume`s until the task
 * completes, over and over, against the file store or the Postgres store (`--store postgres`
 * starts a server of its own, see test/support/postgres.ts). After every kill it reads the
 * store back (through `State` and `AuditReader`, as the CLI does) and checks what a crash may
 * not damage:
 *
 * - the task is absent (nothing saved yet) or decodes as a `Task`;
 * - every audit line is a whole, valid entry. Zero tolerance: in the file store each line is
 *   one short `write(2)` in append mode, which a signal cannot tear on Linux, so a torn line is
 *   a bug; in the Postgres store a line is a row, committed or not;
 * - no node that was saved as complete ran again ("duplicated"), and no node, result or audit
 *   line that was saved is gone later ("lost").
 *
 * Side effects are counted with the `mark` skill, which appends its tag to a file and then
 * works for a while. A node killed after its side effect and before its completion was saved
 * runs again on resume: that is at-least-once execution, which no agent can avoid for a skill
 * that is not idempotent. Those re-runs are counted and reported separately, and each one is
 * checked to belong to a node that was not saved as complete.
 *
 * The model is deterministic: a scripted llama-server (`ScriptedServer`) is recorded once per
 * soak into a cassette (in-process, through the Live LLM layer over `HttpClientRecord`), and every
 * CLI process replays its HTTP exchanges with `--llm replay:`, through the same Live layer.
 * The kill delays come from a seeded PRNG, so a soak is reproducible up to the machine's
 * timing (the same seed gives the same delays; where they land depends on how fast it runs).
 *
 * `prepareWorkspace` (a scripted task the CLI runs offline) is shared with the reliability tests.
 */
import { Command as Cli, Options } from "@effect/cli"
import { Command, FileSystem } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Console, Context, Data, Duration, Effect, Either, Fiber, Layer, Option, Redacted, Stream } from "effect"
import { Agent, AgentDefault } from "../src/Agent.ts"
import { type AgentConfig, configInside, postgresUrl } from "../src/core/config.ts"
import type { Task } from "../src/core/task.ts"
import { AuditLive, AuditReader, AuditReaderLive, AuditTest } from "../src/layers/Audit.ts"
import { AppConfigFrom } from "../src/layers/Config.ts"
import { FakeReply, LlmLive } from "../src/layers/Llm.ts"
import { HttpClientRecord } from "../src/layers/llm/cassette.ts"
import { ScriptedServer } from "../src/layers/llm/scripted.ts"
import { LuallmTest } from "../src/layers/Luallm.ts"
import { State, StateLive } from "../src/layers/State.ts"
import { builtinSkillsDir, packageRoot } from "../src/packageRoot.ts"
import { type PostgresStartFailed, startPostgres } from "../test/support/postgres.ts"

// ---------------------------------------------------------------------------------------------
// A workspace where the bundled CLI runs a scripted task offline

/** A task the CLI can run with no model: trusted skills, the request, the scripted model's answers. */
export interface ScriptedTask {
  readonly prompt: string
  /** More requests recorded into the same cassette, after `prompt`, for tests that run several tasks. */
  readonly morePrompts?: ReadonlyArray<string>
  readonly skills: ReadonlyArray<{ readonly name: string; readonly code: string }>
  readonly script: ReadonlyArray<FakeReply>
}

export interface Workspace {
  readonly dir: string
  /** Where skills may read and write (`allowed_paths`). */
  readonly dataDir: string
  readonly prompt: string
  /** The config every CLI process reads (`store` included). */
  readonly config: AgentConfig
  /** `--config <file> --llm replay:<cassette>`: the global options of every CLI call. */
  readonly globalArgs: ReadonlyArray<string>
}

const model = "scripted-model"

/**
 * Runs the task's requests once in this process with the scripted model, recording its answers.
 * Always on the file store: what is recorded is the model's side of the session.
 */
const recordCassette = (config: AgentConfig, dir: string, cassette: string, task: ScriptedTask) =>
  Effect.gen(function*() {
    const outcomes = yield* Effect.forEach([task.prompt, ...(task.morePrompts ?? [])], (prompt) =>
      Effect.flatMap(Agent, (agent) => agent.run(prompt))).pipe(
        Effect.provide(
          AgentDefault.pipe(
            Layer.provideMerge(LlmLive.pipe(Layer.provide(HttpClientRecord(cassette)), Layer.provide(ScriptedServer(task.script, { model })))),
            Layer.provideMerge(LuallmTest({ servers: [] })),
            Layer.provideMerge(AuditTest),
            Layer.provideMerge(AppConfigFrom({ ...config, store: "file" }, { home: dir, cwd: dir }))
          )
        )
      )
    const failed = outcomes.find((outcome) => outcome.task.state === "failed")
    if (failed !== undefined) {
      return yield* new SoakSetupFailed({ step: "recording the cassette", detail: failed.task.error ?? failed.task.state })
    }
  })

/** The store's tables, emptied (for a Postgres store; the file store's live in state_dir). */
const truncateTables = (url: string) =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 })
    yield* sql`TRUNCATE luallm_tasks, luallm_task_locks, luallm_audit`.pipe(
      // Before the first process ran, there are no tables yet.
      Effect.catchAll(() => Effect.void)
    )
  })).pipe(Effect.provide(Reactivity.layer))

/** Discards every saved task and the audit log, in whichever store the workspace uses. */
export const clearTask = (ws: Workspace) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    yield* fs.remove(ws.config.state_dir, { recursive: true, force: true })
    const url = postgresUrl(ws.config.store)
    if (url !== null) yield* truncateTables(url)
  })

export interface WorkspaceOptions {
  /** `store` for the CLI processes: "file" (the default) or a postgres:// URL. */
  readonly store?: string
  /** Changes to the config every CLI process reads. */
  readonly adjust?: (config: AgentConfig) => AgentConfig
}

/**
 * Sets up `dir` for `luallm-agent --config … --llm replay:…`: a config with everything inside
 * `dir`, the task's skills promoted, and a cassette recorded from one in-process run of the
 * task (whose state is then discarded), so every CLI process replays the same answers.
 */
export const prepareWorkspace = (dir: string, makeTask: (dataDir: string) => ScriptedTask, options: WorkspaceOptions = {}) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dataDir = `${dir}/data`
    const task = makeTask(dataDir)
    const base = configInside(dir, { builtinSkillsDir, allowedPaths: [`${dataDir}/**`] })
    // A replay answers whatever the address: this one only names the recorded server.
    const config: AgentConfig = (options.adjust ?? ((c) => c))({
      ...base,
      store: options.store ?? "file",
      llm: { ...base.llm, base_url: "http://127.0.0.1:8089" },
      approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" }
    })
    const configFile = `${dir}/config.json`
    const cassette = `${dir}/cassette.jsonl`
    yield* fs.makeDirectory(dataDir, { recursive: true })
    yield* fs.makeDirectory(config.skills.allowed_dir, { recursive: true })
    for (const skill of task.skills) yield* fs.writeFileString(`${config.skills.allowed_dir}/${skill.name}.js`, skill.code)
    yield* fs.writeFileString(configFile, JSON.stringify(config, null, 2))
    yield* recordCassette(config, dir, cassette, task)
    const ws: Workspace = {
      dir,
      dataDir,
      prompt: task.prompt,
      config,
      globalArgs: ["--config", configFile, "--llm", `replay:${cassette}`]
    }
    yield* clearTask(ws)
    return ws
  })

/** The workspace's store as the CLI sees it (for the scope), to read back what the processes saved. */
export const workspaceStore = (ws: Workspace) =>
  Layer.build(
    StateLive.pipe(
      Layer.provideMerge(AuditLive),
      Layer.provideMerge(AuditReaderLive),
      Layer.provideMerge(AppConfigFrom(ws.config, { home: ws.dir, cwd: ws.dir }))
    )
  )

export const cliBin = `${packageRoot}/bin/luallm-agent.cjs`

// ---------------------------------------------------------------------------------------------
// The soak's task

/** Appends its tag to the marks file (the side effect), then works ~40 ms, so kills land mid-node. */
const markSkill = (dataDir: string) => `/* @skill {"name": "mark", "version": "1.0.0", "description": "Appends a tag to the marks file and returns it with what came before", "paths": ["${dataDir}/**"], "public_functions": ["run"], "args": {"tag": "string", "after": "the marks this one follows"}} */
export function run({ tag, after }) {
  fs.appendFile("${dataDir}/marks.txt", tag + "\\n")
  const until = Date.now() + 40
  while (Date.now() < until) {}
  const before = after === undefined ? [] : [].concat(after)
  return before.length === 0 ? tag : tag + "<" + before.join(",") + ">"
}
`

const mark = (id: string, after: ReadonlyArray<string>, dependsOn: ReadonlyArray<string> = after) => ({
  id,
  action: "skill",
  skill_name: "mark",
  skill_args: after.length === 0 ? { tag: id } : { tag: id, after: after.map((dep) => `{${dep}}`) },
  depends_on: dependsOn
})

/**
 * a and b in parallel, two chains below them, a decision whose false branch (h) is skipped,
 * and an llm_call at the end: eight skill nodes, seven of which run.
 */
const plan = {
  nodes: [
    mark("a", []),
    mark("b", []),
    mark("c", ["a"]),
    mark("d", ["a", "b"]),
    mark("e", ["c"]),
    mark("f", ["d"]),
    { id: "check", action: "decision", condition: "{f} contains \"d<\"", if_true: "g", if_false: "h", depends_on: ["f"] },
    mark("g", ["e", "f"], ["check", "e", "f"]),
    mark("h", [], ["check"]),
    { id: "report", action: "llm_call", prompt_template: "Report: the last mark was {g}.", depends_on: ["g"] }
  ]
}
const skillNodes = ["a", "b", "c", "d", "e", "f", "g", "h"]
/** The skill nodes that run (h is on the branch not taken). */
const runningNodes = ["a", "b", "c", "d", "e", "f", "g"]

const soakTask = (dataDir: string): ScriptedTask => ({
  prompt: "Mark a to h in dependency order and report the last mark.",
  skills: [{ name: "mark", code: markSkill(dataDir) }],
  script: [
    FakeReply.content(JSON.stringify(plan, null, 2), { when: "Request:" }),
    FakeReply.content("The last mark was g, after e and f.", { when: "Report:" })
  ]
})

const marksFile = (ws: Workspace) => `${ws.dataDir}/marks.txt`

/** A fresh task: no saved state, no audit, no marks. */
const freshTask = (ws: Workspace) =>
  Effect.zipRight(clearTask(ws), Effect.flatMap(FileSystem.FileSystem, (fs) => fs.remove(marksFile(ws), { force: true })))

// ---------------------------------------------------------------------------------------------
// The CLI, killed or not

export class SoakSetupFailed extends Data.TaggedError("SoakSetupFailed")<{ readonly step: string; readonly detail: string }> {
  override get message() {
    return `The soak could not start: ${this.step} failed: ${this.detail}`
  }
}

export class SoakFailed extends Data.TaggedError("SoakFailed")<{ readonly problems: number }> {
  override get message() {
    return `The soak found ${this.problems} problem(s), listed above.`
  }
}

type ProcessEnd = { readonly _tag: "Exited"; readonly code: number; readonly stderr: string } | { readonly _tag: "Killed" }

/** Runs `luallm-agent <command>` replaying the cassette; SIGKILLs it after `killAfterMs` unless it ended. */
const runCli = (ws: Workspace, command: "run" | "resume", killAfterMs: number) =>
  Effect.scoped(
    Effect.gen(function*() {
      const args = command === "run" ? ["run", ws.prompt, "--yes"] : ["resume"]
      const child = yield* Command.start(
        Command.make(process.execPath, cliBin, ...ws.globalArgs, ...args).pipe(Command.env({ HOME: ws.dir, NO_COLOR: "1" }))
      )
      // Both pipes are drained so that a chatty child never blocks on a full pipe.
      const stderr = yield* Effect.fork(Stream.mkString(Stream.decodeText(child.stderr)))
      yield* Effect.fork(Stream.runDrain(child.stdout))
      const exited = Effect.either(child.exitCode)
      const killed = Effect.sleep(`${killAfterMs} millis`).pipe(Effect.zipRight(Effect.ignore(child.kill("SIGKILL"))), Effect.zipRight(exited))
      // The exit code is a signal's failure when the kill won; a process that ended first has its code.
      const end = yield* Effect.raceFirst(exited, killed)
      if (Either.isLeft(end)) return { _tag: "Killed" } satisfies ProcessEnd
      return { _tag: "Exited", code: end.right, stderr: yield* Effect.orDie(Fiber.join(stderr)) } satisfies ProcessEnd
    })
  )

// ---------------------------------------------------------------------------------------------
// What a kill left behind

interface Snapshot {
  /** `None` before the first save; `Left` with the reason when the task does not decode. */
  readonly task: Option.Option<Either.Either<Task, string>>
  readonly auditLines: number
  readonly badAuditLines: ReadonlyArray<string>
  /** How many times each tag's side effect happened. */
  readonly marks: ReadonlyMap<string, number>
}

const readIfPresent = (file: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.flatMap(fs.exists(file), (present) => (present ? Effect.map(fs.readFileString(file), Option.some) : Effect.succeed(Option.none<string>()))))

/** What the store holds now, read as the CLI reads it; a failure to read is itself a finding. */
const snapshot = (ws: Workspace, store: Context.Context<State | AuditReader>) =>
  Effect.gen(function*() {
    const state = yield* State
    const list = yield* Effect.either(state.list)
    const problems = Either.match(list, { onLeft: (error) => [error.message], onRight: (l) => l.damaged.map((d) => d.message) })
    const tasks = Either.match(list, { onLeft: () => [], onRight: (l) => l.tasks })
    if (tasks.length > 1) problems.push(`${tasks.length} tasks are saved where one was run`)
    const [only] = tasks
    const loaded = only === undefined ? Option.none<Either.Either<Task, string>>() : Option.some(
      Either.flatMap(
        Either.mapLeft(yield* Effect.either(state.load(only.id)), (error) => error.message),
        (task) => Option.match(task, { onNone: () => Either.left(`task ${only.id} is listed but does not load`), onSome: Either.right })
      )
    )
    const [first] = problems
    const task: Option.Option<Either.Either<Task, string>> = first === undefined ? loaded : Option.some(Either.left(first))
    const read = yield* Effect.either((yield* AuditReader).read())
    const entries = Either.match(read, { onLeft: () => [], onRight: (r) => r.entries })
    const badAuditLines = Either.match(read, {
      onLeft: (error) => [error.message],
      onRight: (r) => r.bad.map((line) => `${line.file}:${line.line}: ${line.text}`)
    })
    // In the file store, text after the last newline is a line cut short.
    const auditText = ws.config.store === "file" ? Option.getOrElse(yield* readIfPresent(ws.config.audit.path), () => "") : ""
    const tail = auditText.endsWith("\n") || auditText === "" ? [] : [`(unterminated) ${auditText.slice(auditText.lastIndexOf("\n") + 1)}`]
    const marksText = Option.getOrElse(yield* readIfPresent(marksFile(ws)), () => "")
    const marks = new Map<string, number>()
    for (const tag of marksText.split("\n").filter((line) => line !== "")) marks.set(tag, (marks.get(tag) ?? 0) + 1)
    return {
      task,
      auditLines: entries.length + badAuditLines.length,
      badAuditLines: [...badAuditLines, ...tail],
      marks
    } satisfies Snapshot
  }).pipe(Effect.provide(store))

// ---------------------------------------------------------------------------------------------
// The soak

export interface SoakReport {
  readonly seed: number
  readonly kills: number
  readonly resumes: number
  /** `run` started again because a kill came before the first save. */
  readonly restarts: number
  /** Tasks that completed after at least one kill, and tasks no kill reached. */
  readonly killedTasks: number
  readonly uninterruptedTasks: number
  /** Saved completions, results, tasks or audit lines that were gone later. */
  readonly lost: number
  /** Runs of a node after it was saved as complete. */
  readonly duplicated: number
  /** Re-runs of nodes killed after their side effect and before their completion was saved. */
  readonly atLeastOnceReruns: number
  readonly corruptStates: number
  readonly badAuditLines: number
  /** Tasks or nodes whose outcome differs from the uninterrupted run's. */
  readonly resultMismatches: number
  /** One line per problem found; empty when the soak passed. */
  readonly problems: ReadonlyArray<string>
}

/** The counters of the report, updated as the soak goes. */
type Counts = { -readonly [K in keyof Omit<SoakReport, "seed" | "problems">]: number }

export const soakPassed = (report: SoakReport): boolean => report.problems.length === 0

export const summarize = (report: SoakReport): string =>
  [
    `${report.kills} kills, ${report.resumes} resumes, ${report.lost} lost, ${report.duplicated} duplicated`,
    `${report.atLeastOnceReruns} at-least-once re-runs (nodes killed after their side effect, before their completion was saved)`,
    `${report.killedTasks} tasks completed after kills (${report.uninterruptedTasks} more finished before their kill came); ` +
    `${report.restarts} restarts of \`run\` killed before the first save; ${report.corruptStates} undecodable state files, ` +
    `${report.badAuditLines} bad audit lines, ${report.resultMismatches} outcomes unlike the uninterrupted run's (seed ${report.seed})`
  ].join("\n")

/** Park–Miller: small, seeded, exact in doubles; values in (0, 1). */
const seededRandom = (seed: number) => {
  let state = (Math.abs(Math.trunc(seed)) % 2147483646) + 1
  return () => (state = (state * 16807) % 2147483647) / 2147483647
}

/** What a completed task must equal: the uninterrupted run's node outcomes and result. */
interface Outcome {
  readonly result: unknown
  readonly nodes: ReadonlyArray<readonly [string, string, unknown]>
}

const outcomeOf = (task: Task): Outcome => ({
  result: task.result,
  nodes: (task.graph?.nodes ?? []).map((node) => [node.id, node.status, node.result] as const)
})

const savedTask = (snap: Snapshot): Option.Option<Task> => Option.flatMap(snap.task, Either.getRight)

/**
 * The uninterrupted run, twice: the first fills the CLI's compile cache, the second is timed.
 * Its outcome is what every killed-and-resumed task must end with; its time bounds the kill delays.
 */
const uninterruptedRun = (ws: Workspace, store: Context.Context<State | AuditReader>) =>
  Effect.gen(function*() {
    yield* runCli(ws, "run", 600_000)
    yield* freshTask(ws)
    const [elapsed, end] = yield* Effect.timed(runCli(ws, "run", 600_000))
    const snap = yield* snapshot(ws, store)
    const task = savedTask(snap)
    if (end._tag !== "Exited" || end.code !== 0 || Option.isNone(task) || task.value.state !== "complete") {
      return yield* new SoakSetupFailed({ step: "the uninterrupted run", detail: end._tag === "Exited" ? end.stderr : "killed" })
    }
    const onceEach = snap.marks.size === runningNodes.length && runningNodes.every((tag) => snap.marks.get(tag) === 1)
    if (!onceEach) {
      return yield* new SoakSetupFailed({ step: "the uninterrupted run", detail: `its marks are not each node once: ${JSON.stringify([...snap.marks])}` })
    }
    return { ms: Math.max(1, Math.round(Duration.toMillis(elapsed))), outcome: outcomeOf(task.value) }
  })

/**
 * The ledger of one task across its processes: how many side effects each node had when it
 * was first seen saved as complete. Every check of a snapshot goes through `observe`.
 */
const makeLedger = (expected: Outcome, counts: Counts, problems: Array<string>) => {
  const completedAt = new Map<string, number>()
  let previous: Snapshot | undefined
  const problem = (where: string, text: string) => problems.push(`${where}: ${text}`)

  const observe = (snap: Snapshot, where: string): Option.Option<Task> => {
    counts.badAuditLines += snap.badAuditLines.length
    for (const line of snap.badAuditLines) problem(where, `an audit line is not a valid entry: ${line.slice(0, 200)}`)
    if (previous !== undefined && snap.auditLines < previous.auditLines) {
      counts.lost++
      problem(where, `the audit log shrank from ${previous.auditLines} to ${snap.auditLines} lines`)
    }
    if (previous !== undefined && Option.isSome(previous.task) && Option.isNone(snap.task)) {
      counts.lost++
      problem(where, "the saved task is gone")
    }
    const task = Option.flatMap(snap.task, (decoded) => {
      if (Either.isRight(decoded)) return Option.some(decoded.right)
      counts.corruptStates++
      problem(where, `the state file does not decode: ${decoded.left}`)
      return Option.none()
    })
    for (const tag of skillNodes) {
      const runs = snap.marks.get(tag) ?? 0
      const before = completedAt.get(tag)
      const node = Option.flatMap(task, (t) => Option.fromNullable(t.graph?.nodes.find((n) => n.id === tag)))
      const complete = Option.isSome(node) && node.value.status === "complete"
      if (before !== undefined && runs > before) {
        counts.duplicated += runs - before
        problem(where, `node ${tag} ran ${runs - before} more time(s) after it was saved as complete`)
      }
      if (before !== undefined && !complete) {
        counts.lost++
        problem(where, `node ${tag} was saved as complete, now it is ${Option.match(node, { onNone: () => "gone", onSome: (n) => n.status })}`)
      }
      if (complete && before === undefined) {
        completedAt.set(tag, runs)
        const want = expected.nodes.find(([id]) => id === tag)?.[2]
        if (JSON.stringify(node.value.result) !== JSON.stringify(want)) {
          counts.resultMismatches++
          problem(where, `node ${tag} completed with ${JSON.stringify(node.value.result)}; the uninterrupted run had ${JSON.stringify(want)}`)
        }
      }
    }
    previous = snap
    return task
  }

  /** Checks the finished task against the uninterrupted run and counts its at-least-once re-runs. */
  const finish = (task: Task, where: string): void => {
    const marks = previous?.marks ?? new Map<string, number>()
    counts.atLeastOnceReruns += [...marks.values()].reduce((sum, n) => sum + n, 0) - marks.size
    const everyNodeRan = marks.size === runningNodes.length && runningNodes.every((tag) => (marks.get(tag) ?? 0) >= 1)
    if (task.state !== "complete" || JSON.stringify(outcomeOf(task)) !== JSON.stringify(expected) || !everyNodeRan) {
      counts.resultMismatches++
      problem(where, `ended ${task.state} with ${JSON.stringify(outcomeOf(task))} and marks ${JSON.stringify([...marks])}; the uninterrupted run: ${JSON.stringify(expected)}`)
    }
  }

  return { observe, finish, completed: () => completedAt.size }
}

/** Most processes one task may take before the soak calls it stuck. */
const maxProcessesPerTask = 200

export interface SoakOptions {
  readonly kills: number
  readonly seed: number
  /** An empty directory to work in. */
  readonly dir: string
  /** "file" (the default) or a postgres:// URL of an empty database. */
  readonly store?: string
  readonly log: (line: string) => Effect.Effect<void>
}

export const runSoak = (options: SoakOptions) =>
  Effect.gen(function*() {
    const ws = yield* prepareWorkspace(options.dir, soakTask, { store: options.store ?? "file" })
    const store = yield* workspaceStore(ws)
    const random = seededRandom(options.seed)
    const reference = yield* uninterruptedRun(ws, store)
    yield* options.log(`uninterrupted run: complete in ${reference.ms} ms; kills come after 0–${reference.ms} ms`)
    const problems: Array<string> = []
    const counts: Counts = {
      kills: 0,
      resumes: 0,
      restarts: 0,
      killedTasks: 0,
      uninterruptedTasks: 0,
      lost: 0,
      duplicated: 0,
      atLeastOnceReruns: 0,
      corruptStates: 0,
      badAuditLines: 0,
      resultMismatches: 0
    }

    // Kills that all land before a first save would test no resume: go on until one did (within 4× the kills).
    const moreKills = () => counts.kills < options.kills || (counts.resumes === 0 && counts.kills < options.kills * 4)
    for (let taskNumber = 1; moreKills(); taskNumber++) {
      yield* freshTask(ws)
      const ledger = makeLedger(reference.outcome, counts, problems)
      const killsBefore = counts.kills
      let saved = Option.none<Task>()
      for (let attempt = 1; ; attempt++) {
        const command = Option.isSome(saved) ? "resume" : "run"
        const where = `task ${taskNumber}, ${command} #${attempt}`
        if (attempt > maxProcessesPerTask) {
          problems.push(`${where}: no completion after ${maxProcessesPerTask} processes`)
          break
        }
        if (command === "resume") counts.resumes++
        else if (attempt > 1) counts.restarts++
        const delay = Math.floor(random() * reference.ms)
        const end = yield* runCli(ws, command, delay)
        if (end._tag === "Killed") counts.kills++
        else if (end.code !== 0) problems.push(`${where}: exited with ${end.code} instead of finishing the task: ${end.stderr.trim()}`)
        const snap = yield* snapshot(ws, store)
        saved = ledger.observe(snap, end._tag === "Killed" ? `${where}, killed after ${delay} ms` : where)
        if (end._tag === "Killed") {
          const state = Option.match(saved, { onNone: () => "nothing saved", onSome: (t) => `${t.state}, ${ledger.completed()}/${runningNodes.length} skill nodes complete` })
          yield* options.log(`kill ${counts.kills}: ${where} after ${delay} ms: ${state}; ${snap.auditLines} audit lines, ${snap.badAuditLines.length} bad`)
        }
        const finished = Option.filter(saved, (t) => t.state === "complete" || t.state === "failed")
        if (Option.isSome(finished)) {
          ledger.finish(finished.value, `task ${taskNumber}`)
          break
        }
        if (end._tag === "Exited" && end.code !== 0) break
      }
      if (counts.kills > killsBefore) counts.killedTasks++
      else counts.uninterruptedTasks++
    }
    return { seed: options.seed, ...counts, problems } satisfies SoakReport
  }).pipe(Effect.scoped)

// ---------------------------------------------------------------------------------------------
// `node dist/soak.cjs [--kills N] [--seed S] [--verbose]`

const soakCommand = Cli.make(
  "soak",
  {
    kills: Options.integer("kills").pipe(Options.withDefault(50), Options.withDescription("How many times to SIGKILL the agent")),
    seed: Options.integer("seed").pipe(Options.withDefault(20260101), Options.withDescription("Seed of the kill delays")),
    verbose: Options.boolean("verbose").pipe(Options.withDescription("Print a line per kill")),
    store: Options.text("store").pipe(
      Options.withDescription("file (the default), postgres (a server this soak starts in a temp dir) or a postgres:// URL of an empty database"),
      Options.withDefault("file")
    )
  },
  ({ kills, seed, store, verbose }) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-soak-" })
      const url = store === "postgres" ? yield* Effect.flatMap(startPostgres(), (server) => server.createDatabase) : store
      yield* Console.log(`soak: ${kills} SIGKILLs of \`luallm-agent run|resume\` (seed ${seed}, store ${store}) in ${dir}`)
      const report = yield* runSoak({ kills, seed, dir, store: url, log: (line) => (verbose ? Console.log(line) : Effect.void) })
      for (const problem of report.problems) yield* Console.error(`✗ ${problem}`)
      yield* Console.log(summarize(report))
      if (!soakPassed(report)) return yield* new SoakFailed({ problems: report.problems.length })
    }).pipe(Effect.scoped)
)

// By the entry's name: in a bundle every module's import.meta.url is the bundle's, and
// dist/clusterSoak.cjs bundles this module too.
const isMain = /(^|[\\/])soak\.(cjs|ts)$/.test(process.argv[1] ?? "")

if (isMain) {
  Cli.run(soakCommand, { name: "soak", version: "1" })(process.argv).pipe(
    // An expected failure is its message and exit code 1; only a defect prints a trace.
    Effect.catchIf(
      (error): error is SoakFailed | SoakSetupFailed | PostgresStartFailed =>
        error._tag === "SoakFailed" || error._tag === "SoakSetupFailed" || error._tag === "PostgresStartFailed",
      (error) => Effect.zipRight(Console.error(`✗ ${error.message}`), Effect.sync(() => (process.exitCode = 1)))
    ),
    Effect.provide(NodeContext.layer),
    NodeRuntime.runMain
  )
}

